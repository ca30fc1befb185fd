"""`make demo DEMO_SIZE=small` end to end, isolated: its own MariaDB, ports and data dir."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import make_url

from mlops_platform.config import PROJECT_ROOT
from mlops_platform.data.generator import GeneratorConfig, write_csv
from mlops_platform.dates import month_of
from mlops_platform.mariadb_server import free_port
from serving.schemas import EXAMPLE_RECORD


def test_the_short_demo_closes_the_level_1_loop(mariadb_server: str, tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("MLFLOW_PORT", "AIRFLOW_PORT", "SERVING_PORT")}
    store = make_url(mariadb_server).set(database="mlops").render_as_string(hide_password=False)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW"))},
        **ports,
        "FEATURE_STORE_URL": store,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
        "MLOPS_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, "-m", "mlops_platform", "demo", "--size", "small"]
    # What a user has afterwards: only the (default) data dir, none of the settings above.
    after = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW"))},
        "MLOPS_DATA_DIR": env["MLOPS_DATA_DIR"],
    }
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        status, load, ingest = (
            run_beside_the_stack(arguments, after, tmp_path)
            for arguments in (
                ["-m", "mlops_platform", "model", "status"],
                ["-m", "tests.load.run_load", "--users", "2", "--duration", "5"],
                ["-m", "mlops_platform", "data", "ingest", str(new_month_csv(tmp_path))],
            )
        )
        feature_runs = wait_for_asset_triggered_run(tmp_path / "data" / "demo" / "airflow")
        lineage = trace_one_prediction(f"http://127.0.0.1:{ports['SERVING_PORT']}", after)
        shadowed = re.search(r"trace one with\s+`mlops\s+lineage\s+([0-9a-f-]{36})`", output)
        assert shadowed, output[-6000:]
        in_shadow = trace(shadowed.group(1), after)
    finally:
        subprocess.run(
            [sys.executable, "-m", "mlops_platform", "stack", "down"], env=env, timeout=120
        )
    assert "serving credit_score v1" in output
    assert "serving credit_score v2 (was v1)" in output
    assert "performance:" in output or "drift:" in output
    assert re.search(r"batch_prediction \S+ scored [1-9][\d,]* customers for", output), output
    assert "demo finished" in output
    assert "champion" in status and "promote" in status
    assert re.search(r"prediction_log grew by [1-9][\d,]* rows.*exact", load, re.S), load
    assert "updated in Airflow: feature_pipeline starts" in ingest
    assert "asset_triggered" in feature_runs
    (served,) = lineage["scored_by"]
    assert served["role"] == "champion" and served["git_commit"], served
    assert served["snapshot"]["resolvable"], served["snapshot"]
    assert served["training_dag_run"]["run_id"], served
    assert any(decision["action"] == "promote" for decision in served["deployments"]), served
    # A request of the shadow phase: answered by v1, scored in shadow by v2, which the
    # gate first put in shadow and live evidence then promoted.
    assert re.search(r"Shadow:\s+champion\s+v1\s+against\s+challenger\s+v2", output), output[-6000:]
    assert "challenger-better" in output
    champion, challenger = in_shadow["scored_by"]
    assert (champion["role"], champion["model_version"]) == ("champion", "1")
    assert (challenger["role"], challenger["model_version"]) == ("shadow", "2")
    decisions = [(d["action"], d["reason"]) for d in challenger["deployments"]]
    assert [action for action, _ in decisions] == ["shadow", "promote"], decisions
    assert decisions[1][1].startswith("shadow: challenger better"), decisions


def run_beside_the_stack(arguments: list[str], env: dict[str, str], tmp_path: Path) -> str:
    """A README command run right after the demo, with no extra environment."""
    finished = subprocess.run(
        [sys.executable, *arguments], env=env, cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, f"{arguments}:\n{output[-4000:]}"
    return output


def trace_one_prediction(service_url: str, env: dict[str, str], timeout: float = 30) -> dict:
    """`mlops lineage --json` of a prediction made now, once the service has logged it."""
    answer = httpx.post(f"{service_url}/predict", json=EXAMPLE_RECORD, timeout=30)
    answer.raise_for_status()
    return trace(answer.json()["request_id"], env, timeout)


def trace(request_id: str, env: dict[str, str], timeout: float = 30) -> dict:
    """`mlops lineage REQUEST_ID --json`, once the service has logged the request."""
    command = [sys.executable, "-m", "mlops_platform", "lineage", request_id, "--json"]
    deadline = time.monotonic() + timeout
    while True:  # the log writer inserts in the background, within a second or so
        traced = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        if traced.returncode == 0 or time.monotonic() > deadline:
            assert traced.returncode == 0, traced.stdout + traced.stderr
            return json.loads(traced.stdout)
        time.sleep(2)


def new_month_csv(tmp_path: Path) -> Path:
    """A few customers' features for this month, as a new file would bring them."""
    start = month_of(datetime.now(UTC))
    (path,) = write_csv(GeneratorConfig(customers=20, months=1, start=start), tmp_path / "new")
    return path


def wait_for_asset_triggered_run(airflow_home: Path, timeout: float = 180) -> set[str]:
    """Run types of feature_pipeline's runs, once the ingest's asset event started one."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(airflow_home / "airflow.db") as airflow_db:
            run_types = {
                run_type
                for (run_type,) in airflow_db.execute(
                    "SELECT run_type FROM dag_run WHERE dag_id = 'feature_pipeline'"
                )
            }
        if "asset_triggered" in run_types or time.monotonic() > deadline:
            return run_types
        time.sleep(3)
