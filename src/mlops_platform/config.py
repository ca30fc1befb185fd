"""Typed settings: every environment variable the platform reads is declared here, once.

Precedence: environment variables, then the settings a running native stack was started
with (`MLOPS_DATA_DIR/stack/settings.env`, written by `mlops stack up` and `make demo`),
then `.env`, then the defaults. So commands run beside a stack reach that stack.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Platform configuration, read from the environment and `.env`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        # Inputs include passwords (FEATURE_STORE_URL …): keep them out of error messages.
        hide_input_in_errors=True,
    )

    feature_store_url: str = Field(
        "mysql+pymysql://root@127.0.0.1:3306/mlops",
        description="SQLAlchemy URL of the MariaDB feature store and log store.",
    )
    feature_store_read_url: str | None = Field(
        None,
        description="Replica for online reads (by-customer lookups); default: FEATURE_STORE_URL.",
    )
    mlops_data_dir: Path = Field(
        PROJECT_ROOT / ".data",
        description="Local working directory for caches, spools, reports and service state.",
    )
    mlops_sql_dir: Path = Field(
        PROJECT_ROOT / "sql",
        description="Directory holding the numbered migrations and the feature SQL.",
    )
    mlops_lookback_months: int = Field(
        12, ge=1, le=120, description="Months of history a training snapshot covers by default."
    )
    snapshot_retention_days: int = Field(
        30,
        ge=0,
        description="Days a superseded snapshot build no model version uses survives pruning.",
    )
    mlops_load_batch_rows: int = Field(
        20_000, ge=100, description="Rows per batch when loading generated or ingested data."
    )
    validation_min_rows: int = Field(
        1_000, ge=1, description="Smallest snapshot that validation accepts for training."
    )
    validation_max_null_rate: float = Field(
        0.2, ge=0, le=1, description="Largest share of NULLs allowed in any feature column."
    )
    mlflow_tracking_uri: str = Field(
        "http://127.0.0.1:5000", description="MLflow tracking server that clients log to."
    )
    mlflow_backend_store_uri: str | None = Field(
        None,
        description="MLflow server's backend store; default: the store's server, database mlflow.",
    )
    mlflow_artifacts_destination: Path | None = Field(
        None,
        description="MLflow server's artifact store; default: MLOPS_DATA_DIR/mlflow-artifacts.",
    )
    mlflow_host: str = Field("127.0.0.1", description="Interface the MLflow server binds to.")
    mlflow_port: int = Field(5000, description="Port the MLflow server listens on.")
    mlflow_allowed_hosts: str = Field(
        "localhost:*,127.0.0.1:*,mlflow:5000",
        description="Host headers the MLflow server accepts (others get 403).",
    )
    mlflow_experiment: str = Field(
        "credit-score", description="MLflow experiment that training runs are logged under."
    )
    mlflow_monitoring_experiment: str = Field(
        "credit-score-monitoring",
        description="MLflow experiment of the monitoring runs (one per model version).",
    )
    model_name: str = Field("credit_score", description="Registered model name in MLflow.")
    train_trials: int = Field(6, ge=1, description="Hyperparameter trials per training run.")
    train_time_budget_s: float = Field(
        240, gt=0, description="Seconds after which no new trial starts."
    )
    train_max_iterations: int = Field(
        600,
        ge=10,
        description="Most boosting iterations per trial (early stopping usually ends sooner).",
    )
    train_early_stopping_rounds: int = Field(
        40, ge=1, description="Iterations without validation improvement before a trial stops."
    )
    train_seed: int = Field(42, description="Seed for the search, the splits and CatBoost.")
    gate_metric: str = Field(
        "macro_f1", description="Test metric the champion gate compares (higher is better)."
    )
    gate_min_improvement: float = Field(
        0.005, description="How much a challenger must beat the champion's gate metric by."
    )
    gate_floor: float = Field(0.55, description="Gate metric every new champion must reach.")
    gate_max_class_share: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Largest share one predicted class may take (degeneracy check).",
    )
    gate_max_ms_per_1000_rows: float = Field(
        2_000, gt=0, description="Slowest batch prediction a new champion may have."
    )
    gate_shadow_first: bool = Field(
        False,
        description="A candidate passing the gate becomes challenger, promoted on live evidence.",
    )
    shadow_window_days: float = Field(
        7, gt=0, description="How far back the shadow comparison pairs labelled requests."
    )
    shadow_min_labelled: int = Field(
        300, ge=1, description="Labelled requests both models scored before live evidence counts."
    )
    shadow_min_gain: float = Field(
        0.01, description="How much the challenger's live gate metric must beat the champion's by."
    )
    shadow_significance: float = Field(
        0.05, gt=0, lt=1, description="Largest McNemar p-value at which the challenger wins."
    )
    champion_lock_timeout_s: int = Field(
        60, ge=1, description="How long a promotion waits for another one to finish."
    )
    serving_host: str = Field("127.0.0.1", description="Interface the prediction service binds to.")
    serving_port: int = Field(3000, description="Port of the prediction service.")
    serving_url: str | None = Field(
        None,
        description="Where clients reach the service; default: http://SERVING_HOST:SERVING_PORT.",
    )
    serving_workers: int = Field(2, ge=1, description="BentoML worker processes.")
    serving_poll_interval_s: float = Field(
        30, gt=0, description="How often the service checks whether the champion alias moved."
    )
    serving_cache_dir: Path | None = Field(
        None, description="Local copy of the champion; default: MLOPS_DATA_DIR/champion-cache."
    )
    serving_spool_dir: Path | None = Field(
        None,
        description="Where logs wait while MariaDB is down; default: MLOPS_DATA_DIR/spool.",
    )
    serving_max_batch: int = Field(1_000, ge=1, description="Most records in one request.")
    serving_max_body_bytes: int = Field(
        2_000_000, ge=1_024, description="Largest request body the service accepts."
    )
    serving_max_header_bytes: int = Field(
        16_384, ge=1_024, description="Largest request head (all header names and values)."
    )
    serving_log_batch_rows: int = Field(
        500, ge=1, description="Prediction log rows per insert batch."
    )
    serving_log_flush_interval_s: float = Field(
        0.5, gt=0, description="Longest a prediction log row waits before its batch is written."
    )
    serving_log_queue_max: int = Field(
        50_000, ge=100, description="Log rows held in memory before they go to the spool file."
    )
    serving_shadow_queue_max: int = Field(
        20_000,
        ge=1,
        description="Served records waiting for the challenger before some go unscored.",
    )
    serving_canary_share: float = Field(
        0,
        ge=0,
        le=1,
        description="Share of customers (sticky by id) the challenger answers itself; 0: none.",
    )
    serving_customer_cache_ttl_s: float = Field(
        60, ge=0, description="How long by-customer lookups reuse features read from the store."
    )
    drift_window_hours: float = Field(24, gt=0, description="Default drift and accuracy window.")
    drift_psi_warn: float = Field(0.1, gt=0, description="PSI at which a feature is flagged.")
    drift_psi_alert: float = Field(0.2, gt=0, description="PSI at which a feature has drifted.")
    drift_psi_severe: float = Field(
        0.5, gt=0, description="PSI of one drifted feature that alone makes the dataset drifted."
    )
    drift_chi2_p_value: float = Field(
        0.01, gt=0, lt=1, description="Chi-square p-value below which a categorical drifted."
    )
    drift_min_rows: int = Field(
        500, ge=1, description="Smallest window that can be judged; fewer is 'insufficient data'."
    )
    drift_share_threshold: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Importance-weighted share of drifted features that makes the dataset drifted.",
    )
    drift_key_features: str = Field(
        "delay_from_due_date,outstanding_debt,num_of_delayed_payment",
        description="Comma-separated features whose drift alone counts as dataset drift.",
    )
    drift_persistence_windows: int = Field(
        1, ge=1, description="Consecutive drifted windows needed before retraining."
    )
    retrain_cooldown_hours: float = Field(
        24, ge=0, description="No new retrain trigger this soon after the last one."
    )
    performance_tolerance: float = Field(
        0.05, gt=0, description="Drop in live macro-F1 below the test macro-F1 that degrades."
    )
    performance_min_labelled: int = Field(
        300, ge=1, description="Labelled predictions needed to judge live accuracy."
    )
    estimate_min_predictions: int = Field(
        300, ge=1, description="Predictions needed to judge the label-free accuracy estimate."
    )
    estimate_settle_days: float = Field(
        72, gt=0, description="Age of a window when monitoring adds its realised accuracy."
    )
    exporter_host: str = Field(
        "127.0.0.1", description="Interface the model-quality exporter for Prometheus binds to."
    )
    exporter_port: int = Field(9811, description="Port of the model-quality exporter.")
    exporter_db_timeout_s: float = Field(
        3, gt=0, description="Longest one scrape waits for MariaDB before reporting it down."
    )
    monitoring_stale_after_hours: float = Field(
        3, gt=0, description="Age of the newest monitoring report at which alerts call it stale."
    )
    smtp_host: str = Field(
        "127.0.0.1", description="SMTP server that notification e-mails go through."
    )
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_from: str = Field("mlops@localhost", description="Sender address of notification e-mails.")
    smtp_to: str = Field(
        "", description="Comma-separated notification recipients; empty turns notifications off."
    )
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_ssl: bool = Field(False, description="Connect with implicit TLS (SMTPS, usually 465).")
    smtp_user: str | None = Field(None, description="SMTP login; empty: no authentication.")
    smtp_password: str | None = Field(None, description="Password of SMTP_USER.")
    smtp_timeout_s: float = Field(
        10, gt=0, description="Longest one SMTP conversation may take before the mail is dropped."
    )
    feature_pipeline_schedule: str = Field(
        "@monthly", description="When Airflow builds and validates the next snapshot."
    )
    monitoring_schedule: str = Field(
        "@hourly", description="When Airflow checks drift and live accuracy."
    )
    batch_prediction_schedule: str = Field(
        "@daily", description="When Airflow scores every active customer."
    )
    airflow_home: Path | None = Field(
        None,
        description="Airflow home (config, SQLite metadata, logs); default: MLOPS_DATA_DIR/airflow",
    )
    airflow_port: int = Field(8080, description="Port of the Airflow UI and REST API.")
    airflow_url: str | None = Field(
        None,
        description="Where clients reach Airflow's REST API; default: http://127.0.0.1:AIRFLOW_PORT.",
    )
    airflow_admin_password: str | None = Field(
        None,
        description="Airflow `admin` password; default: generated and kept in AIRFLOW_HOME.",
    )
    mlops_git_commit: str | None = Field(
        None,
        description="Commit the code was built from (set by the image); default: git rev-parse.",
    )
    mlops_test_database_url: str | None = Field(
        None,
        description="Tests only: run against this MariaDB (unique databases), not a throwaway one.",
    )

    @property
    def airflow_api_url(self) -> str:
        return self.airflow_url or f"http://127.0.0.1:{self.airflow_port}"

    @property
    def service_url(self) -> str:
        return self.serving_url or f"http://{self.serving_host}:{self.serving_port}"

    @property
    def notification_recipients(self) -> list[str]:
        return [address.strip() for address in self.smtp_to.split(",") if address.strip()]

    @model_validator(mode="after")
    def one_tls_mode(self) -> Settings:
        """Implicit TLS and STARTTLS exclude each other."""
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("set SMTP_SSL or SMTP_STARTTLS, not both")
        return self

    @model_validator(mode="after")
    def refuse_placeholders(self) -> Settings:
        """A value still holding .env.example's `change-me` placeholder is a mistake."""
        unchanged = [
            name.upper()
            for name, value in self.__dict__.items()
            if isinstance(value, str) and "change-me" in value
        ]
        if unchanged:
            raise ValueError(f"edit the change-me values in .env: {', '.join(unchanged)}")
        return self


def stack_state_dir(data_dir: Path) -> Path:
    """Where the native stack keeps its pid, log, settings and local MariaDB."""
    return data_dir / "stack"


def stack_settings_file(data_dir: Path) -> Path:
    return stack_state_dir(data_dir) / "settings.env"


def running_stack_pid(data_dir: Path) -> int | None:
    """The native stack's process group id while it runs, else None."""
    try:
        pid = int((stack_state_dir(data_dir) / "stack.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, loaded on first use (precedence: module doc)."""
    settings = Settings()
    recorded = stack_settings_file(settings.mlops_data_dir)
    if recorded.is_file() and running_stack_pid(settings.mlops_data_dir):
        return Settings(_env_file=(".env", recorded))  # later files win over earlier ones
    return settings
