-- Immutable, addressable snapshot builds, and prediction lineage by request id.
--
-- * Every build of a base date is its own `snapshot_builds` row, and its rows in
--   `training_snapshots` are keyed by its build_id: a rebuild adds a build instead of
--   replacing the rows a registered model version was trained on. The latest unpruned
--   build of a base date is its current one.
-- * `content_hash` fingerprints a build's rows, so a rebuild with identical content
--   reuses the current build, and lineage can check that stored rows are still the ones
--   trained on. Builds made before this migration have none.
-- * `mlops features prune` deletes the rows of builds nobody needs and stamps `pruned_at`;
--   the build row stays, so lineage can say what was there.
-- * A request id is looked up by `mlops lineage`; the log's primary key starts with
--   created_at, so without this index one lookup scans the whole log.
--
-- MariaDB commits DDL at once; each statement below is complete on its own, and the
-- existing rows are copied into the new key before the old key is dropped.

ALTER TABLE snapshot_builds
    ADD COLUMN content_hash CHAR(64) CHARACTER SET ascii NULL
        COMMENT 'SHA-256 multiset hash of the rows (features.SNAPSHOT_COLUMNS)' AFTER customer_count,
    ADD COLUMN airflow_dag_id VARCHAR(250) NULL COMMENT 'DAG whose task built it' AFTER built_at,
    ADD COLUMN airflow_run_id VARCHAR(250) NULL COMMENT 'that DAG run' AFTER airflow_dag_id,
    ADD COLUMN pruned_at DATETIME NULL COMMENT 'when prune deleted its rows' AFTER airflow_run_id,
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (build_id),
    DROP KEY ux_snapshot_build,
    ADD KEY ix_snapshot_builds_date (base_dt, build_id),
    COMMENT = 'Every build of every snapshot; rows of a build never change.';

ALTER TABLE training_snapshots
    ADD COLUMN build_id BIGINT NULL COMMENT 'snapshot_builds.build_id' FIRST;

UPDATE training_snapshots AS t
JOIN snapshot_builds AS b ON b.base_dt = t.base_dt
SET t.build_id = b.build_id;

ALTER TABLE training_snapshots
    MODIFY build_id BIGINT NOT NULL COMMENT 'snapshot_builds.build_id',
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (build_id, customer_id, month),
    COMMENT = 'Point-in-time training sets by build: features of months before base_dt, labels observed by it.';

ALTER TABLE prediction_log ADD KEY IF NOT EXISTS ix_prediction_request (request_id);
