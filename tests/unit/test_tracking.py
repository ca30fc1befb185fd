"""The MLflow server command line and its preparation, without starting a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url

from mlops_platform import tracking
from mlops_platform.config import Settings


def options(command: list[str]) -> dict[str, str | None]:
    """`--flag value` pairs of an argv (a flag without a value maps to None)."""
    parsed: dict[str, str | None] = {}
    for index, word in enumerate(command):
        if word.startswith("--"):
            following = command[index + 1] if index + 1 < len(command) else "--"
            parsed[word] = None if following.startswith("--") else following
    return parsed


def settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(
        feature_store_url="mysql+pymysql://app:s3cret@db.internal:3307/mlops",
        mlops_data_dir=tmp_path,
        **overrides,
    )


def test_command_runs_this_interpreters_mlflow_with_every_option(tmp_path: Path) -> None:
    chosen = settings(tmp_path, mlflow_host="0.0.0.0", mlflow_port=5123)
    command = tracking.server_command(chosen)
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert options(command) == {
        "--serve-artifacts": None,
        "--artifacts-destination": str(tmp_path.resolve() / "mlflow-artifacts"),
        "--host": "0.0.0.0",
        "--port": "5123",
        "--allowed-hosts": chosen.mlflow_allowed_hosts,
        "--workers": "1",
    }


def test_the_backend_password_travels_in_the_environment_not_in_argv(tmp_path: Path) -> None:
    chosen = settings(tmp_path)
    assert not any("s3cret" in word for word in tracking.server_command(chosen))
    environment = tracking.server_environment(chosen)
    assert environment["MLFLOW_BACKEND_STORE_URI"] == (
        "mysql+pymysql://app:s3cret@db.internal:3307/mlflow"
    )


def test_default_allowed_hosts_cover_localhost_and_the_compose_service() -> None:
    # Any other Host header gets MLflow's 403 "Invalid Host header".
    default = Settings.model_fields["mlflow_allowed_hosts"].default.split(",")
    assert {"localhost:*", "127.0.0.1:*", "mlflow:5000"} <= set(default)


def test_explicit_backend_artifacts_and_allowed_hosts_win(tmp_path: Path) -> None:
    chosen = settings(
        tmp_path,
        mlflow_backend_store_uri="sqlite:///elsewhere.db",
        mlflow_artifacts_destination=tmp_path / "store",
        mlflow_allowed_hosts="mlflow.example.org",
    )
    command = tracking.server_command(chosen)
    assert (
        tracking.server_environment(chosen)["MLFLOW_BACKEND_STORE_URI"] == "sqlite:///elsewhere.db"
    )
    assert options(command)["--artifacts-destination"] == str((tmp_path / "store").resolve())
    assert options(command)["--allowed-hosts"] == "mlflow.example.org"


def test_mlflow_accepts_the_command_line(tmp_path: Path) -> None:
    from mlflow.cli import server

    context = server.make_context("server", tracking.server_command(settings(tmp_path))[4:])
    assert context.params["serve_artifacts"] is True
    assert context.params["workers"] == "1"


def test_run_server_prepares_then_execs_without_job_execution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created, executed = [], []
    monkeypatch.setattr(tracking.db, "create_database_if_missing", created.append)
    monkeypatch.setattr(
        tracking.os, "execvpe", lambda file, args, env: executed.append((file, args, env))
    )
    chosen = settings(tmp_path)
    tracking.run_server(chosen)

    assert [make_url(url).database for url in created] == ["mlflow"]
    assert (tmp_path / "mlflow-artifacts").is_dir()
    [(file, args, env)] = executed
    assert file == sys.executable
    assert args == tracking.server_command(chosen)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@db.internal:3307/mlflow")


def test_a_non_mariadb_backend_gets_no_database_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = []
    monkeypatch.setattr(tracking.db, "create_database_if_missing", created.append)
    tracking.prepare_server(settings(tmp_path, mlflow_backend_store_uri="sqlite:///x.db"))
    assert created == []


def test_importing_tracking_and_registry_does_not_import_mlflow() -> None:
    code = (
        "import sys, mlops_platform.tracking, mlops_platform.registry;"
        " assert 'mlflow' not in sys.modules, 'mlflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_saved_view_adds_metric_columns_after_the_ui_defaults_and_links_by_its_key(
    tmp_path: Path,
) -> None:
    # The UI's column keys are `type.`name``; its default table is Source, Models, Dataset.
    assert tracking.table_view(["test_accuracy"]) == {
        "selectedColumns": [
            "attributes.`Source`",
            "attributes.`Models`",
            "attributes.`Dataset`",
            "metrics.`test_accuracy`",
        ]
    }
    chosen = settings(tmp_path, mlflow_tracking_uri="http://mlflow.internal:5000/")
    assert tracking.runs_view_link("7", "test-metrics", chosen) == (
        "http://mlflow.internal:5000/#/experiments/7/runs?viewStateShareKey=test-metrics"
    )
