-- Log store: every online prediction and every change of the production model.

CREATE TABLE prediction_log (
    log_id             BIGINT NOT NULL AUTO_INCREMENT,
    request_id         CHAR(36) NOT NULL,
    customer_id        VARCHAR(24) NULL,
    model_name         VARCHAR(100) NOT NULL,
    model_version      VARCHAR(20) NOT NULL,
    features           JSON NOT NULL,
    predicted_class    ENUM('Good', 'Standard', 'Poor') NOT NULL,
    probabilities      JSON NOT NULL,
    unseen_categories  VARCHAR(255) NULL COMMENT 'features whose category training never saw',
    latency_ms         DOUBLE NOT NULL,
    created_at         DATETIME(6) NOT NULL,
    PRIMARY KEY (log_id),
    UNIQUE KEY ux_prediction_request (request_id),
    KEY ix_prediction_model_time (model_name, model_version, created_at),
    KEY ix_prediction_time (created_at),
    KEY ix_prediction_customer (customer_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE deployments (
    deployment_id    BIGINT NOT NULL AUTO_INCREMENT,
    model_name       VARCHAR(100) NOT NULL,
    version          VARCHAR(20) NOT NULL,
    previous_version VARCHAR(20) NULL,
    action           ENUM('promote', 'reject', 'manual_promote', 'rollback') NOT NULL,
    reason           VARCHAR(1000) NOT NULL,
    actor            VARCHAR(100) NOT NULL,
    metrics          JSON NULL,
    created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (deployment_id),
    KEY ix_deployments_model (model_name, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
  COMMENT='History of champion changes and gate decisions.';
