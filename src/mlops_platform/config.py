"""Typed settings: every environment variable the platform reads is declared here, once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Platform configuration, read from the environment and `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    feature_store_url: str = Field(
        "mysql+pymysql://root@127.0.0.1:3306/mlops",
        description="SQLAlchemy URL of the MariaDB feature store and log store.",
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
    mlops_load_batch_rows: int = Field(
        20_000, ge=100, description="Rows per batch when loading generated or ingested data."
    )
    validation_min_rows: int = Field(
        1_000, ge=1, description="Smallest snapshot that validation accepts for training."
    )
    validation_max_null_rate: float = Field(
        0.2, ge=0, le=1, description="Largest share of NULLs allowed in any feature column."
    )
    mlops_test_database_url: str | None = Field(
        None,
        description="Tests only: run against this MariaDB (unique databases), not a throwaway one.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, loaded on first use."""
    return Settings()
