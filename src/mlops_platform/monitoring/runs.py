"""A drift report's MLflow run beside the champion's training run: metrics and HTML page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_platform.monitoring.reference import mlflow_client

if TYPE_CHECKING:
    from mlops_platform.monitoring.drift import DriftReport
    from mlops_platform.monitoring.reference import Reference


def log_drift_report(report: DriftReport, reference: Reference, html_path: Path) -> str:
    """Log the report in a monitoring run beside the champion's run; its run id.

    Re-checking a window logs into the same run (found by its report id tag). Every
    statistic of every feature is a metric `<statistic>_<feature>`.
    """
    from mlflow.entities import Metric, RunTag

    client = mlflow_client()
    tags = {
        "monitoring_kind": "drift",
        "monitoring_report_id": str(report.report_id),
        "model_name": report.model_name,
        "model_version": report.model_version,
        "window_start": report.window.start.isoformat(),
        "window_end": report.window.end.isoformat(),
    }
    # Report ids restart with a new database; the window tags keep runs apart then.
    existing = client.search_runs(
        [reference.experiment_id],
        filter_string=" and ".join(f"tags.{key} = '{value}'" for key, value in tags.items()),
        max_results=1,
    )
    if existing:
        run_id = existing[0].info.run_id
    else:
        run_id = client.create_run(
            reference.experiment_id,
            run_name=f"drift v{report.model_version} {report.window.label()}",
            tags={**tags, "champion_run_id": reference.run_id},
        ).info.run_id
    at = int(time.time() * 1_000)
    values = {"rows": report.rows, "drift_share": report.verdict.drift_share}
    values |= {
        f"{key}_{feature.name}": value
        for feature in (*report.features, report.prediction)
        for key, value in feature.scores.items()
        if value is not None
    }
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), at, 0) for key, value in values.items()],
        tags=[RunTag("decision", report.decision)],
    )
    client.log_artifact(run_id, str(html_path))
    client.set_terminated(run_id)
    return run_id
