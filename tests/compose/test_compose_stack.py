"""`docker compose up` for real: the images are built, every service becomes healthy, and
the short demo closes the Level 1 loop inside the containers. Then what users rely on:
the published endpoint, no prediction lost while MariaDB restarts, data that survives
`down` and `up`, and nothing left after `down -v`.

The tests share one stack and run in file order, as a user's session would.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest

from mlops_platform import compose
from mlops_platform.data.generator import add_months
from mlops_platform.orchestration import month_of
from mlops_platform.traffic import feature_records, traffic_month
from mlops_platform.training import git_commit
from tests.compose.project import (
    ComposeProject,
    run_short_demo,
    settled_log_rows,
    wait_for_log_rows,
)

LOAD_RECORDS = 300
TIMING_LINES = ("images built", "every service healthy")
LOAD_RATE = 15  # requests a second: the load spans the restart with room on both sides


@pytest.fixture(scope="module")
def demo_output(compose_project: ComposeProject) -> str:
    return run_short_demo(compose_project)


def serving_url(project: ComposeProject) -> str:
    return compose.published_url("serving", 3000, project.environment)


def wait_for_metadata(url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/metadata", timeout=30)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(2)


def test_the_short_demo_closes_the_loop_inside_the_containers(
    demo_output: str, capsys: pytest.CaptureFixture
) -> None:
    timings = [line for line in demo_output.splitlines() if line.startswith(TIMING_LINES)]
    with capsys.disabled():  # the timings and the loop's summary belong in the CI log
        print("\n" + "\n".join(timings))
        print(demo_output[demo_output.find("12. Summary") - 60 :])
    assert "every service healthy" in demo_output
    assert "serving credit_score v1" in demo_output
    assert "serving credit_score v2 (was v1)" in demo_output
    assert "performance:" in demo_output or "drift:" in demo_output
    assert re.search(r"batch_prediction \S+ scored [1-9][\d,]* customers for", demo_output)
    assert "demo finished" in demo_output


def test_predict_answers_on_the_published_port(
    compose_project: ComposeProject, demo_output: str
) -> None:
    record = feature_records(traffic_month(20, month_of(datetime.now(UTC))).features)[0]
    response = httpx.post(f"{serving_url(compose_project)}/predict", json=record, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "2"
    assert response.json()["predicted_class"] in ("Good", "Standard", "Poor")


def test_a_mariadb_restart_under_load_loses_no_prediction_log_row(
    compose_project: ComposeProject, demo_output: str
) -> None:
    before = settled_log_rows(compose_project)
    month = add_months(month_of(datetime.now(UTC)), -1)
    load = subprocess.Popen(
        compose.command(
            "run", "--rm", "--no-deps", "-T", "cli", "mlops", "traffic", "simulate",
            "--customers", "500", "--month", f"{month:%Y-%m}", "--count", str(LOAD_RECORDS),
            "--rate", str(LOAD_RATE),
        ),
        env=compose_project.environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    time.sleep(8)  # the cli container's start, then a few seconds of logged traffic
    compose_project.run("restart", "mariadb")
    output, _ = load.communicate(timeout=300)
    # Every request answered 200 (the simulator raises on anything else) ...
    assert load.returncode == 0, output[-3000:]
    assert f"{LOAD_RECORDS:,} records to the service" in output
    # ... and every one of them reached the log, once: spooled, then replayed.
    assert wait_for_log_rows(compose_project, before + LOAD_RECORDS) == before + LOAD_RECORDS
    assert settled_log_rows(compose_project) == before + LOAD_RECORDS
    assert (
        compose_project.sql(
            "SELECT COUNT(*) - COUNT(DISTINCT request_id, role) FROM prediction_log"
        )
        == "0"
    )


def test_serving_scales_out_with_a_host_port_per_replica(
    compose_project: ComposeProject, demo_output: str
) -> None:
    wait = ("--detach", "--wait", "--wait-timeout", str(compose.UP_TIMEOUT_S))
    compose_project.run("up", *wait, "--scale", "serving=2")
    urls = {
        compose.published_url("serving", 3000, compose_project.environment, index=replica)
        for replica in (1, 2)
    }
    assert len(urls) == 2
    for url in urls:  # each replica loads the champion on its own
        assert str(wait_for_metadata(url)["version"]) == "2"
    compose_project.run("up", *wait, "--scale", "serving=1")


def test_data_survives_down_and_up(compose_project: ComposeProject, demo_output: str) -> None:
    logged = settled_log_rows(compose_project)
    compose_project.run("down", "--timeout", "20")
    assert compose_project.leftovers()["containers"] == []
    compose_project.run("up", "--detach", "--wait", "--wait-timeout", str(compose.UP_TIMEOUT_S))

    assert int(compose_project.sql("SELECT COUNT(*) FROM prediction_log")) == logged
    # The registry and its artifacts: the champion loads through MLflow's artifact proxy.
    loaded = compose_project.run(
        "run", "--rm", "--no-deps", "-T", "cli", "python", "-c",
        "import mlflow; mlflow.set_tracking_uri('http://mlflow:5000');"
        "m = mlflow.pyfunc.load_model('models:/credit_score@champion');"
        "tags = mlflow.MlflowClient().get_run(m.metadata.run_id).data.tags;"
        "print('champion loaded, trained at commit', tags['git_commit'])",
    )  # fmt: skip
    # The image carries the commit it was built from into every model's lineage.
    assert f"champion loaded, trained at commit {git_commit()}" in loaded
    # Airflow's metadata: the demo's runs are still there.
    runs = compose_project.run(
        "run", "--rm", "--no-deps", "-T", "cli", "python", "-c",
        "from mlops_platform.airflow_api import AirflowApi;"
        "print(len(AirflowApi.for_settings().runs('continuous_training')))",
    )  # fmt: skip
    assert int(runs.strip().splitlines()[-1]) >= 2
    # The service is live before it has loaded the champion (from its cache volume or MLflow).
    assert str(wait_for_metadata(serving_url(compose_project))["version"]) == "2"


def test_down_with_volumes_leaves_nothing_behind(
    compose_project: ComposeProject, demo_output: str
) -> None:
    compose_project.run("down", "--volumes", "--remove-orphans", "--timeout", "20")
    assert compose_project.leftovers() == {"containers": [], "volumes": [], "networks": []}
