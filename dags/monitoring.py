"""
### Monitoring

Every hour: data drift of the champion's live traffic against its training profile
(PSI and chi-square, counted inside MariaDB) and live accuracy from late labels, each
stored as a report; then one decision on those reports, passed by id. `retrain` triggers
`continuous_training` with `reason=drift|performance` and the report id; otherwise the
retraining branch is skipped.

All windows end at the run's logical date, so a re-run judges the same window.
CLI equivalent: `mlops drift check`, `mlops monitor performance`,
`mlops monitor decide DRIFT_REPORT PERFORMANCE_REPORTS…`.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from mlops_platform.config import get_settings
from mlops_platform.orchestration import DAG_DEFAULTS, TRAINING_DAG_ID, run_moment, schedule_of


@dag(
    dag_id="monitoring",
    schedule=schedule_of(get_settings().monitoring_schedule),
    render_template_as_native_obj=True,
    tags=["mlops", "monitoring"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def monitoring():
    @task
    def drift_check(**context) -> int:
        from mlops_platform.monitoring.drift import check

        return check(end=run_moment(context)).report_id

    @task
    def performance_check(**context) -> list[int]:
        from mlops_platform.monitoring.performance import performance

        return performance(end=run_moment(context)).report_ids

    @task.branch
    def decide(drift_report_id: int, performance_report_ids: list[int], **context) -> str:
        from mlops_platform.monitoring.decision import decide

        decision = decide(drift_report_id, performance_report_ids)
        if decision.action != "retrain":
            return "no_retraining"
        context["ti"].xcom_push(
            key="conf", value={"reason": decision.reason, "report_id": decision.report_id}
        )
        return "trigger_retraining"

    trigger_retraining = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id=TRAINING_DAG_ID,
        trigger_run_id="retrain__{{ run_id }}",
        conf="{{ ti.xcom_pull(task_ids='decide', key='conf') }}",
        skip_when_already_exists=True,
    )

    @task
    def record_trigger(**context) -> None:
        from mlops_platform.monitoring.reports import record_trigger

        conf = context["ti"].xcom_pull(task_ids="decide", key="conf")
        record_trigger(conf["report_id"], f"retrain__{context['run_id']}")

    decision = decide(drift_check(), performance_check())
    decision >> trigger_retraining >> record_trigger()
    decision >> EmptyOperator(task_id="no_retraining")


monitoring_dag = monitoring()

if __name__ == "__main__":
    monitoring_dag.test()
