"""`mlops lineage` end to end on real MariaDB and MLflow: a model trained and promoted under
(simulated) Airflow runs, a prediction it logged, then rebuilt, damaged and pruned snapshots."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from sqlalchemy import text

from mlops_platform import db, logstore, registry
from mlops_platform.cli import main
from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.features import (
    PruneRefused,
    build_snapshot,
    describe_build,
    prune_builds,
    read_snapshot,
)
from mlops_platform.lineage import UnknownRequest, prune_snapshots, trace
from mlops_platform.model import predicted_classes
from mlops_platform.schema import FEATURE_NAMES
from mlops_platform.training import Candidate, gate_candidate, git_commit, train_candidate
from mlops_platform.validation import ensure_validated_snapshot
from tests.training_support import quick_training

BASE_DT = "2025-07-01"
FEATURE_RUN = "scheduled__2025-07-01T00:00:00+00:00"
TRAINING_RUN = "asset_triggered__2025-07-01T00:05:00+00:00"


@dataclass(frozen=True)
class Trained:
    url: str
    candidate: Candidate
    request_id: str
    predicted_class: str


def log_prediction(
    candidate: Candidate, request_id: str, url: str, role: str = logstore.CHAMPION_ROLE
) -> str:
    """Score one snapshot row with the registered version and log it as the service does."""
    row = read_snapshot(BASE_DT, url, build_id=candidate.build_id).dropna().iloc[[0]]
    probabilities = registry.load_version(candidate.version).predict_proba(row)
    predicted = predicted_classes(probabilities)
    record = {name: row[name].iloc[0] for name in FEATURE_NAMES}
    record |= {"customer_id": row["customer_id"].iloc[0], "month": row["month"].iloc[0]}
    batch = logstore.ScoredBatch(
        records=[record],
        probabilities=probabilities,
        predicted_classes=list(predicted),
        unseen_categories=[()],
        request_ids=[request_id],
        created_at=datetime.now(UTC).replace(tzinfo=None),
        model_name=registry.model_name(),
        model_version=candidate.version,
        latency_ms=2.5,
        role=role,
    )
    assert logstore.store(logstore.table([batch]), url) == 1
    return str(predicted[0])


@pytest.fixture(scope="module")
def trained(module_store_url: str, mlflow_server: str) -> Iterator[Trained]:
    """A snapshot built and a model trained and promoted, each inside an Airflow task's
    environment, and one prediction the model logged."""
    with quick_training(module_store_url, mlflow_server, "lineage") as patch:
        # What Airflow exports to a task's process before running it.
        patch.setenv("AIRFLOW_CTX_DAG_ID", "feature_pipeline")
        patch.setenv("AIRFLOW_CTX_DAG_RUN_ID", FEATURE_RUN)
        ensure_validated_snapshot(BASE_DT)
        patch.setenv("AIRFLOW_CTX_DAG_ID", "continuous_training")
        patch.setenv("AIRFLOW_CTX_DAG_RUN_ID", TRAINING_RUN)
        candidate = train_candidate(BASE_DT, reason="new-data")
        patch.delenv("AIRFLOW_CTX_DAG_ID")
        patch.delenv("AIRFLOW_CTX_DAG_RUN_ID")
        assert gate_candidate(candidate, actor="pytest").promoted
        request_id = str(uuid.uuid4())
        predicted = log_prediction(candidate, request_id, module_store_url)
        yield Trained(module_store_url, candidate, request_id, predicted)


def test_lineage_follows_a_prediction_to_its_run_snapshot_dag_runs_commit_and_deployment(
    trained: Trained,
) -> None:
    found = trace(trained.request_id)

    assert found.request_id == trained.request_id
    assert found.customer_id is not None and found.feature_month < date(2025, 7, 1)
    assert set(found.features) == set(FEATURE_NAMES)
    (served,) = found.scored_by
    assert (served.role, served.model_version) == ("champion", trained.candidate.version)
    assert served.predicted_class == trained.predicted_class
    assert sum(served.probabilities.values()) == pytest.approx(1)
    assert served.registered and served.run is not None
    assert served.run.run_id == trained.candidate.run_id
    assert served.run.experiment_name == get_settings().mlflow_experiment
    assert served.run.link.endswith(f"/runs/{trained.candidate.run_id}")
    assert served.run.metrics["test_macro_f1"] == pytest.approx(
        trained.candidate.test_metrics["macro_f1"]
    )
    assert served.run.trigger_reason == "new-data"
    assert served.git_commit == (git_commit() or "unknown")  # as training tags it
    assert (served.training_dag_run.dag_id, served.training_dag_run.run_id) == (
        "continuous_training",
        TRAINING_RUN,
    )
    snapshot = served.snapshot
    assert snapshot.resolvable and snapshot.problem is None
    assert (snapshot.base_dt, snapshot.build_id) == (date(2025, 7, 1), trained.candidate.build_id)
    assert snapshot.rows_present == snapshot.row_count > 1_000
    assert snapshot.content_hash == snapshot.recorded_hash
    version = MlflowClient().get_model_version(registry.model_name(), trained.candidate.version)
    assert version.tags["snapshot_hash"] == snapshot.content_hash
    assert (snapshot.built_by.dag_id, snapshot.built_by.run_id) == ("feature_pipeline", FEATURE_RUN)
    (deployment,) = served.deployments
    assert (deployment.action, deployment.actor) == ("promote", "pytest")


def test_the_request_id_lookup_uses_its_index(trained: Trained) -> None:
    with db.transaction(trained.url) as connection:
        plan = connection.execute(
            text("EXPLAIN SELECT * FROM prediction_log WHERE request_id = :id"),
            {"id": trained.request_id},
        ).mappings().one()  # fmt: skip
    assert plan["type"] != "ALL"
    assert plan["key"] == "ix_prediction_request"


def test_cli_prints_the_lineage_as_json_and_as_tables(trained: Trained) -> None:
    runner = CliRunner()
    as_json = runner.invoke(main, ["lineage", trained.request_id, "--json"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert document["request_id"] == trained.request_id
    served = document["scored_by"][0]
    assert served["snapshot"]["resolvable"] is True
    assert served["run"]["run_id"] == trained.candidate.run_id
    assert served["deployments"][0]["action"] == "promote"

    tables = runner.invoke(main, ["lineage", trained.request_id])
    assert tables.exit_code == 0, tables.output
    for text_shown in (trained.candidate.run_id, FEATURE_RUN, TRAINING_RUN, "resolvable"):
        assert text_shown in tables.output.replace("\n", "")

    unknown = runner.invoke(main, ["lineage", "no-such-request"])
    assert unknown.exit_code == 1
    assert "no prediction is logged under request id 'no-such-request'" in unknown.output
    assert "Traceback" not in unknown.output
    with pytest.raises(UnknownRequest):
        trace(str(uuid.uuid4()))


def test_several_scoring_versions_of_one_request_are_listed_served_first(trained: Trained) -> None:
    """A request scored by the champion and, in shadow, by a challenger: one entry each."""
    request_id = str(uuid.uuid4())
    log_prediction(trained.candidate, request_id, trained.url, role=logstore.SHADOW_ROLE)
    log_prediction(trained.candidate, request_id, trained.url)
    roles = [scored.role for scored in trace(request_id).scored_by]
    assert roles == ["champion", "shadow"]


def test_snapshot_stays_resolvable_after_a_rebuild_until_it_is_pruned(trained: Trained) -> None:
    url, build_id = trained.url, trained.candidate.build_id
    # Corrected labels change the snapshot of the same base date: a new build.
    with db.transaction(url) as connection:
        connection.execute(
            text(
                "UPDATE credit_labels SET credit_score = 'Good'"
                " WHERE month = '2025-05-01' AND credit_score = 'Poor' LIMIT 20"
            )
        )
    rebuilt = build_snapshot(BASE_DT, url=url)
    assert rebuilt.build_id > build_id

    snapshot = trace(trained.request_id).scored_by[0].snapshot
    assert snapshot.build_id == build_id and snapshot.resolvable

    # The policy keeps a build a registered version names, whatever the retention.
    with pytest.raises(PruneRefused, match=str(build_id)):
        prune_snapshots((build_id,))
    assert prune_snapshots(retention_days=0, dry_run=True) == []

    # Rows lost behind the platform's back are reported, not trusted.
    with db.transaction(url) as connection:
        connection.execute(
            text("DELETE FROM training_snapshots WHERE build_id = :id LIMIT 3"), {"id": build_id}
        )
    damaged = trace(trained.request_id).scored_by[0].snapshot
    assert not damaged.resolvable
    assert damaged.rows_present == damaged.row_count - 3
    assert "rows are stored" in damaged.problem

    # Pruned regardless of the registry (as if the version had been deleted from it).
    assert [b.build_id for b in prune_builds(set(), build_ids=[build_id], url=url)] == [build_id]
    pruned = trace(trained.request_id).scored_by[0].snapshot
    assert not pruned.resolvable and "pruned" in pruned.problem
    assert pruned.rows_present == 0 and describe_build(build_id, url).pruned_at is not None


def test_a_snapshot_built_by_the_feature_pipeline_dag_records_its_run(
    store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Real Airflow (`dag.test()`): the task's exported context reaches the build row."""
    from tests.airflow_support import migrate, run_dag_test

    home = tmp_path_factory.mktemp("airflow-home")
    migrate(home)
    load_into_store(GeneratorConfig(customers=600, months=6, start=date(2025, 1, 1)), store_url)
    outcome = run_dag_test(
        home, "feature_pipeline", {"FEATURE_STORE_URL": store_url},
        logical_date="2025-07-01T00:00:00+00:00",
    )  # fmt: skip
    assert outcome["state"] == "success", outcome["log"]
    with db.transaction(store_url) as connection:
        dag_id, run_id = connection.execute(
            text("SELECT airflow_dag_id, airflow_run_id FROM snapshot_builds")
        ).one()
    assert dag_id == "feature_pipeline"
    assert run_id.startswith("manual__")  # dag.test() names its run by the wall clock
