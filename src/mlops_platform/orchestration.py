"""What the Airflow DAGs share: assets, default task arguments, and logical-date rules.

Only `dags/` imports this module, and it stays cheap: no database, network or Airflow
Variable is touched, so DAG parsing stays in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from mlops_platform.config import get_settings
from mlops_platform.dates import month_of

OWNER = "mlops"
SNAPSHOT_TABLE = "training_snapshots"
FEATURES_TABLE = "customer_features_monthly"
TRAINING_DAG_ID = "continuous_training"
TRIGGER_REASONS = ("manual", "schedule", "new-data", "drift", "performance")
# Retraining after a monitoring alarm rebuilds the snapshot to include labels that arrived since.
REBUILD_REASONS = ("drift", "performance")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=30),
}


def dag_defaults() -> dict[str, Any]:
    """Every DAG: no back-filling, one run at a time, the task defaults, failures mailed."""
    # Airflow's notifier base costs seconds to import: only DAG files pay for it, not the CLI.
    from mlops_platform.alerting.notify import PipelineFailureNotifier

    return {
        "start_date": datetime(2025, 1, 1, tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {**DEFAULT_ARGS, "on_failure_callback": PipelineFailureNotifier()},
    }


def store_table_asset_uri(table: str) -> str:
    """`mysql://host:port/db/table` of the feature store, the form the MySQL provider validates."""
    store = urlsplit(get_settings().feature_store_url)
    database = store.path.strip("/")
    return f"mysql://{store.hostname or 'localhost'}:{store.port or 3306}/{database}/{table}"


def snapshot_asset_uri() -> str:
    """Validated training snapshots: the feature pipeline updates it, training consumes it."""
    return store_table_asset_uri(SNAPSHOT_TABLE)


def features_asset_uri() -> str:
    """Monthly feature rows: ingest updates it, the feature pipeline consumes it."""
    return store_table_asset_uri(FEATURES_TABLE)


def champion_asset_uri() -> str:
    """The registry alias that serving follows, as an asset other DAGs can react to."""
    settings = get_settings()
    server = urlsplit(settings.mlflow_tracking_uri).netloc or "local"
    return f"mlflow://{server}/{settings.model_name}/champion"


def schedule_of(setting: str) -> str | None:
    """A schedule setting as Airflow takes it; `none` means triggered runs only."""
    return None if setting.strip().lower() == "none" else setting


def schedule_or_assets(setting: str, assets: list[Any]) -> Any:
    """The time schedule or an update of `assets`, whichever comes first; `none`: assets only."""
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable

    cron = schedule_of(setting)
    if cron is None:
        return assets
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=assets)


def run_moment(context: Mapping[str, Any]) -> datetime:
    """The run's logical date; asset-triggered and manual runs have none, so when it was due."""
    return context.get("logical_date") or context["dag_run"].run_after


def announced_reason(run_type: str) -> str:
    """Why a snapshot is announced: its scheduled run came due, or new data asked for it."""
    return "schedule" if run_type == "scheduled" else "new-data"


@dataclass(frozen=True)
class TrainingInputs:
    base_dt: str
    reason: str
    report_id: int | None


def training_inputs(
    params: Mapping[str, Any],
    run_type: str,
    asset_extras: Sequence[Mapping[str, Any]],
    run_moment: datetime,
) -> TrainingInputs:
    """Why and on which snapshot a `continuous_training` run trains.

    An explicit `base_dt` param wins; an asset-triggered run uses the snapshot that the
    feature pipeline announced; otherwise the run's month. The reason follows the trigger:
    an asset-triggered run takes the announced reason, `schedule` only when every
    announcement came from a scheduled feature-pipeline run.
    """
    announced = [extra["base_dt"] for extra in asset_extras if extra.get("base_dt")]
    base_dt = params.get("base_dt") or (max(announced) if announced else None)
    if run_type == "asset_triggered":
        reasons = {extra.get("reason", "new-data") for extra in asset_extras}
        reason = "schedule" if reasons == {"schedule"} else "new-data"
    else:
        reason = params.get("reason") or "manual"
    return TrainingInputs(
        base_dt=base_dt or month_of(run_moment).isoformat(),
        reason=reason,
        report_id=params.get("report_id"),
    )
