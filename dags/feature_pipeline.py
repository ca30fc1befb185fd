"""
### Feature pipeline

Builds the point-in-time training snapshot for the run's month (features of earlier
months, labels observed by the first of this month) and validates it. It runs on
`FEATURE_PIPELINE_SCHEDULE` and whenever ingest updates the feature-rows asset. A snapshot that
passes updates the training-snapshot asset, which starts `continuous_training`:
with `reason=schedule` when this run was scheduled, `new-data` otherwise.

Re-running a month rebuilds its snapshot in one transaction; nothing is duplicated.
CLI equivalent: `mlops features build --base-dt D && mlops validate --base-dt D`.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task

from mlops_platform.config import get_settings
from mlops_platform.dates import month_of
from mlops_platform.orchestration import (
    announced_reason,
    dag_defaults,
    features_asset_uri,
    run_moment,
    schedule_or_assets,
    snapshot_asset_uri,
)

# Assets are named by their URI: to Airflow one name must always mean one URI.
FEATURE_ROWS = Asset(uri=features_asset_uri())
TRAINING_SNAPSHOT = Asset(uri=snapshot_asset_uri())


@dag(
    dag_id="feature_pipeline",
    schedule=schedule_or_assets(get_settings().feature_pipeline_schedule, [FEATURE_ROWS]),
    tags=["mlops", "features"],
    doc_md=__doc__,
    **dag_defaults(),
)
def feature_pipeline():
    @task
    def build_snapshot(**context) -> dict:
        from mlops_platform.features import build_snapshot

        moment = run_moment(context)
        build = build_snapshot(month_of(moment))
        return {"base_dt": build.base_dt.isoformat(), "build_id": build.build_id}

    @task(outlets=[TRAINING_SNAPSHOT])
    def validate_snapshot(build: dict, **context) -> dict:
        from airflow.exceptions import AirflowFailException

        from mlops_platform.validation import validate_snapshot

        report = validate_snapshot(build["base_dt"])
        if not report.passed:
            # Retrying cannot fix bad data: fail now, and do not announce the snapshot.
            raise AirflowFailException("; ".join(str(f) for f in report.failures))
        reason = announced_reason(context["dag_run"].run_type)
        context["outlet_events"][TRAINING_SNAPSHOT].extra = {**build, "reason": reason}
        return build

    validate_snapshot(build_snapshot())


feature_pipeline_dag = feature_pipeline()

if __name__ == "__main__":
    feature_pipeline_dag.test()
