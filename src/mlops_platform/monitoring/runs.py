"""Quality over time in MLflow: one monitoring run per model version, a point per window.

The runs live in MLFLOW_MONITORING_EXPERIMENT, away from training. Each window's numbers
(read back from the report store, the one source) are logged at step = the window's end
in seconds since the epoch, with that moment as timestamp, so a chart's "Time (wall)"
axis shows the logical dates, never when the check ran. Re-logging a window with the same
numbers adds nothing (MLflow drops an identical point). MLflow cannot replace a point, so
when a re-run changed a window's numbers the run is rebuilt: its history without that
window's old points goes to a new run, and the old run is deleted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_platform import db, tracking
from mlops_platform.config import get_settings
from mlops_platform.monitoring import reports
from mlops_platform.monitoring.reference import mlflow_client
from mlops_platform.monitoring.reports import StoredReport

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Run

# A label-free estimate stored under this kind is logged with the window's other numbers.
ESTIMATE_KIND = "estimate"
SHADOW_KIND = "shadow"
# The monitoring experiment opens with its charts over the logical dates.
OVER_TIME_VIEW = "over-time"
OVER_TIME_STATE = {
    "globalLineChartConfig": {"xAxisKey": "time", "lineSmoothness": 0, "selectedXAxisMetricKey": ""}
}
# What the demo and the README show of each run.
SUMMARY_METRICS = ("drift/share", "volume/rows", "live/macro_f1", "estimated/macro_f1")
LOCK_TIMEOUT_S = 60
BATCH = 1_000  # MLflow's most metrics per log_batch


def drift_metrics(report: StoredReport) -> dict[str, float]:
    """Drift share, volume, PSI per feature and the predicted-class mix of a drift report."""
    from mlops_platform.monitoring.drift import PREDICTION  # drift logs through this module

    values = {"volume/rows": float(report.row_count)}
    if report.drift_share is not None:
        values["drift/share"] = report.drift_share
    prediction = report.stats["prediction"]
    for name, feature in {**report.stats["features"], PREDICTION: prediction}.items():
        if feature.get("psi") is not None:
            values[f"psi/{name}"] = feature["psi"]
    if report.row_count:
        for score, count in zip(prediction["buckets"], prediction["counts"], strict=True):
            values[f"prediction_share/{score}"] = count / report.row_count
    return values


def accuracy_metrics(prefix: str, report: StoredReport) -> dict[str, float]:
    """Accuracy and macro-F1 of a performance or estimate report (none without rows)."""
    values = {
        f"{prefix}/labelled" if prefix == "live" else f"{prefix}/rows": float(report.row_count)
    }
    if report.row_count:
        values |= {
            f"{prefix}/{key}": float(report.stats["metrics"][key])
            for key in ("accuracy", "macro_f1")
        }
    return values


def shadow_metrics(report: StoredReport) -> dict[str, float]:
    """Both models' live metrics on the same labelled requests, on the challenger's run."""
    stats = report.stats
    values = {"shadow/labelled": float(report.row_count)}
    if report.row_count:
        values["shadow/mcnemar_p"] = float(stats["mcnemar_p_value"])
        for role in ("champion", "challenger"):
            values |= {
                f"shadow/{role}_{key}": float(stats[role][key]) for key in ("accuracy", "macro_f1")
            }
    return values


def window_metrics(report: StoredReport) -> dict[str, float]:
    """The metrics one stored report contributes to its window's point."""
    if report.kind == "drift":
        return drift_metrics(report)
    if report.kind == "performance":
        return accuracy_metrics("live", report)
    if report.kind == ESTIMATE_KIND:
        return accuracy_metrics("estimated", report)
    if report.kind == SHADOW_KIND:
        return shadow_metrics(report)
    raise ValueError(f"no MLflow metrics are defined for {report.kind!r} reports")


def log_reports(
    report_ids: Sequence[int], url: str | None = None, artifacts: Iterable[Path] = ()
) -> dict[str, str]:
    """Log the stored reports (and stored estimates of their windows) to the monitoring runs.

    Returns the monitoring run id per model version. `artifacts` (a drift report's HTML)
    go under `windows/<window end>/` of the first report's run.
    """
    given = reports.load_reports(report_ids, url)
    stored = dict(given)
    with db.transaction(url) as connection:
        for report in given.values():
            for found in reports.window_reports(
                connection, ESTIMATE_KIND, report.model_name, report.window
            ):
                if found.model_version == report.model_version:
                    stored[found.report_id] = found
    points: dict[tuple[str, str, datetime], dict[str, float]] = {}
    for report in stored.values():
        key = (report.model_name, report.model_version, report.window.end)
        points.setdefault(key, {}).update(window_metrics(report))
    run_ids: dict[str, str] = {}
    files = list(artifacts)
    for (name, version, end), values in points.items():
        run_ids[version] = log_window(name, version, end, values, url, files)
        files = []
    return run_ids


def log_window(
    model_name: str,
    model_version: str,
    window_end: datetime,
    values: Mapping[str, float],
    url: str | None = None,
    artifacts: Sequence[Path] = (),
) -> str:
    """Log one window's numbers to the version's monitoring run; the run id."""
    from mlflow.entities import Metric

    client = mlflow_client()
    moment = window_end.replace(tzinfo=UTC) if window_end.tzinfo is None else window_end
    step = int(moment.timestamp())
    # Checks of one version run side by side (Airflow tasks): one creates the run. Past the
    # timeout they go ahead unlocked: at worst a second run, never a lost point.
    with db.named_lock(f"mlops_monitoring_{model_name}_{model_version}", LOCK_TIMEOUT_S, url):
        run = monitoring_run(client, model_name, model_version)
        history = {
            key: client.get_metric_history(run.info.run_id, key)
            for key in values
            if key in run.data.metrics
        }
        changed = {
            key
            for key, points in history.items()
            for point in points
            if point.step == step and point.value != values[key]
        }
        if changed:
            run = _rebuild(client, run, step, changed)
        metrics = [
            Metric(key, float(value), step * 1_000, step) for key, value in sorted(values.items())
        ]
        for start in range(0, len(metrics), BATCH):
            client.log_batch(run.info.run_id, metrics=metrics[start : start + BATCH])
        for path in artifacts:
            client.log_artifact(run.info.run_id, str(path), f"windows/{moment:%Y-%m-%dT%H%MZ}")
    return run.info.run_id


def monitoring_experiment_id() -> str:
    """MLFLOW_MONITORING_EXPERIMENT's id (created, classic view, charts over time)."""
    return tracking.ensure_experiment(
        get_settings().mlflow_monitoring_experiment, {OVER_TIME_VIEW: OVER_TIME_STATE}
    )


def find_monitoring_run(client: MlflowClient, model_name: str, model_version: str) -> Run | None:
    """The version's active monitoring run, if it has one."""
    found = client.search_runs(
        [monitoring_experiment_id()],
        filter_string=(
            f"tags.model_name = '{model_name}' and tags.model_version = '{model_version}'"
        ),
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return found[0] if found else None


def monitoring_run(client: MlflowClient, model_name: str, model_version: str) -> Run:
    """The version's monitoring run, created (named `monitoring v<version>`) if missing."""
    return find_monitoring_run(client, model_name, model_version) or client.create_run(
        monitoring_experiment_id(),
        run_name=f"monitoring v{model_version}",
        tags={"model_name": model_name, "model_version": model_version},
    )


def _rebuild(client: MlflowClient, run: Run, step: int, keys: set[str]) -> Run:
    """A copy of `run` without the points of `keys` at `step`; the old run is deleted."""
    kept: list[Metric] = [
        point
        for key in run.data.metrics
        for point in client.get_metric_history(run.info.run_id, key)
        if not (point.step == step and key in keys)
    ]
    tags = {key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")}
    copy = client.create_run(run.info.experiment_id, run_name=run.info.run_name, tags=tags)
    for start in range(0, len(kept), BATCH):
        client.log_batch(copy.info.run_id, metrics=kept[start : start + BATCH])
    if client.list_artifacts(run.info.run_id):
        with tempfile.TemporaryDirectory(prefix="mlops-monitoring-") as scratch:
            client.download_artifacts(run.info.run_id, "", scratch)
            client.log_artifacts(copy.info.run_id, scratch)
    client.delete_run(run.info.run_id)
    return copy


@dataclass(frozen=True)
class VersionSeries:
    """A version's monitoring run and some of its series: metric → window end → value."""

    model_version: str
    run_id: str
    series: Mapping[str, Mapping[datetime, float]]


def over_time_link() -> str:
    """The monitoring experiment's runs page, charts over the logical dates."""
    return tracking.runs_view_link(monitoring_experiment_id(), OVER_TIME_VIEW)


def version_series(
    model_versions: Iterable[str], keys: Sequence[str] = SUMMARY_METRICS
) -> list[VersionSeries]:
    """The `keys` series of each version that has a monitoring run, as MLflow holds them."""
    from mlops_platform.registry import model_name

    client = mlflow_client()
    found = []
    for version in model_versions:
        run = find_monitoring_run(client, model_name(), version)
        if run is not None:
            series = {
                key: {
                    datetime.fromtimestamp(point.step, UTC): point.value
                    for point in client.get_metric_history(run.info.run_id, key)
                }
                for key in keys
            }
            found.append(VersionSeries(version, run.info.run_id, series))
    return found
