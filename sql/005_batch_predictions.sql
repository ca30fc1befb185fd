-- Batch serving: every active customer scored by the champion, once per scoring date.

CREATE TABLE batch_predictions (
    score_date      DATE NOT NULL COMMENT 'logical date of the batch run',
    customer_id     VARCHAR(24) NOT NULL,
    feature_month   DATE NOT NULL COMMENT 'latest month of features before score_date',
    model_name      VARCHAR(100) NOT NULL,
    model_version   VARCHAR(20) NOT NULL,
    predicted_class ENUM('Good', 'Standard', 'Poor') NOT NULL,
    prob_good       DOUBLE NOT NULL,
    prob_standard   DOUBLE NOT NULL,
    prob_poor       DOUBLE NOT NULL,
    scored_at       DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (score_date, customer_id),
    KEY ix_batch_customer (customer_id, score_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
