-- Monitoring: drift checks count prediction_log rows per feature bucket inside MariaDB,
-- and every drift or live-accuracy verdict is kept in drift_reports.
--
-- Parsing each row's JSON per feature on every check would cost 21 parses a row; instead
-- the features are extracted once, at insert, into stored columns f_<feature>, and one
-- index holds all of them, so a window is a single narrow range scan of that index.
-- JSON null reads as NULL (missing). The service logs only validated JSON numbers, so the
-- cheap CAST is safe; a check of each value's JSON type first doubled the insert cost.
-- Categories compare byte for byte (utf8mb4_bin), like the model's own unseen check.

ALTER TABLE prediction_log
    ADD COLUMN f_age DOUBLE
        AS (CAST(JSON_VALUE(features, '$.age') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_annual_income DOUBLE
        AS (CAST(JSON_VALUE(features, '$.annual_income') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_monthly_inhand_salary DOUBLE
        AS (CAST(JSON_VALUE(features, '$.monthly_inhand_salary') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_num_bank_accounts DOUBLE
        AS (CAST(JSON_VALUE(features, '$.num_bank_accounts') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_num_credit_card DOUBLE
        AS (CAST(JSON_VALUE(features, '$.num_credit_card') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_interest_rate DOUBLE
        AS (CAST(JSON_VALUE(features, '$.interest_rate') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_num_of_loan DOUBLE
        AS (CAST(JSON_VALUE(features, '$.num_of_loan') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_delay_from_due_date DOUBLE
        AS (CAST(JSON_VALUE(features, '$.delay_from_due_date') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_num_of_delayed_payment DOUBLE
        AS (CAST(JSON_VALUE(features, '$.num_of_delayed_payment') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_changed_credit_limit DOUBLE
        AS (CAST(JSON_VALUE(features, '$.changed_credit_limit') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_num_credit_inquiries DOUBLE
        AS (CAST(JSON_VALUE(features, '$.num_credit_inquiries') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_outstanding_debt DOUBLE
        AS (CAST(JSON_VALUE(features, '$.outstanding_debt') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_credit_utilization_ratio DOUBLE
        AS (CAST(JSON_VALUE(features, '$.credit_utilization_ratio') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_credit_history_age DOUBLE
        AS (CAST(JSON_VALUE(features, '$.credit_history_age') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_total_emi_per_month DOUBLE
        AS (CAST(JSON_VALUE(features, '$.total_emi_per_month') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_amount_invested_monthly DOUBLE
        AS (CAST(JSON_VALUE(features, '$.amount_invested_monthly') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_monthly_balance DOUBLE
        AS (CAST(JSON_VALUE(features, '$.monthly_balance') AS DOUBLE)) PERSISTENT,
    ADD COLUMN f_occupation VARCHAR(64) COLLATE utf8mb4_bin
        AS (LEFT(JSON_VALUE(features, '$.occupation'), 64)) PERSISTENT,
    ADD COLUMN f_credit_mix VARCHAR(64) COLLATE utf8mb4_bin
        AS (LEFT(JSON_VALUE(features, '$.credit_mix'), 64)) PERSISTENT,
    ADD COLUMN f_payment_of_min_amount VARCHAR(64) COLLATE utf8mb4_bin
        AS (LEFT(JSON_VALUE(features, '$.payment_of_min_amount'), 64)) PERSISTENT,
    ADD COLUMN f_payment_behaviour VARCHAR(64) COLLATE utf8mb4_bin
        AS (LEFT(JSON_VALUE(features, '$.payment_behaviour'), 64)) PERSISTENT,
    -- Covers the drift scan; its leading columns make ix_prediction_model_time redundant.
    ADD KEY ix_prediction_drift (
        model_name, model_version, created_at, predicted_class, f_age, f_annual_income,
        f_monthly_inhand_salary, f_num_bank_accounts, f_num_credit_card, f_interest_rate,
        f_num_of_loan, f_delay_from_due_date, f_num_of_delayed_payment,
        f_changed_credit_limit, f_num_credit_inquiries, f_outstanding_debt,
        f_credit_utilization_ratio, f_credit_history_age, f_total_emi_per_month,
        f_amount_invested_monthly, f_monthly_balance, f_occupation, f_credit_mix,
        f_payment_of_min_amount, f_payment_behaviour
    ),
    DROP KEY ix_prediction_model_time;

CREATE TABLE drift_reports (
    report_id     BIGINT NOT NULL AUTO_INCREMENT,
    kind          ENUM('drift', 'performance') NOT NULL,
    model_name    VARCHAR(100) NOT NULL,
    model_version VARCHAR(20) NOT NULL,
    window_start  DATETIME(6) NOT NULL COMMENT 'UTC, inclusive',
    window_end    DATETIME(6) NOT NULL COMMENT 'UTC, exclusive',
    row_count     INT NOT NULL COMMENT 'predictions (drift) or labelled predictions (performance)',
    stats         JSON NOT NULL COMMENT 'per-feature statistics, or live metrics per day',
    drift_share   DOUBLE NULL COMMENT 'share of drifted features (drift reports only)',
    decision      ENUM('ok', 'drift', 'insufficient-data', 'degraded') NOT NULL,
    triggered_run VARCHAR(250) NULL COMMENT 'the retraining run this report triggered',
    triggered_at  DATETIME(6) NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (report_id),
    UNIQUE KEY ux_report_window (kind, model_name, model_version, window_start, window_end),
    KEY ix_reports_model_end (model_name, window_end)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
  COMMENT='One verdict per kind, model version and window; re-checking a window updates it.';
