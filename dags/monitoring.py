"""
### Monitoring

Every hour: data drift of the champion's live traffic against its training profile
(PSI and chi-square, counted inside MariaDB), live accuracy from late labels, and the
label-free accuracy estimate (it also adds the realised accuracy to the estimate of the
window ESTIMATE_SETTLE_DAYS back), each stored as a report. Then one decision on the drift
and live-accuracy reports, passed by id: `retrain` triggers `continuous_training` with
`reason=drift|performance` and the report id; otherwise the retraining branch is skipped.
The estimate feeds gauges and alerts, not the decision: covariate drift already triggers
retraining, and concept drift is invisible to it.

Beside them, live evidence for the challenger: `shadow_check` pairs the champion's and the
challenger's predictions of the same labelled requests (SHADOW_WINDOW_DAYS back) and
stores their accuracy, macro-F1 and McNemar's test as a report; `shadow_gate` reads that
report by id and promotes the challenger when it says the challenger is better (an event
on the champion asset, as the training gate's). Without a challenger both are skipped.
A challenger answering canary customers (SERVING_CANARY_SHARE) has a live-accuracy report
of its own: `canary_check` removes its alias when that report says it degraded.

All windows end at the run's logical date, so a re-run judges the same window.
CLI equivalent: `mlops drift check`, `mlops monitor performance`, `mlops monitor estimate`,
`mlops monitor decide DRIFT_REPORT PERFORMANCE_REPORTS…`, `mlops monitor shadow`,
`mlops model promote-live REPORT`, `mlops model stop-canary PERFORMANCE_REPORTS…`.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, dag, task

from mlops_platform.alerting.notify import GateDecisionNotifier, RetrainTriggerNotifier
from mlops_platform.config import get_settings
from mlops_platform.orchestration import (
    TRAINING_DAG_ID,
    champion_asset_uri,
    dag_defaults,
    run_moment,
    schedule_of,
)

CHAMPION = Asset(uri=champion_asset_uri())


@dag(
    dag_id="monitoring",
    schedule=schedule_of(get_settings().monitoring_schedule),
    render_template_as_native_obj=True,
    tags=["mlops", "monitoring"],
    doc_md=__doc__,
    **dag_defaults(),
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

    @task
    def estimate_check(**context) -> int:
        from mlops_platform.monitoring.estimate import check

        return check(end=run_moment(context))[0].report_id

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

    @task(on_success_callback=RetrainTriggerNotifier(decide_task_id="decide"))
    def record_trigger(**context) -> None:
        from mlops_platform.monitoring.reports import record_trigger

        conf = context["ti"].xcom_pull(task_ids="decide", key="conf")
        record_trigger(conf["report_id"], f"retrain__{context['run_id']}")

    @task
    def shadow_check(**context) -> list[int]:
        from airflow.exceptions import AirflowSkipException

        from mlops_platform.monitoring.shadow import compare

        report_ids = [found.report_id for found in compare(end=run_moment(context))]
        if not report_ids:
            raise AirflowSkipException("no request was scored in shadow in the window")
        return report_ids

    @task(outlets=[CHAMPION], on_success_callback=GateDecisionNotifier())
    def shadow_gate(report_ids: list[int], **context) -> dict:
        from airflow.exceptions import AirflowSkipException

        from mlops_platform.registry import promote_on_live_evidence

        reasons = []
        for report_id in report_ids:
            version, why = promote_on_live_evidence(report_id, actor="airflow")
            if version is not None:
                context["outlet_events"][CHAMPION].extra = {"version": version}
                return {"version": version, "report_id": report_id, "reason": why}
            reasons.append(f"report {report_id}: {why}")
        raise AirflowSkipException("; ".join(reasons))

    @task
    def canary_check(performance_report_ids: list[int]) -> str:
        from airflow.exceptions import AirflowSkipException

        from mlops_platform.registry import stop_degraded_canary

        version, why = stop_degraded_canary(performance_report_ids, actor="airflow")
        if version is None:
            raise AirflowSkipException(why)
        return version

    performance_report_ids = performance_check()
    decision = decide(drift_check(), performance_report_ids)
    canary_check(performance_report_ids)
    estimate_check()
    shadow_gate(shadow_check())
    decision >> trigger_retraining >> record_trigger()
    decision >> EmptyOperator(task_id="no_retraining")


monitoring_dag = monitoring()

if __name__ == "__main__":
    monitoring_dag.test()
