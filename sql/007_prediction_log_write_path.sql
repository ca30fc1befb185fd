-- The prediction log keeps one index, its clustered primary key (created_at, request_id).
--
-- Maintaining ix_prediction_label_match cost as much per logged row as the rest of the
-- insert did (measured with LOAD DATA of 1,000-row batches on this stack: about 20 µs a
-- row with it, 12 µs without), and the online service writes tens of thousands of rows a
-- second. Live accuracy no longer needs it: a prediction of month M's features is made
-- on or after the first day of M, so the label join scans the log by primary key from
-- the oldest labelled month of the window on and looks each row's label up by the
-- primary key of credit_labels.

ALTER TABLE prediction_log DROP KEY ix_prediction_label_match;
