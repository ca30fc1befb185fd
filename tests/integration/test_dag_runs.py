"""Each DAG run for real with `dag.test()` against the test MariaDB (and MLflow)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from tests.airflow_support import migrate, run_dag_test


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
