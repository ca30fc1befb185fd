"""
### Ingest

Loads one CSV file (our layout or the public dataset's) into the feature store; dirty
rows go to `ingest_quarantine` with their reason. When rows were loaded, the task updates
the feature-rows asset, which starts `feature_pipeline`: the new data is built into a
snapshot, and a snapshot that passes validation starts `continuous_training`.

Params: `path` (a CSV file the workers can read) and `year` (for month names).
CLI equivalent: `mlops data ingest FILE.csv`, which posts the same asset event to Airflow.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from mlops_platform.orchestration import dag_defaults, features_asset_uri

# Assets are named by their URI: to Airflow one name must always mean one URI.
FEATURE_ROWS = Asset(uri=features_asset_uri())


@dag(
    dag_id="ingest",
    schedule=None,
    params={
        "path": Param(type="string", minLength=1, description="CSV file the workers can read"),
        "year": Param(2025, type="integer", description="Year of files with month names"),
    },
    tags=["mlops", "data"],
    doc_md=__doc__,
    **dag_defaults(),
)
def ingest():
    @task(outlets=[FEATURE_ROWS])
    def ingest_file(**context) -> dict:
        from airflow.exceptions import AirflowSkipException

        from mlops_platform.data.ingest import ingest_csv, new_rows_announcement

        params = context["params"]
        result = ingest_csv(params["path"], year=params["year"])
        if not result.rows_loaded:
            # A skipped task emits no asset event: nothing new for the feature pipeline.
            raise AirflowSkipException(f"{result.file_name}: no row loaded")
        announcement = new_rows_announcement(result)
        context["outlet_events"][FEATURE_ROWS].extra = announcement
        return announcement

    ingest_file()


ingest_dag = ingest()

if __name__ == "__main__":
    ingest_dag.test()
