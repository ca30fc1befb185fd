"""
### Continuous training

Trains a CatBoost model on a validated snapshot (a bounded search, each trial a nested
MLflow run), registers it, and runs the champion gate: the new version becomes
`champion` only if it beats the current one on the same held-out rows. The gate writes
the decision to the `deployments` table; a promotion updates the champion asset,
which the prediction service follows.

Starts when the training-snapshot asset updates (new data), when `monitoring`
triggers it (drift or performance), or by hand. Params: `base_dt` (first of a month;
default: the announced snapshot or this month) and `reason`.
CLI equivalent: `mlops train --base-dt D --reason R`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, Param, dag, task

from mlops_platform.alerting.notify import GateDecisionNotifier
from mlops_platform.orchestration import (
    REBUILD_REASONS,
    TRAINING_DAG_ID,
    TRIGGER_REASONS,
    champion_asset_uri,
    dag_defaults,
    run_moment,
    snapshot_asset_uri,
)

# Assets are named by their URI: to Airflow one name must always mean one URI.
TRAINING_SNAPSHOT = Asset(uri=snapshot_asset_uri())
CHAMPION = Asset(uri=champion_asset_uri())


@dag(
    dag_id=TRAINING_DAG_ID,
    schedule=[TRAINING_SNAPSHOT],
    params={
        "base_dt": Param(None, type=["null", "string"], description="Snapshot date YYYY-MM-01"),
        "reason": Param("manual", enum=list(TRIGGER_REASONS), description="Why it trains"),
        "report_id": Param(None, type=["null", "integer"], description="Monitoring report"),
    },
    tags=["mlops", "training"],
    doc_md=__doc__,
    **dag_defaults(),
)
def continuous_training():
    @task
    def validate_snapshot(**context) -> dict:
        from mlops_platform.orchestration import training_inputs
        from mlops_platform.validation import ensure_validated_snapshot

        events = context["triggering_asset_events"].get(TRAINING_SNAPSHOT, [])
        inputs = training_inputs(
            context["params"],
            context["dag_run"].run_type,
            [event.extra for event in events],
            run_moment(context),
        )
        build_id = ensure_validated_snapshot(
            inputs.base_dt, rebuild=inputs.reason in REBUILD_REASONS
        )
        return {"base_dt": inputs.base_dt, "build_id": build_id, "reason": inputs.reason}

    @task(execution_timeout=timedelta(minutes=20), retries=0)
    def train(inputs: dict, **context) -> dict:
        from dataclasses import asdict

        from mlops_platform.training import train_candidate

        candidate = train_candidate(
            inputs["base_dt"], reason=inputs["reason"], dag_run_id=context["run_id"]
        )
        return asdict(candidate)

    @task(on_success_callback=GateDecisionNotifier())
    def champion_gate(candidate: dict) -> dict:
        from mlops_platform.training import Candidate, gate_candidate

        decision = gate_candidate(Candidate(**candidate), actor="airflow")
        return {
            "version": decision.version,
            "promoted": decision.promoted,
            "in_shadow": decision.in_shadow,
            "reasons": list(decision.reasons),
        }

    @task(outlets=[CHAMPION])
    def publish_decision(decision: dict, **context) -> dict:
        from airflow.exceptions import AirflowSkipException

        if not decision["promoted"]:
            # A skipped task emits no asset event: the champion did not change.
            raise AirflowSkipException(f"v{decision['version']} stays challenger")
        context["outlet_events"][CHAMPION].extra = {"version": decision["version"]}
        return decision

    publish_decision(champion_gate(train(validate_snapshot())))


continuous_training_dag = continuous_training()

if __name__ == "__main__":
    continuous_training_dag.test()
