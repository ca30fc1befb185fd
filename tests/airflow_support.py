"""Run the project's DAGs in real Airflow from tests: `dag.test()` in a child process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from mlops_platform import airflow_api
from mlops_platform.config import PROJECT_ROOT

DAGS = PROJECT_ROOT / "dags"
QUICK_TRAINING = {"TRAIN_TRIALS": "1", "TRAIN_MAX_ITERATIONS": "80"}
# Concept drift from April: a champion trained on the April snapshot degrades on June's traffic.
CONCEPT_DRIFT = {"start": date(2025, 1, 1), "drift_from": date(2025, 4, 1)}

# A child process keeps Airflow's configuration (read once, at import) out of pytest.
RUN_DAG_TEST = """
import importlib.util, json, sys
from datetime import datetime
path, name, logical_date, conf = sys.argv[1:5]
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = next(v for v in vars(module).values() if type(v).__name__ == "DAG" and v.dag_id == name)
run = dag.test(
    logical_date=datetime.fromisoformat(logical_date) if logical_date else None,
    run_conf=json.loads(conf),
)
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("DAG_TEST_RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


def airflow_environment(home: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        **extra,
    }


def migrate(home: Path) -> None:
    """A fresh SQLite metadata database for Airflow (about 5 s)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=airflow_environment(home, {}),
        check=True,
        capture_output=True,
        timeout=300,
    )


def run_dag_test(
    home: Path,
    dag_id: str,
    env: dict[str, str],
    logical_date: str = "",
    conf: dict | None = None,
    timeout: float = 900,
) -> dict:
    """`dag.test()` one DAG; returns the run state and each task's state."""
    result = subprocess.run(
        [sys.executable, "-c", RUN_DAG_TEST, str(DAGS / f"{dag_id}.py"), dag_id,
         logical_date, json.dumps(conf or {})],
        env=airflow_environment(home, env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("DAG_TEST_RESULT ")]
    if not lines:
        raise AssertionError(
            f"dag.test({dag_id}) crashed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    outcome = json.loads(lines[-1].removeprefix("DAG_TEST_RESULT "))
    outcome["log"] = result.stdout[-6000:] + result.stderr[-6000:]
    return outcome


def concept_drift_champion(
    store_url: str, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A CONCEPT_DRIFT store whose champion trained on 2025-04; the env a monitoring run needs."""
    from mlops_platform.config import get_settings
    from mlops_platform.data.generator import GeneratorConfig, load_into_store
    from mlops_platform.training import gate_candidate, train_candidate
    from mlops_platform.validation import ensure_validated_snapshot

    for name, value in {**QUICK_TRAINING, "FEATURE_STORE_URL": store_url}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = get_settings()
    load_into_store(GeneratorConfig(800, 6, drift="concept", **CONCEPT_DRIFT), store_url)
    ensure_validated_snapshot("2025-04-01")
    gate_candidate(train_candidate("2025-04-01"))
    return {
        "FEATURE_STORE_URL": store_url, "MLFLOW_TRACKING_URI": mlflow_uri,
        "MLFLOW_EXPERIMENT": settings.mlflow_experiment, "MODEL_NAME": settings.model_name,
        "DRIFT_MIN_ROWS": "300", "PERFORMANCE_MIN_LABELLED": "300",
    }  # fmt: skip


class Standalone:
    """`airflow standalone` in its own process group, driven through the REST API v2."""

    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home = home
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = (home / "standalone.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=airflow_environment(
                home,
                {
                    "AIRFLOW__API__PORT": str(port),
                    "AIRFLOW__API__HOST": "127.0.0.1",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                    "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                    **env,
                },
            ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client: airflow_api.AirflowApi | None = None  # set once healthy

    def wait_healthy(self, timeout: float = 180) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited; see {self.home}/standalone.log")
            if airflow_api.healthy(self.base_url):
                password = airflow_api.generated_password(self.home)
                self.client = airflow_api.AirflowApi(self.base_url, password)
                return
            time.sleep(1)
        raise TimeoutError(f"airflow standalone not healthy after {timeout} s")

    def stop(self) -> None:
        import signal

        # Signal the whole group: a SIGTERM to the parent alone orphans the scheduler.
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
            self.process.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # whatever outlived the graceful stop
        self.process.wait()
        self.log.close()
