"""Each DAG run for real with `dag.test()` against the test MariaDB (and MLflow)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from tests.airflow_support import migrate, run_dag_test

QUICK_TRAINING = {"TRAIN_TRIALS": "1", "TRAIN_MAX_ITERATIONS": "80"}


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
    airflow_home: Path, store_url: str, use_mlflow: str
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
