"""Each DAG run for real with `dag.test()` against the test MariaDB (and MLflow)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from mlops_platform import batch, db
from mlops_platform.cli import main
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from tests.airflow_support import (
    CONCEPT_DRIFT,
    QUICK_TRAINING,
    concept_drift_champion,
    migrate,
    run_dag_test,
)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    migrate(home)
    return home


def test_feature_pipeline_builds_and_validates_the_months_snapshot(
    airflow_home: Path, store_url: str
) -> None:
    load_into_store(GeneratorConfig(customers=600, months=6, start=date(2025, 1, 1)), store_url)
    outcome = run_dag_test(
        airflow_home, "feature_pipeline", {"FEATURE_STORE_URL": store_url},
        logical_date="2025-07-01T00:00:00+00:00",
    )  # fmt: skip
    assert outcome["state"] == "success", outcome["log"]
    assert outcome["tasks"] == {"build_snapshot": "success", "validate_snapshot": "success"}
    with db.get_engine(store_url).connect() as connection:
        passed = connection.execute(
            text("SELECT passed FROM snapshot_validations WHERE base_dt = '2025-07-01'")
        ).scalar_one()
    assert passed == 1
    with sqlite3.connect(airflow_home / "airflow.db") as airflow_db:
        (extra,) = airflow_db.execute(
            "SELECT asset_event.extra FROM asset_event"
            " JOIN asset ON asset.id = asset_event.asset_id"
            " WHERE asset.uri LIKE '%/training_snapshots' ORDER BY asset_event.id DESC LIMIT 1"
        ).fetchone()
    # dag.test() makes a manual run: the training it starts is for new data, not the schedule.
    assert json.loads(extra)["reason"] == "new-data"


def test_feature_pipeline_fails_without_announcing_a_bad_snapshot(
    airflow_home: Path, store_url: str
) -> None:
    outcome = run_dag_test(
        airflow_home, "feature_pipeline", {"FEATURE_STORE_URL": store_url},
        logical_date="2025-07-01T00:00:00+00:00",
    )  # fmt: skip
    assert outcome["state"] == "failed"
    assert outcome["tasks"]["validate_snapshot"] == "failed"
    assert "min_rows" in outcome["log"]


def test_feature_pipeline_then_training_produces_a_champion_that_batch_scoring_uses(
    airflow_home: Path, store_url: str, use_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from mlops_platform.config import get_settings

    settings = get_settings()
    env = {
        **QUICK_TRAINING,
        "FEATURE_STORE_URL": store_url,
        "MLFLOW_TRACKING_URI": use_mlflow,
        "MLFLOW_EXPERIMENT": settings.mlflow_experiment,
        "MODEL_NAME": settings.model_name,
    }
    load_into_store(GeneratorConfig(customers=800, months=6, start=date(2025, 1, 1)), store_url)
    features = run_dag_test(
        airflow_home, "feature_pipeline", env, logical_date="2025-07-01T00:00:00+00:00"
    )
    assert features["state"] == "success", features["log"]

    training = run_dag_test(
        airflow_home, "continuous_training", env, logical_date="2025-07-02T00:00:00+00:00",
        conf={"base_dt": "2025-07-01", "reason": "manual"},
    )  # fmt: skip
    assert training["state"] == "success", training["log"]
    assert training["tasks"] == {
        "validate_snapshot": "success", "train": "success",
        "champion_gate": "success", "publish_decision": "success",
    }  # fmt: skip
    client = MlflowClient()
    champion = client.get_registered_model(settings.model_name).aliases["champion"]
    run = client.get_run(client.get_model_version(settings.model_name, champion).run_id)
    assert run.data.tags["airflow_dag_run_id"].startswith("manual__")
    assert run.data.tags["base_dt"] == "2025-07-01"

    scoring = run_dag_test(
        airflow_home, "batch_prediction", env, logical_date="2025-07-15T00:00:00+00:00"
    )
    assert scoring["state"] == "success", scoring["log"]
    with db.get_engine(store_url).connect() as connection:
        scored = connection.execute(
            text(
                "SELECT COUNT(*), COUNT(DISTINCT model_version), MAX(feature_month)"
                " FROM batch_predictions WHERE score_date = '2025-07-15'"
            )
        ).one()
    assert scored == (800, 1, date(2025, 6, 1))

    monkeypatch.setenv("FEATURE_STORE_URL", store_url)
    get_settings.cache_clear()
    by_hand = CliRunner().invoke(main, ["batch", "score", "--date", "2025-07-15"])
    assert by_hand.exit_code == 0, by_hand.output
    assert re.search(r"customers scored\s*│?\s*800\b", by_hand.output)
    assert sum(batch.scored_classes("2025-07-15", store_url).values()) == 800


def test_monitoring_skips_on_clean_traffic_and_triggers_retraining_on_drift(
    airflow_home: Path, store_url: str, use_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from mlops_platform import traffic

    env = concept_drift_champion(store_url, use_mlflow, monkeypatch)
    now = datetime.now(UTC).replace(microsecond=0)
    traffic.simulate(800, date(2025, 3, 1), "concept", 600, target="log",
                     at=now - timedelta(hours=2), url=store_url, **CONCEPT_DRIFT)  # fmt: skip

    clean = run_dag_test(airflow_home, "monitoring", env, logical_date=now.isoformat())
    assert clean["state"] == "success", clean["log"]
    assert clean["tasks"]["no_retraining"] == "success"
    assert clean["tasks"]["trigger_retraining"] == "skipped"
    # No challenger, so nothing was scored in shadow: the live-evidence gate has no work.
    assert clean["tasks"]["shadow_check"] == clean["tasks"]["shadow_gate"] == "skipped"
    assert clean["tasks"]["canary_check"] == "skipped"
    # The accuracy estimate ran beside the checks, with the champion's calibration.
    assert clean["tasks"]["estimate_check"] == "success"
    with db.get_engine(store_url).connect() as connection:
        temperature, rows = connection.execute(
            text(
                "SELECT JSON_VALUE(stats, '$.calibration.temperature'), row_count"
                " FROM drift_reports WHERE kind = 'estimate'"
            )
        ).one()
    assert float(temperature) > 0 and rows == 600

    traffic.simulate(800, date(2025, 6, 1), "concept", 600, target="log",
                     at=now - timedelta(hours=1), url=store_url, **CONCEPT_DRIFT)  # fmt: skip
    arrived = now - timedelta(minutes=30)
    traffic.deliver_labels(800, date(2025, 6, 1), "concept", observed_at=arrived,
                           url=store_url, **CONCEPT_DRIFT)  # fmt: skip
    later = (now + timedelta(minutes=1)).isoformat()
    drifted = run_dag_test(airflow_home, "monitoring", env, logical_date=later)
    assert drifted["state"] == "success", drifted["log"]
    assert drifted["tasks"]["trigger_retraining"] == "success"
    assert drifted["tasks"]["no_retraining"] == "skipped"
    with db.get_engine(store_url).connect() as connection:
        triggered = connection.execute(
            text("SELECT kind, triggered_run FROM drift_reports WHERE triggered_run IS NOT NULL")
        ).all()
    assert len(triggered) == 1
    kind, run_id = triggered[0]
    assert kind == "performance" and run_id.startswith("retrain__")


def test_monitoring_promotes_a_shadow_challenger_on_live_evidence(
    airflow_home: Path, store_url: str, use_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retrained model passes the gate into shadow, scores June's traffic beside the
    champion, and the monitoring run promotes it once June's labels show it is better."""
    from datetime import UTC, datetime, timedelta

    from mlflow import MlflowClient

    from mlops_platform import registry, traffic
    from mlops_platform.config import get_settings
    from mlops_platform.training import gate_candidate, train_candidate
    from mlops_platform.validation import ensure_validated_snapshot

    env = concept_drift_champion(store_url, use_mlflow, monkeypatch)
    monkeypatch.setenv("GATE_SHADOW_FIRST", "true")
    monkeypatch.setenv("MLOPS_LOOKBACK_MONTHS", "3")
    get_settings.cache_clear()
    ensure_validated_snapshot("2025-07-01")
    decision = gate_candidate(train_candidate("2025-07-01", reason="drift"))
    assert decision.in_shadow and not decision.promoted, decision.reasons
    name, client = registry.model_name(), MlflowClient()
    before = client.get_registered_model(name).aliases
    assert before["challenger"] == decision.version != before["champion"]
    assert registry.gate_deployment(decision.version).action == "shadow"

    now = datetime.now(UTC).replace(microsecond=0)
    traffic.simulate(800, date(2025, 6, 1), "concept", 600, target="log", with_challenger=True,
                     at=now - timedelta(hours=2), url=store_url, **CONCEPT_DRIFT)  # fmt: skip
    traffic.deliver_labels(800, date(2025, 6, 1), "concept", observed_at=now - timedelta(hours=1),
                           url=store_url, **CONCEPT_DRIFT)  # fmt: skip
    run = run_dag_test(airflow_home, "monitoring", {**env, "SHADOW_MIN_LABELLED": "300"},
                       logical_date=now.isoformat())  # fmt: skip

    assert run["state"] == "success", run["log"]
    assert run["tasks"]["shadow_check"] == run["tasks"]["shadow_gate"] == "success"
    after = client.get_registered_model(name).aliases
    assert after["champion"] == decision.version and "challenger" not in after
    assert after["previous_champion"] == before["champion"]
    (promotion, *_) = registry.deployment_history(store_url, limit=1)
    assert (promotion.action, promotion.version, promotion.actor) == (
        "promote", decision.version, "airflow",
    )  # fmt: skip
    assert promotion.reason.startswith("shadow: challenger better")
    evidence = promotion.metrics
    assert evidence["labelled"] == 600 and evidence["mcnemar_p_value"] <= 0.05
    assert evidence["challenger"]["macro_f1"] > evidence["champion"]["macro_f1"] + 0.01
    with db.get_engine(store_url).connect() as connection:
        kind, row_count, decided = connection.execute(
            text("SELECT kind, row_count, decision FROM drift_reports WHERE report_id = :id"),
            {"id": evidence["shadow_report_id"]},
        ).one()
    assert (kind, row_count, decided) == ("shadow", 600, "challenger-better")
