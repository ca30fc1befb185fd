"""The scale-out overlay on real engines: Airflow's Celery executor with two workers, three
serving replicas behind HAProxy, and a MariaDB GTID replica for online reads.

The short demo runs first (so there is a champion, history and logged traffic); the tests
then share that stack in file order.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest

from mlops_platform import compose
from mlops_platform.airflow_api import AirflowApi
from mlops_platform.orchestration import month_of
from mlops_platform.traffic import feature_records, traffic_month
from tests.compose.project import (
    ComposeProject,
    run_short_demo,
    settled_log_rows,
    wait_for_log_rows,
)
from tests.compose.steady_load import SteadyLoad

REPLICAS = ("serving", "serving-2", "serving-3")
MAX_FAILED_SHARE = 0.001


@pytest.fixture(scope="module")
def demo_output(scale_project: ComposeProject) -> str:
    return run_short_demo(scale_project)


@pytest.fixture(scope="module")
def balancer(scale_project: ComposeProject, demo_output: str) -> str:
    return compose.published_url(compose.BALANCER, 3000, scale_project.environment)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return feature_records(traffic_month(200, month_of(datetime.now(UTC))).features)


def replica_get(project: ComposeProject, replica: str, path: str) -> str:
    """GET a replica's own endpoint from inside its container (replicas are not published)."""
    return project.run(
        "exec", "-T", replica, "python", "-c",
        f"import urllib.request; print(urllib.request.urlopen('http://localhost:3000{path}')"
        ".read().decode())",
    )  # fmt: skip


def metric(text: str, name: str, label: str = "") -> float:
    """Sum of a metric's samples whose labels contain `label`."""
    pattern = rf"^{name}(\{{[^}}]*\}})? (\S+)$"
    return sum(
        float(match.group(2))
        for match in re.finditer(pattern, text, flags=re.M)
        if label in (match.group(1) or "")
    )


def predictions(project: ComposeProject, replica: str) -> float:
    return metric(replica_get(project, replica, "/metrics"), "mlops_predictions_total")


def served_version(project: ComposeProject, replica: str) -> str:
    answer = replica_get(project, replica, "/metadata")
    return re.search(r'"version":\s*"?(\w+)', answer).group(1)


def test_the_demo_loop_runs_on_the_scaled_stack(demo_output: str) -> None:
    assert "serving credit_score v2 (was v1)" in demo_output
    assert "demo finished" in demo_output


def test_one_dag_run_s_tasks_ran_on_two_celery_workers(scale_project: ComposeProject) -> None:
    airflow = AirflowApi(
        compose.published_url("airflow-apiserver", 8080, scale_project.environment),
        scale_project.secrets["AIRFLOW_ADMIN_PASSWORD"],
    )
    run = airflow.finished_run("monitoring")
    hosts = airflow.task_hostnames("monitoring", run.dag_run_id)
    # drift_check and performance_check run in parallel; each worker has one task slot.
    assert len(set(hosts.values())) >= 2, hosts
    workers = scale_project.run("ps", "--quiet", "airflow-worker").split()
    assert len(workers) == 2


def test_the_balancer_spreads_requests_over_every_replica(
    scale_project: ComposeProject, balancer: str, records: list[dict]
) -> None:
    before = {replica: predictions(scale_project, replica) for replica in REPLICAS}
    with httpx.Client(base_url=balancer, timeout=30) as client:
        for record in records[:90]:
            assert client.post("/predict", json=record).status_code == 200
    after = {replica: predictions(scale_project, replica) for replica in REPLICAS}
    assert all(after[r] > before[r] for r in REPLICAS), (before, after)


def test_a_promotion_under_load_fails_no_request_and_reaches_every_replica(
    scale_project: ComposeProject, balancer: str, records: list[dict]
) -> None:
    with SteadyLoad(balancer, records) as load:
        time.sleep(3)
        scale_project.run(
            "run", "--rm", "--no-deps", "-T", "cli",
            "mlops", "model", "promote", "1", "--reason", "scale test: hot reload under load",
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while {served_version(scale_project, r) for r in REPLICAS} != {"1"}:
            assert time.monotonic() < deadline, "not every replica reloaded the champion"
            time.sleep(2)
        time.sleep(2)
    assert set(load.statuses) == {200}, load.statuses


def test_a_stopped_replica_is_routed_around_and_rejoins(
    scale_project: ComposeProject, balancer: str, records: list[dict]
) -> None:
    with SteadyLoad(balancer, records) as load:
        time.sleep(3)
        scale_project.run("stop", "--timeout", "20", "serving-2")
        time.sleep(5)
        scale_project.run("start", "serving-2")
        scale_project.run("up", "--detach", "--wait", "--no-recreate", "serving-2")
        rejoined_at = predictions(scale_project, "serving-2")
        time.sleep(6)
        assert predictions(scale_project, "serving-2") > rejoined_at, "serving-2 got no traffic"
    answered = sum(load.statuses.values())
    failed = answered - load.statuses[200]
    assert answered > 100
    assert failed / answered <= MAX_FAILED_SHARE, load.statuses


def test_every_answered_request_is_logged_once(
    scale_project: ComposeProject, balancer: str, records: list[dict]
) -> None:
    before = settled_log_rows(scale_project)
    with SteadyLoad(balancer, records) as load:
        time.sleep(8)
    ok = load.statuses[200]
    assert wait_for_log_rows(scale_project, before + ok) == before + ok
    assert settled_log_rows(scale_project) == before + ok
    assert (
        scale_project.sql("SELECT COUNT(*) - COUNT(DISTINCT request_id, role) FROM prediction_log")
        == "0"
    )


def replica_lookups(project: ComposeProject, source: str) -> float:
    return sum(
        metric(replica_get(project, r, "/metrics"), "mlops_customer_lookups_total",
               f'source="{source}"')
        for r in REPLICAS
    )  # fmt: skip


def by_customer(client: httpx.Client, customer: str) -> int:
    return client.post("/predict_by_customer", json={"customer_ids": [customer]}).status_code


def test_by_customer_lookups_read_the_replica_and_survive_its_restart(
    scale_project: ComposeProject, balancer: str
) -> None:
    customers = scale_project.sql(
        "SELECT DISTINCT customer_id FROM customer_features_monthly ORDER BY customer_id LIMIT 400"
    ).split()
    before = replica_lookups(scale_project, "replica")
    with httpx.Client(base_url=balancer, timeout=30) as client:
        for customer in customers[:30]:  # new ids each time: the service caches lookups
            assert (
                client.post("/predict_by_customer", json={"customer_ids": [customer]}).status_code
                == 200
            )
        assert replica_lookups(scale_project, "replica") >= before + 30

        lag = metric(replica_get(scale_project, "serving", "/metrics"),
                     "mlops_feature_store_replica_lag_seconds")  # fmt: skip
        assert lag >= 0

        restart = subprocess.Popen(
            compose.command("restart", "mariadb-replica"), env=scale_project.environment
        )
        answers = []
        for customer in customers[30:]:
            started = time.monotonic()
            status = client.post(
                "/predict_by_customer", json={"customer_ids": [customer]}
            ).status_code
            answers.append((status, time.monotonic() - started))
            if restart.poll() is not None and len(answers) > 60:
                break
        restart.wait(120)
    assert {status for status, _ in answers} <= {200, 503}, answers
    assert max(seconds for _, seconds in answers) < 2.5, answers
    assert sum(status == 200 for status, _ in answers) > len(answers) / 2


def test_down_with_volumes_leaves_nothing_behind(scale_project: ComposeProject) -> None:
    scale_project.run("down", "--volumes", "--remove-orphans", "--timeout", "20")
    assert scale_project.leftovers() == {"containers": [], "volumes": [], "networks": []}
