-- Shadow scoring and canaries: the challenger scores every request beside the champion,
-- or answers a sticky share of the customers itself.
--
-- * Each log row names the role of the model that made it: `champion` (the champion's
--   answer), `shadow` (the challenger's prediction for the same request, never returned)
--   or `canary` (the challenger's answer to a canary customer). Both rows of a shadowed
--   request share its created_at and request_id, so the role joins the primary key, and
--   pairing a shadow row with its served row is a key lookup. Rows logged before this
--   migration were all served by the champion: they take the default.
-- * A paired comparison of champion and challenger on labelled requests is a report of
--   kind `shadow`; `challenger-better` is its verdict when the challenger beat the
--   champion by the margin, at the significance, on enough labelled requests.
-- * A candidate that passes the gate while GATE_SHADOW_FIRST is on is recorded as
--   `shadow`: it becomes the challenger and waits for live evidence. A canary whose live
--   accuracy degraded is stopped (`canary_rollback`): the challenger alias is removed.
--
-- MariaDB commits DDL at once; each statement is complete on its own.

ALTER TABLE prediction_log
    ADD COLUMN role ENUM('champion', 'shadow', 'canary') NOT NULL DEFAULT 'champion'
        COMMENT 'champion: returned to the client; shadow: the challenger, never returned'
        AFTER request_id,
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (created_at, request_id, role);

ALTER TABLE drift_reports
    MODIFY COLUMN kind ENUM('drift', 'performance', 'estimate', 'shadow') NOT NULL,
    MODIFY COLUMN decision
        ENUM('ok', 'drift', 'insufficient-data', 'degraded', 'challenger-better') NOT NULL;

ALTER TABLE deployments
    MODIFY COLUMN action
        ENUM('promote', 'reject', 'manual_promote', 'rollback', 'shadow', 'canary_rollback')
        NOT NULL;
