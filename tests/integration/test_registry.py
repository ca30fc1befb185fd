"""The champion gate, promotion and rollback against a real MLflow server and MariaDB."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from contextlib import contextmanager
from datetime import date
from urllib.parse import urlparse

import mlflow
import pandas as pd
import pytest
from catboost import CatBoostClassifier
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from rich.console import Console
from sqlalchemy import text

from mlops_platform import cli_tables, db, model, registry
from mlops_platform.cli import main
from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, generate_months
from mlops_platform.mariadb_server import free_port
from mlops_platform.model import CreditScoreModel
from mlops_platform.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, TARGET

LINEAGE = {"base_dt": "2024-03-01", "snapshot_hash": "abc123", "trigger_reason": "manual"}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """Generated features with their labels, split by customer into train and test."""
    months = generate_months(GeneratorConfig(customers=1500, months=2, start=date(2024, 1, 1)))
    frame = pd.concat(
        [m.features.merge(m.labels, on=["customer_id", "month"]) for m in months],
        ignore_index=True,
    )
    columns = [*FEATURE_NAMES, TARGET]
    in_test = frame["customer_id"].isin(frame["customer_id"].unique()[::4])
    return {
        "train": frame.loc[~in_test, columns].reset_index(drop=True),
        "test": frame.loc[in_test, columns].reset_index(drop=True),
    }


def fit(train: pd.DataFrame, iterations: int, depth: int, shuffle: bool = False):
    labels = train[TARGET].sample(frac=1, random_state=1) if shuffle else train[TARGET]
    classifier = CatBoostClassifier(
        iterations=iterations,
        depth=depth,
        cat_features=list(model.CATEGORICAL_POSITIONS),
        allow_writing_files=False,
        thread_count=2,
        random_seed=0,
        verbose=False,
    )
    classifier.fit(model.model_frame(train), labels.to_numpy())
    known = {c: train[c].dropna().astype(str).unique().tolist() for c in CATEGORICAL_FEATURES}
    return CreditScoreModel.from_classifier(classifier, known)


@pytest.fixture(scope="module")
def models(frames: dict[str, pd.DataFrame]) -> dict[str, CreditScoreModel]:
    """Models of known quality: weak < better, and one trained on shuffled labels."""
    train = frames["train"]
    return {
        "weak": fit(train, iterations=5, depth=2),
        "better": fit(train, iterations=150, depth=4),
        "shuffled": fit(train, iterations=30, depth=3, shuffle=True),
    }


@pytest.fixture
def publish(
    use_mlflow: str, frames: dict[str, pd.DataFrame], models: dict[str, CreditScoreModel]
) -> Callable[[str], str]:
    """Log one of `models` in a run of this test's experiment and register it: the version."""

    def publish(kind: str) -> str:
        with mlflow.start_run() as run:
            mlflow.log_metric("test_macro_f1", 0.5)
            info = models[kind].log_to_mlflow(frames["train"][list(FEATURE_NAMES)])
        return registry.register(info.model_uri, run.info.run_id, LINEAGE)

    return publish


@pytest.fixture
def run_gate(
    store_url: str, frames: dict[str, pd.DataFrame], models: dict[str, CreditScoreModel]
) -> Callable[[str, str], registry.GateDecision]:
    def run_gate(version: str, kind: str) -> registry.GateDecision:
        return registry.gate(
            version, models[kind], frames["test"], reason="test", actor="pytest", url=store_url
        )

    return run_gate


def aliases() -> dict[str, str]:
    return MlflowClient().get_registered_model(registry.model_name()).aliases


def actions(url: str) -> list[tuple[str, str, str | None]]:
    """(action, version, previous_version) of every deployments row, oldest first."""
    return [
        (row.action, row.version, row.previous_version)
        for row in reversed(registry.deployment_history(url))
    ]


def test_server_rejects_unknown_host_headers(mlflow_server: str) -> None:
    # /health is exempt from the check (so probes work), the API is not.
    address = urlparse(mlflow_server)
    path = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
    for host, expected in (("mlflow:5000", 200), ("attacker.example", 403)):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        connection.request("GET", path, headers={"Host": host})
        assert connection.getresponse().status == expected, host
        connection.close()


def test_first_model_becomes_champion_and_is_recorded(publish, run_gate, store_url) -> None:
    version = publish("weak")
    decision = run_gate(version, "weak")

    assert decision.promoted and decision.previous_champion is None
    assert decision.checks == dict.fromkeys(decision.checks, True)
    assert aliases() == {"champion": version}
    [row] = registry.deployment_history(store_url)
    assert (row.action, row.version, row.previous_version, row.actor) == (
        "promote", version, None, "pytest",
    )  # fmt: skip
    assert row.metrics["candidate"]["macro_f1"] == decision.candidate_metrics["macro_f1"]
    with pytest.raises(registry.RegistryError, match="already the champion"):
        run_gate(version, "weak")

    [champion] = registry.status().versions
    assert champion.aliases == ("champion",)
    assert champion.lineage == LINEAGE
    assert champion.metrics == {"test_macro_f1": 0.5}
    assert champion.gate["gate.decision"] == "promoted"
    # Clients upload through the server's artifact proxy, never to a server path.
    assert mlflow.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")


def test_worse_model_is_rejected_and_better_one_promoted(publish, run_gate, store_url) -> None:
    first = publish("weak")
    run_gate(first, "weak")
    worse = publish("shuffled")
    rejected = run_gate(worse, "shuffled")

    assert not rejected.promoted and rejected.previous_champion == first
    assert not rejected.checks["beats_champion"] and not rejected.checks["clears_floor"]
    assert aliases() == {"champion": first, "challenger": worse}
    tags = MlflowClient().get_model_version(registry.model_name(), worse).tags
    assert tags["gate.decision"] == "rejected"
    assert tags["gate.champion_version"] == first
    assert "below the floor" in tags["gate.reasons"]
    assert "does not beat champion" in tags["gate.reasons"]

    better = publish("better")
    promoted = run_gate(better, "better")

    assert promoted.promoted and promoted.previous_champion == first
    assert promoted.candidate_metrics["macro_f1"] > promoted.champion_metrics["macro_f1"]
    assert aliases() == {"champion": better, "previous_champion": first, "challenger": worse}
    assert actions(store_url) == [
        ("promote", first, None), ("reject", worse, first), ("promote", better, first),
    ]  # fmt: skip
    console = Console(record=True, width=120)
    console.print(cli_tables.gate_table(promoted))
    assert "PROMOTED" in console.export_text()


def test_manual_promote_and_rollback_walk_back_the_history(publish, store_url) -> None:
    v1, v2, v3 = publish("weak"), publish("better"), publish("shuffled")
    for version in (v1, v2, v3):
        registry.promote(version, reason="hotfix", actor="ops", url=store_url)
    assert aliases() == {"champion": v3, "previous_champion": v2}
    with pytest.raises(registry.RegistryError, match="already the champion"):
        registry.promote(v3, reason="again", actor="ops", url=store_url)
    with pytest.raises(registry.RegistryError, match=r"version 999 of .* does not exist"):
        registry.promote("999", reason="typo", actor="ops", url=store_url)

    assert registry.rollback(reason="v3 misbehaves", actor="ops", url=store_url) == v2
    assert aliases() == {"champion": v2, "previous_champion": v1}
    assert registry.rollback(reason="v2 too", actor="ops", url=store_url) == v1
    assert aliases() == {"champion": v1}
    with pytest.raises(registry.RegistryError, match="no previous_champion"):
        registry.rollback(reason="nothing left", actor="ops", url=store_url)

    assert actions(store_url) == [
        ("manual_promote", v1, None), ("manual_promote", v2, v1), ("manual_promote", v3, v2),
        ("rollback", v2, v3), ("rollback", v1, v2),
    ]  # fmt: skip
    assert registry.deployment_history(store_url, limit=1)[0].reason == "v2 too"


def test_model_status_shows_every_kind_of_deployment(
    publish, run_gate, use_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    before = CliRunner().invoke(main, ["model", "status"])
    assert before.exit_code == 1 and "does not exist in the registry" in before.output

    v1, worse, v3 = publish("weak"), publish("shuffled"), publish("better")
    run_gate(v1, "weak")
    run_gate(worse, "shuffled")
    registry.promote(v3, reason="hotfix [/] with brackets", actor="ops", url=use_store)
    registry.rollback(reason="v3 misbehaves", actor="ops", url=use_store)
    assert {action for action, _, _ in actions(use_store)} == {
        "promote", "reject", "manual_promote", "rollback",
    }  # fmt: skip
    # Wide enough that no reason wraps (the CLI's console reads COLUMNS once, at import).
    monkeypatch.setattr("mlops_platform.cli.console", Console(width=250))

    result = CliRunner().invoke(main, ["model", "status", "--history", "10"])

    assert result.exit_code == 0, result.output
    for action in ("promote", "reject", "manual_promote", "rollback"):
        assert f" {action} " in result.output, action
    assert "hotfix [/] with brackets" in result.output and "v3 misbehaves" in result.output
    assert f"Registered model {registry.model_name()}" in result.output


def test_rollback_never_points_back_at_the_version_it_left(publish, store_url) -> None:
    v1, v2 = publish("weak"), publish("better")
    for version in (v1, v2, v1):
        registry.promote(version, reason="flip", actor="ops", url=store_url)
    assert aliases() == {"champion": v1, "previous_champion": v2}

    registry.rollback(reason="back to v2", actor="ops", url=store_url)
    # v2 last replaced v1, the version just rolled away from, so nothing stays behind it.
    assert aliases() == {"champion": v2}


def test_concurrent_gates_promote_exactly_one(publish, run_gate, store_url) -> None:
    versions = [publish("better"), publish("better")]
    barrier = threading.Barrier(2)
    decisions: dict[str, registry.GateDecision] = {}

    def gate(version: str) -> None:
        barrier.wait()
        decisions[version] = run_gate(version, "better")

    threads = [threading.Thread(target=gate, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    [winner] = [v for v, d in decisions.items() if d.promoted]
    [loser] = [v for v, d in decisions.items() if not d.promoted]
    # The loser re-read the champion under the lock and compared against the winner.
    assert decisions[loser].previous_champion == winner
    assert aliases() == {"champion": winner, "challenger": loser}
    assert actions(store_url) == [("promote", winner, None), ("reject", loser, winner)]


def test_gate_waits_for_the_champion_lock_then_gives_up(
    publish, run_gate, store_url, monkeypatch
) -> None:
    version = publish("weak")
    monkeypatch.setenv("CHAMPION_LOCK_TIMEOUT_S", "1")
    registry.get_settings.cache_clear()
    lock = f"mlops_champion_{registry.model_name()}"
    with db.get_engine(store_url).connect() as holder:
        assert holder.execute(text("SELECT GET_LOCK(:name, 0)"), {"name": lock}).scalar() == 1
        with pytest.raises(registry.ChampionLockTimeout, match="held lock"):
            run_gate(version, "weak")
        holder.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": lock})
    assert aliases() == {}
    assert actions(store_url) == []


@pytest.fixture
def champion_and_candidate(publish, run_gate, monkeypatch) -> tuple[str, str]:
    """A weak champion and a registered better candidate; failing MLflow calls fail fast."""
    champion = publish("weak")
    run_gate(champion, "weak")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    return champion, publish("better")


def assert_nothing_changed(store_url: str, champion: str, candidate: str) -> None:
    assert aliases() == {"champion": champion}
    assert actions(store_url) == [("promote", champion, None)]
    tags = MlflowClient().get_model_version(registry.model_name(), candidate).tags
    assert not any(key.startswith("gate.") for key in tags)


def test_mlflow_unreachable_fails_cleanly(
    champion_and_candidate, run_gate, store_url, use_mlflow, monkeypatch
) -> None:
    champion, candidate = champion_and_candidate
    dead_port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{dead_port}")
    get_settings.cache_clear()
    try:
        with pytest.raises(MlflowException, match=f"port={dead_port}"):
            run_gate(candidate, "better")
    finally:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", use_mlflow)
        get_settings.cache_clear()
        mlflow.set_tracking_uri(use_mlflow)
    assert_nothing_changed(store_url, champion, candidate)


@pytest.mark.parametrize("dead_alias", ["champion", "previous_champion"])
def test_alias_move_failure_restores_aliases(
    champion_and_candidate, run_gate, store_url, monkeypatch, dead_alias
) -> None:
    champion, candidate = champion_and_candidate
    real_set = MlflowClient.set_registered_model_alias
    dead_port = free_port()
    dead = f"http://127.0.0.1:{dead_port}"
    unreachable = MlflowClient(tracking_uri=dead, registry_uri=dead)

    calls = []

    def set_alias(self, name: str, alias: str, version: str) -> None:
        # This one alias move goes to a server that is down; the others reach the real one.
        calls.append((alias, version))
        real_set(unreachable if alias == dead_alias else self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", set_alias)
    with pytest.raises(MlflowException, match=f"port={dead_port}"):
        run_gate(candidate, "better")
    monkeypatch.undo()
    assert_nothing_changed(store_url, champion, candidate)
    if dead_alias == "previous_champion":
        # The champion had already moved to the candidate, and was moved back.
        assert calls == [
            ("champion", candidate), ("previous_champion", champion), ("champion", champion),
        ]  # fmt: skip


def test_failed_commit_after_the_move_restores_aliases(
    champion_and_candidate, run_gate, store_url, monkeypatch
) -> None:
    champion, candidate = champion_and_candidate

    @contextmanager
    def commit_fails(url=None):
        with db.get_engine(url).connect() as connection:
            connection.begin()
            yield connection
            connection.rollback()
            raise ConnectionError("lost the database at COMMIT")

    monkeypatch.setattr(registry.db, "transaction", commit_fails)
    with pytest.raises(ConnectionError):
        run_gate(candidate, "better")
    monkeypatch.undo()
    assert_nothing_changed(store_url, champion, candidate)
