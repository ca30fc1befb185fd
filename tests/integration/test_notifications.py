"""Real DAG runs (`dag.test()`) mail their failures and gate decisions to a local SMTP server."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mlops_platform.data.generator import GeneratorConfig, load_into_store
from tests.airflow_support import (
    CONCEPT_DRIFT,
    QUICK_TRAINING,
    concept_drift_champion,
    migrate,
    run_dag_test,
)
from tests.smtp_sink import free_port, smtp_sink

RECIPIENTS = "ops@example.org"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    migrate(home)
    return home


def mail_settings(port: int, to: str = RECIPIENTS) -> dict[str, str]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TO": to, "SMTP_TIMEOUT_S": "3"}


def test_a_failed_task_mails_its_failure_and_without_recipients_nothing_is_sent(
    airflow_home: Path, store_url: str
) -> None:
    # An empty store: the snapshot is built, then fails validation (no retry for bad data).
    with smtp_sink() as (sink, port):
        failed = run_dag_test(
            airflow_home, "feature_pipeline",
            {"FEATURE_STORE_URL": store_url, **mail_settings(port)},
            logical_date="2025-07-01T00:00:00+00:00",
        )  # fmt: skip
        assert failed["state"] == "failed"
        assert failed["tasks"]["validate_snapshot"] == "failed"
        (mail,) = sink.wait_for(1)
        assert mail["Subject"] == "[mlops] feature_pipeline.validate_snapshot failed"
        assert mail["To"] == RECIPIENTS
        body = mail.get_content()
        assert "AirflowFailException" in body and "min_rows" in body
        assert "/dags/feature_pipeline/runs/" in body

        quiet = run_dag_test(
            airflow_home, "feature_pipeline",
            {"FEATURE_STORE_URL": store_url, **mail_settings(port, to="")},
            logical_date="2025-07-01T00:00:00+00:00",
        )  # fmt: skip
        assert quiet["tasks"] == failed["tasks"]
        assert len(sink.wait_for(2, timeout=2)) == 1
    assert "not sent" not in quiet["log"]


def test_gate_decisions_are_mailed_and_an_smtp_outage_fails_no_task(
    airflow_home: Path, store_url: str, use_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_platform.config import get_settings
    from mlops_platform.validation import ensure_validated_snapshot

    monkeypatch.setenv("FEATURE_STORE_URL", store_url)
    get_settings.cache_clear()
    settings = get_settings()
    load_into_store(GeneratorConfig(customers=800, months=6, start=date(2025, 1, 1)), store_url)
    ensure_validated_snapshot("2025-07-01")
    env = {
        **QUICK_TRAINING, "FEATURE_STORE_URL": store_url, "MLFLOW_TRACKING_URI": use_mlflow,
        "MLFLOW_EXPERIMENT": settings.mlflow_experiment, "MODEL_NAME": settings.model_name,
    }  # fmt: skip
    conf = {"base_dt": "2025-07-01", "reason": "manual"}

    with smtp_sink() as (sink, port):
        first = run_dag_test(
            airflow_home, "continuous_training", {**env, **mail_settings(port)},
            logical_date="2025-07-02T00:00:00+00:00", conf=conf,
        )  # fmt: skip
        assert first["state"] == "success", first["log"]
        (mail,) = sink.wait_for(1)
    assert mail["Subject"] == f"[mlops] {settings.model_name} v1 promoted to champion"
    body = mail.get_content()
    assert "Judged against: no champion" in body
    assert "Reason: manual:" in body
    assert "deployments row" in body
    assert any(line.startswith("macro_f1 ") for line in body.splitlines())

    # Nothing listens on the port: the gate still decides, and every task succeeds.
    second = run_dag_test(
        airflow_home, "continuous_training", {**env, **mail_settings(free_port())},
        logical_date="2025-07-03T00:00:00+00:00", conf=conf,
    )  # fmt: skip
    assert second["state"] == "success", second["log"]
    assert second["tasks"]["champion_gate"] == "success"
    assert "not sent through 127.0.0.1" in second["log"]


def test_a_retrain_trigger_is_mailed_with_the_report_that_called_for_it(
    airflow_home: Path, store_url: str, use_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from mlops_platform import traffic

    env = concept_drift_champion(store_url, use_mlflow, monkeypatch)
    now = datetime.now(UTC).replace(microsecond=0)
    june = date(2025, 6, 1)
    traffic.simulate(800, june, "concept", 600, target="log", at=now - timedelta(hours=1),
                     url=store_url, **CONCEPT_DRIFT)  # fmt: skip
    traffic.deliver_labels(800, june, "concept", observed_at=now - timedelta(minutes=30),
                           url=store_url, **CONCEPT_DRIFT)  # fmt: skip

    with smtp_sink() as (sink, port):
        run = run_dag_test(
            airflow_home, "monitoring", {**env, **mail_settings(port)},
            logical_date=(now + timedelta(minutes=1)).isoformat(),
        )  # fmt: skip
        assert run["state"] == "success", run["log"]
        assert run["tasks"]["record_trigger"] == "success"
        (mail,) = sink.wait_for(1)
    # Concept drift shows in live accuracy: the performance report called for retraining.
    assert mail["Subject"] == f"[mlops] retraining {env['MODEL_NAME']}: performance on v1"
    body = mail.get_content()
    assert "Monitoring triggered retraining run retrain__" in body
    assert "because performance report" in body and "found 'degraded'" in body
    assert "Live accuracy 0." in body
