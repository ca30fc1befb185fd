"""The compose profile `monitoring` for real: Prometheus scrapes serving and the exporter,
loads the alert rules, turns a stored report into gauges, and an alert travels through
Alertmanager to the webhook.

Only what Prometheus scrapes is started (MariaDB, init, serving, the exporter, Alertmanager):
no Airflow or MLflow, so the module takes a few minutes. A report row written straight into
MariaDB stands in for the monitoring DAG.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from mlops_platform import compose
from mlops_platform.config import PROJECT_ROOT
from tests.compose.project import ComposeProject

RULES = PROJECT_ROOT / "src" / "mlops_platform" / "alerting" / "rules.yml"
SCRAPED_JOBS = {"serving", "mlops-exporter", "alertmanager"}
SCRAPE_WAIT_S = 150  # several 15 s scrape and evaluation intervals


@pytest.fixture(scope="module")
def prometheus(monitoring_project: ComposeProject) -> str:
    """Prometheus's published URL once the project image is built and the profile is up."""
    started = time.monotonic()
    monitoring_project.run("build", "init", timeout=1800)
    built = time.monotonic()
    monitoring_project.run(
        "up", "--detach", "--wait", "--wait-timeout", str(compose.UP_TIMEOUT_S), "prometheus",
        timeout=compose.UP_TIMEOUT_S + 120,
    )  # fmt: skip
    print(f"\nproject image built in {built - started:.0f} s; monitoring profile healthy"
          f" {time.monotonic() - built:.0f} s after `up`")  # fmt: skip
    return compose.published_url("prometheus", 9090, monitoring_project.environment)


def api(prometheus: str, path: str, **params: str) -> Any:
    response = httpx.get(f"{prometheus}/api/v1/{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def eventually(check: Callable[[], Any], what: str, timeout: float = SCRAPE_WAIT_S) -> Any:
    """The first truthy answer of `check`; AssertionError with the last one after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            assert answer, f"{what}: not within {timeout} s (last: {answer!r})"
            return answer
        time.sleep(3)


def query(prometheus: str, expression: str, by: str = "model_version") -> dict[str, float]:
    """An instant query's samples, keyed by one label ("" where a sample has none)."""
    result = api(prometheus, "query", query=expression)["result"]
    return {s["metric"].get(by, ""): float(s["value"][1]) for s in result}


def test_prometheus_scrapes_serving_the_exporter_and_alertmanager(prometheus: str) -> None:
    def healthy_jobs() -> set[str]:
        targets = api(prometheus, "targets")["activeTargets"]
        return {t["labels"]["job"] for t in targets if t["health"] == "up"}

    assert eventually(lambda: healthy_jobs() >= SCRAPED_JOBS and healthy_jobs(), "targets up")
    assert query(prometheus, "up == 1", by="job").keys() >= SCRAPED_JOBS


def test_the_alert_rules_are_loaded(prometheus: str) -> None:
    expected = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    groups = api(prometheus, "rules", type="alert")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == expected
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"])


def test_a_stored_report_becomes_gauges_and_its_alert_reaches_the_webhook(
    prometheus: str, monitoring_project: ComposeProject
) -> None:
    # Nothing promoted yet: the champion gauge says so.
    assert eventually(lambda: query(prometheus, "mlops_champion_version"), "champion gauge") == {
        "": 0.0
    }
    stats = json.dumps({"features": {"age": {"psi": 0.05}, "outstanding_debt": {"psi": 0.37}},
                        "consecutive_drift_windows": 1})  # fmt: skip
    monitoring_project.sql(
        "INSERT INTO deployments (model_name, version, action, reason, actor)"
        " VALUES ('credit_score', '7', 'promote', 'compose test', 'test');"
        "INSERT INTO drift_reports (kind, model_name, model_version, window_start, window_end,"
        " row_count, stats, drift_share, decision) VALUES ('drift', 'credit_score', '7',"
        f" '2026-03-01', '2026-03-02', 900, '{stats}', 0.5, 'drift')"
    )
    assert eventually(lambda: query(prometheus, "mlops_drift_share"), "drift share") == {"7": 0.5}
    assert query(prometheus, "mlops_drift_psi_max") == {"7": 0.37}
    assert query(prometheus, "mlops_champion_version") == {"": 7.0}

    def delivered() -> str:
        logs = monitoring_project.run("logs", "--no-log-prefix", "exporter")
        return "alert firing: ModelDataDrift" in logs and logs

    assert eventually(delivered, "ModelDataDrift at the webhook")
    alerts = api(prometheus, "alerts")["alerts"]
    assert {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"} >= {
        "ModelDataDrift"
    }
