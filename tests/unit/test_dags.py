"""The DAG files parse fast, without touching a database, and have the expected shape."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_platform.config import PROJECT_ROOT

EXPECTED_TASKS = {
    "feature_pipeline": {"build_snapshot", "validate_snapshot"},
    "continuous_training": {"validate_snapshot", "train", "champion_gate", "publish_decision"},
    "monitoring": {
        "drift_check", "performance_check", "estimate_check", "decide",
        "trigger_retraining", "record_trigger", "no_retraining", "shadow_check", "shadow_gate",
        "canary_check",
    },
    "batch_prediction": {"score_customers"},
    "ingest": {"ingest_file"},
}  # fmt: skip
FEATURE_ROWS_URI = "mysql://10.255.255.1:3306/mlops/customer_features_monthly"
CLI_EQUIVALENT = re.compile(r"CLI equivalent: (.+?)(?:\.\s*$|\.\s)", re.S)

# Runs in a child process so Airflow's configuration never leaks into the test process.
INSPECT_DAGS = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - started
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "seconds": elapsed,
    "dags": {
        dag_id: {
            "tasks": sorted(dag.task_ids),
            "tags": sorted(dag.tags),
            "doc": dag.doc_md or "",
            "timetable": type(dag.timetable).__name__,
            "schedule_assets": sorted(
                asset.uri for asset in dag.timetable.asset_condition.objects
            ) if getattr(dag.timetable, "asset_condition", None) else [],
            "outlets": {t.task_id: [o.uri for o in t.outlets] for t in dag.tasks if t.outlets},
            "catchup": dag.catchup,
            "tasks_retries": {t.task_id: t.retries for t in dag.tasks},
            "owners": sorted({t.owner for t in dag.tasks}),
            "timeouts": {t.task_id: bool(t.execution_timeout) for t in dag.tasks},
        }
        for dag_id, dag in bag.dags.items()
    },
}))
"""


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        # Unroutable: a DAG file that connected at parse time would hang or fail.
        "FEATURE_STORE_URL": "mysql+pymysql://nobody:secret@10.255.255.1:3306/mlops",
        "MLFLOW_TRACKING_URI": "http://10.255.255.1:5000",
    }
    result = subprocess.run(
        [sys.executable, "-c", INSPECT_DAGS, str(PROJECT_ROOT / "dags")],
        env=env, capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_dag_file_imports_without_errors(dagbag: dict) -> None:
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == set(EXPECTED_TASKS)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_TASKS))
def test_dag_shape_and_defaults(dagbag: dict, dag_id: str) -> None:
    dag = dagbag["dags"][dag_id]
    assert set(dag["tasks"]) == EXPECTED_TASKS[dag_id]
    assert "mlops" in dag["tags"]
    assert dag["doc"]
    assert dag["catchup"] is False
    assert dag["owners"] == ["mlops"]
    assert all(dag["timeouts"].values())
    assert all(retries >= 0 for retries in dag["tasks_retries"].values())
    assert any(retries > 0 for retries in dag["tasks_retries"].values())


def test_dag_files_parse_fast_with_no_database_reachable(dagbag: dict) -> None:
    # The unreachable store would make any parse-time connection take seconds or fail.
    assert dagbag["seconds"] < 5


def test_dag_files_keep_heavy_imports_inside_tasks() -> None:
    heavy = ("mlflow", "catboost", "pandas", "sklearn", "bentoml")
    for path in Path(PROJECT_ROOT / "dags").glob("*.py"):
        top_level = [
            line for line in path.read_text().splitlines()
            if line.startswith(("import ", "from "))
        ]  # fmt: skip
        assert not [line for line in top_level if any(h in line for h in heavy)], path.name


def test_ingest_updates_the_asset_that_starts_the_feature_pipeline(dagbag: dict) -> None:
    dags = dagbag["dags"]
    assert dags["ingest"]["outlets"] == {"ingest_file": [FEATURE_ROWS_URI]}
    assert dags["feature_pipeline"]["schedule_assets"] == [FEATURE_ROWS_URI]
    # @monthly by default: either trigger starts it.
    assert dags["feature_pipeline"]["timetable"] == "AssetOrTimeSchedule"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_TASKS))
def test_each_dag_names_cli_commands_that_exist(dagbag: dict, dag_id: str) -> None:
    import click

    from mlops_platform.cli import main

    (commands,) = CLI_EQUIVALENT.findall(dagbag["dags"][dag_id]["doc"])
    named_commands = re.findall(r"`mlops ([^`]+)`", commands)
    assert named_commands, dag_id
    for command in named_commands:
        words = [w for w in re.split(r"\s+", command.split("&&")[0]) if w]
        group: click.Command = main
        while isinstance(group, click.Group) and words and not words[0].startswith("-"):
            group = group.commands.get(words.pop(0))
            assert group is not None, f"{dag_id}: `mlops {command}` is not a command"
        options = {o for p in group.params for o in getattr(p, "opts", [])}
        named = {w for w in words if w.startswith("--")}
        assert named <= options, f"{dag_id}: `mlops {command}` uses unknown {named - options}"
