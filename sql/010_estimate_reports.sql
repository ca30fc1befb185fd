-- Reports of the label-free accuracy estimate (confidence-based, as CBPE) sit beside the
-- drift and live-accuracy reports: same key, same decisions, `stats.metrics` estimated from
-- the champion's calibrated probabilities and, once labels land, `stats.realised`.

ALTER TABLE drift_reports MODIFY COLUMN kind
    ENUM('drift', 'performance', 'estimate') NOT NULL;
