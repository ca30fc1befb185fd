"""The real Airflow scheduler: a feature pipeline run announces its snapshot, the asset
starts continuous training, and a champion appears. Driven through the REST API v2."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.demo import wait_for
from mlops_platform.mariadb_server import free_port
from tests.airflow_support import Standalone, migrate


@pytest.fixture
def airflow(tmp_path: Path, store_url: str, use_mlflow: str):
    settings = get_settings()
    migrate(tmp_path)
    standalone = Standalone(
        tmp_path,
        {
            "FEATURE_STORE_URL": store_url,
            "MLFLOW_TRACKING_URI": use_mlflow,
            "MLFLOW_EXPERIMENT": settings.mlflow_experiment,
            "MODEL_NAME": settings.model_name,
            "TRAIN_TRIALS": "1",
            "TRAIN_MAX_ITERATIONS": "80",
        },
        free_port(),
    )
    try:
        standalone.wait_healthy()
        yield standalone
    finally:
        standalone.stop()


def test_a_feature_run_triggers_training_through_the_asset(
    airflow: Standalone, store_url: str
) -> None:
    load_into_store(GeneratorConfig(customers=800, months=6, start=date(2025, 1, 1)), store_url)

    client = airflow.client
    wait_for(
        lambda: {"feature_pipeline", "continuous_training"} <= client.dag_ids(),
        "the DAG processor to parse the project's DAGs",
        120,
    )
    for dag_id in ("feature_pipeline", "continuous_training"):
        client.unpause(dag_id)
    client.trigger("feature_pipeline", logical_date=datetime(2025, 7, 1, tzinfo=UTC))

    run = wait_for(
        lambda: client.finished_run("continuous_training"),
        "the asset-triggered continuous_training run",
        420,
    )
    assert run.run_type == "asset_triggered"

    settings = get_settings()
    client = MlflowClient()
    champion = client.get_registered_model(settings.model_name).aliases["champion"]
    tags = client.get_run(client.get_model_version(settings.model_name, champion).run_id).data.tags
    assert tags["trigger_reason"] == "new-data"
    assert tags["base_dt"] == "2025-07-01"
    assert tags["airflow_dag_run_id"] == run.dag_run_id
