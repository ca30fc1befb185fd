-- Late labels are matched to predictions by (customer_id, month of the features used),
-- so the log records which month's features a prediction describes when it is known.

ALTER TABLE prediction_log
    ADD COLUMN feature_month DATE NULL
        COMMENT 'month of the features (by-customer lookups, or given by the caller)'
        AFTER customer_id,
    ADD KEY ix_prediction_label_match (customer_id, feature_month);
