"""Training against a real MLflow server and MariaDB: runs, artifacts, lineage, the gate."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from sqlalchemy import make_url

from mlops_platform import db, registry, tracking
from mlops_platform.cli import main
from mlops_platform.config import get_settings
from mlops_platform.features import describe_build
from mlops_platform.mariadb_server import free_port
from mlops_platform.schema import (
    CATEGORICAL_FEATURES,
    CREDIT_SCORES,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
)
from mlops_platform.training import Candidate, gate_candidate, train_candidate
from mlops_platform.validation import ensure_validated_snapshot
from tests.servers import start_mlflow_server, stop_process_group
from tests.training_support import quick_training

BASE_DT = "2025-07-01"


@pytest.fixture(scope="module")
def environment(module_store_url: str, mlflow_server: str) -> Iterator[str]:
    """A store with a validated snapshot, and an experiment and model name of this module."""
    with quick_training(module_store_url, mlflow_server, "training"):
        ensure_validated_snapshot(BASE_DT)
        yield module_store_url


@pytest.fixture(scope="module")
def first(environment: str) -> tuple[Candidate, registry.GateDecision]:
    candidate = train_candidate(BASE_DT, reason="manual")
    return candidate, gate_candidate(candidate, actor="pytest")


def test_first_training_logs_a_parent_run_with_nested_trials_and_becomes_champion(first) -> None:
    candidate, decision = first
    client = MlflowClient()
    parent = client.get_run(candidate.run_id)
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{candidate.run_id}'"
    )
    assert len(trials) == 2
    assert all("validation_macro_f1" in t.data.metrics and "depth" in t.data.params for t in trials)
    for split in ("validation", "test"):
        for metric in ("accuracy", "macro_f1", "log_loss", *(f"f1_{c}" for c in CREDIT_SCORES)):
            assert f"{split}_{metric}" in parent.data.metrics
    assert 0.7 < parent.data.metrics["test_accuracy"] < 0.95
    tags = parent.data.tags
    assert tags["base_dt"] == BASE_DT and tags["trigger_reason"] == "manual"
    assert tags["features"].split(",") == list(FEATURE_NAMES)
    assert len(tags["snapshot_hash"]) == 64 and int(tags["snapshot_rows"]) > 1_000
    # The build trained on, and the hash its rows had when built (lineage re-checks it).
    build = describe_build(candidate.build_id)
    assert tags["snapshot_build_id"] == str(build.build_id)
    assert (tags["snapshot_hash"], int(tags["snapshot_rows"])) == (
        build.content_hash,
        build.row_count,
    )
    assert tags["airflow_dag_id"] == ""  # not run by Airflow (test_lineage covers that case)
    assert decision.promoted and decision.previous_champion is None
    assert (
        client.get_registered_model(registry.model_name()).aliases["champion"] == candidate.version
    )


def test_the_parent_run_holds_plots_report_profile_and_a_signed_model(
    first, tmp_path: Path
) -> None:
    candidate, _ = first
    artifacts = {a.path for a in MlflowClient().list_artifacts(candidate.run_id)}
    assert {"confusion_matrix.png", "feature_importance.png", "classification_report.txt",
            "reference_profile.json"} <= artifacts  # fmt: skip
    profile = json.loads(
        Path(mlflow.artifacts.download_artifacts(
            run_id=candidate.run_id, artifact_path="reference_profile.json", dst_path=str(tmp_path)
        )).read_text()
    )  # fmt: skip
    assert set(profile["numeric"]) == set(NUMERIC_FEATURES)
    assert set(profile["categorical"]) == set(CATEGORICAL_FEATURES)
    for stats in profile["numeric"].values():
        assert len(stats["shares"]) == len(stats["edges"]) + 1
        assert sum(stats["shares"]) == pytest.approx(1)
    assert sum(profile["predictions"]["shares"].values()) == pytest.approx(1)
    # The accuracy estimate's temperature, fitted on the validation split.
    calibration = profile["calibration"]
    assert calibration["fitted_on"] == "validation" and calibration["temperature"] > 0
    assert calibration["rows"] > 0
    info = mlflow.models.get_model_info(f"models:/{registry.model_name()}/{candidate.version}")
    assert info.signature is not None
    assert [i.name for i in info.signature.inputs.inputs] == list(FEATURE_NAMES)


def test_the_version_carries_a_model_card_and_few_tags(first) -> None:
    candidate, _ = first
    client = MlflowClient()
    version = client.get_model_version(registry.model_name(), candidate.version)
    tags = client.get_run(candidate.run_id).data.tags
    for part in (
        f"Snapshot base date: {BASE_DT}",
        f"Snapshot build {candidate.build_id}: {int(tags['snapshot_rows']):,} rows",
        tags["snapshot_hash"],
        f"| {candidate.test_metrics['accuracy']:.4f} | {candidate.test_metrics['macro_f1']:.4f} |",
        f"Training run: `{candidate.run_id}`",
        f"Git commit: `{tags['git_commit']}`",
        "DAG run: none (not run by Airflow)",
    ):
        assert part in version.description, part
    gate_tags = {"gate.decision", "gate.reasons", "gate.champion_version"}
    assert set(version.tags) == {*registry.VERSION_TAGS, *gate_tags}


def test_the_experiment_opens_in_the_classic_view_with_a_test_metrics_view(first) -> None:
    candidate, _ = first
    client = MlflowClient()
    experiment = client.get_experiment(client.get_run(candidate.run_id).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{tracking.TEST_METRICS_VIEW}"])
    assert view["selectedColumns"][-2:] == ["metrics.`test_accuracy`", "metrics.`test_macro_f1`"]
    link = tracking.runs_view_link(experiment.experiment_id, tracking.TEST_METRICS_VIEW)
    assert link.endswith(
        f"/#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=test-metrics"
    )


@pytest.mark.parametrize("plot", ["feature_importance.png", "confusion_matrix.png"])
def test_plots_are_not_clipped(first, tmp_path: Path, plot: str) -> None:
    candidate, _ = first
    path = mlflow.artifacts.download_artifacts(
        run_id=candidate.run_id, artifact_path=plot, dst_path=str(tmp_path)
    )
    image = matplotlib.image.imread(path)
    # A title or label cut by the image's edge would leave ink in its outermost pixels.
    edges = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    assert (edges[:, :3] > 0.99).all()


def test_same_snapshot_and_seed_reproduce_the_metrics_and_do_not_replace_the_champion(
    first,
) -> None:
    champion, _ = first
    again = train_candidate(BASE_DT, reason="manual")
    assert again.test_metrics == champion.test_metrics
    decision = gate_candidate(again, actor="pytest")
    assert not decision.promoted
    model = MlflowClient().get_registered_model(registry.model_name())
    assert model.aliases["champion"] == champion.version
    assert model.aliases["challenger"] == again.version
    tags = MlflowClient().get_model_version(registry.model_name(), again.version).tags
    assert "beat" in tags["gate.reasons"] or "margin" in tags["gate.reasons"]


def test_cli_promote_status_and_rollback_record_history(first, environment: str) -> None:
    champion, _ = first
    versions = MlflowClient().search_model_versions(f"name = '{registry.model_name()}'")
    other = max(int(v.version) for v in versions)
    runner = CliRunner()
    promoted = runner.invoke(main, ["model", "promote", str(other), "--reason", "manual check"])
    assert promoted.exit_code == 0, promoted.output
    status = runner.invoke(main, ["model", "status"])
    assert status.exit_code == 0 and "manual_promote" in status.output
    rolled = runner.invoke(main, ["model", "rollback", "--reason", "bad release"])
    assert rolled.exit_code == 0, rolled.output
    assert (
        MlflowClient().get_registered_model(registry.model_name()).aliases["champion"]
        == champion.version
    )
    actions = [d.action for d in registry.deployment_history(environment)]
    assert actions[:2] == ["rollback", "manual_promote"]


def test_an_mlflow_outage_midway_fails_cleanly_and_moves_no_alias(
    environment: str, mariadb_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_platform import training

    backend = make_url(mariadb_server).set(database=f"mlflow_o_{uuid.uuid4().hex[:8]}")
    backend_url = backend.render_as_string(hide_password=False)
    port = free_port()
    server = start_mlflow_server(backend_url, tmp_path, port)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    get_settings.cache_clear()
    try:
        champion = train_candidate(BASE_DT)
        gate_candidate(champion, actor="pytest")
        search = training._search

        def search_then_outage(*args, **kwargs):
            best = search(*args, **kwargs)
            stop_process_group(server)  # the server dies after the search, before logging
            return best

        monkeypatch.setattr(training, "_search", search_then_outage)
        with pytest.raises(Exception, match=r"(?i)connection|max retries|refused"):
            train_candidate(BASE_DT)
        server = start_mlflow_server(backend_url, tmp_path, port)
        model = MlflowClient().get_registered_model(registry.model_name())
        assert model.aliases == {"champion": champion.version}
        assert [d.version for d in registry.deployment_history(environment)].count(
            champion.version
        ) >= 1
    finally:
        stop_process_group(server)
        db.drop_database(backend_url)
        get_settings.cache_clear()
