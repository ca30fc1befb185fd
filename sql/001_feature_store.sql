-- Feature store: customers (PII, kept apart), monthly features, late-arriving labels,
-- point-in-time training snapshots, and the rows that ingest refused.

CREATE TABLE customers (
    customer_id VARCHAR(24) NOT NULL,
    name        VARCHAR(100) NULL,
    ssn         CHAR(11) NULL,
    created_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
  COMMENT='PII lives here only; nothing downstream joins it in.';

CREATE TABLE customer_features_monthly (
    customer_id              VARCHAR(24) NOT NULL,
    month                    DATE NOT NULL COMMENT 'first day of the month the features describe',
    age                      SMALLINT NOT NULL,
    occupation               VARCHAR(32) NULL,
    annual_income            DOUBLE NOT NULL,
    monthly_inhand_salary    DOUBLE NULL,
    num_bank_accounts        SMALLINT NOT NULL,
    num_credit_card          SMALLINT NOT NULL,
    interest_rate            DOUBLE NOT NULL,
    num_of_loan              SMALLINT NOT NULL,
    type_of_loan             VARCHAR(255) NULL COMMENT 'comma-separated loan types',
    delay_from_due_date      SMALLINT NOT NULL,
    num_of_delayed_payment   SMALLINT NULL,
    changed_credit_limit     DOUBLE NULL,
    num_credit_inquiries     SMALLINT NULL,
    credit_mix               ENUM('Good', 'Standard', 'Bad') NULL,
    outstanding_debt         DOUBLE NOT NULL,
    credit_utilization_ratio DOUBLE NOT NULL,
    credit_history_age       SMALLINT NULL COMMENT 'months',
    payment_of_min_amount    ENUM('Yes', 'No', 'NM') NOT NULL,
    total_emi_per_month      DOUBLE NOT NULL,
    amount_invested_monthly  DOUBLE NULL,
    payment_behaviour        VARCHAR(40) NULL,
    monthly_balance          DOUBLE NULL,
    source                   VARCHAR(255) NOT NULL COMMENT 'generator run or ingested file name',
    ingested_at              DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (customer_id, month),
    KEY ix_features_month (month)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE credit_labels (
    customer_id  VARCHAR(24) NOT NULL,
    month        DATE NOT NULL,
    credit_score ENUM('Good', 'Standard', 'Poor') NOT NULL,
    observed_at  DATETIME NOT NULL COMMENT 'when the ground truth became known (after month)',
    PRIMARY KEY (customer_id, month),
    KEY ix_labels_observed (observed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE snapshot_builds (
    base_dt         DATE NOT NULL,
    build_id        BIGINT NOT NULL AUTO_INCREMENT,
    lookback_months SMALLINT NOT NULL,
    row_count       INT NOT NULL,
    customer_count  INT NOT NULL,
    built_at        DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (base_dt),
    UNIQUE KEY ux_snapshot_build (build_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
  COMMENT='One row per snapshot; build_id changes whenever the snapshot is rebuilt.';

CREATE TABLE training_snapshots (
    base_dt                  DATE NOT NULL,
    customer_id              VARCHAR(24) NOT NULL,
    month                    DATE NOT NULL,
    age                      SMALLINT NOT NULL,
    occupation               VARCHAR(32) NULL,
    annual_income            DOUBLE NOT NULL,
    monthly_inhand_salary    DOUBLE NULL,
    num_bank_accounts        SMALLINT NOT NULL,
    num_credit_card          SMALLINT NOT NULL,
    interest_rate            DOUBLE NOT NULL,
    num_of_loan              SMALLINT NOT NULL,
    type_of_loan             VARCHAR(255) NULL,
    delay_from_due_date      SMALLINT NOT NULL,
    num_of_delayed_payment   SMALLINT NULL,
    changed_credit_limit     DOUBLE NULL,
    num_credit_inquiries     SMALLINT NULL,
    credit_mix               ENUM('Good', 'Standard', 'Bad') NULL,
    outstanding_debt         DOUBLE NOT NULL,
    credit_utilization_ratio DOUBLE NOT NULL,
    credit_history_age       SMALLINT NULL,
    payment_of_min_amount    ENUM('Yes', 'No', 'NM') NOT NULL,
    total_emi_per_month      DOUBLE NOT NULL,
    amount_invested_monthly  DOUBLE NULL,
    payment_behaviour        VARCHAR(40) NULL,
    monthly_balance          DOUBLE NULL,
    credit_score             ENUM('Good', 'Standard', 'Poor') NOT NULL,
    label_observed_at        DATETIME NOT NULL,
    PRIMARY KEY (base_dt, customer_id, month)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
  COMMENT='Point-in-time training sets: features of months before base_dt, labels observed by it.';

CREATE TABLE snapshot_validations (
    validation_id BIGINT NOT NULL AUTO_INCREMENT,
    base_dt       DATE NOT NULL,
    build_id      BIGINT NOT NULL,
    passed        BOOLEAN NOT NULL,
    row_count     INT NOT NULL,
    failures      JSON NOT NULL COMMENT 'list of {column, rule, observed, expected}',
    validated_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (validation_id),
    KEY ix_validations_snapshot (base_dt, build_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE ingest_quarantine (
    quarantine_id  BIGINT NOT NULL AUTO_INCREMENT,
    file_name      VARCHAR(255) NOT NULL,
    line_number    INT NOT NULL,
    raw_row        JSON NOT NULL,
    reason         VARCHAR(1000) NOT NULL,
    quarantined_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (quarantine_id),
    UNIQUE KEY ux_quarantine_line (file_name, line_number)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
  COMMENT='Rows ingest could not clean unambiguously, with the reason. Raw rows may hold PII.';
