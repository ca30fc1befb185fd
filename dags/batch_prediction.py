"""
### Batch prediction

Scores every active customer's latest month of features with the champion and writes
`batch_predictions` for the run's logical date. A re-run replaces that date's rows in
one transaction. CLI equivalent: `mlops batch score --date YYYY-MM-DD`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from mlops_platform.config import get_settings
from mlops_platform.orchestration import dag_defaults, run_moment, schedule_of


@dag(
    dag_id="batch_prediction",
    schedule=schedule_of(get_settings().batch_prediction_schedule),
    tags=["mlops", "serving"],
    doc_md=__doc__,
    **dag_defaults(),
)
def batch_prediction():
    @task
    def score_customers(**context) -> dict:
        from mlops_platform.batch import score_customers

        moment = run_moment(context)
        result = score_customers(moment.date())
        return {"score_date": result.score_date.isoformat(), "rows": result.rows,
                "model_version": result.model_version}  # fmt: skip

    score_customers()


batch_prediction_dag = batch_prediction()

if __name__ == "__main__":
    batch_prediction_dag.test()
