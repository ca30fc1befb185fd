"""The alert rules, Prometheus's and Alertmanager's configs, checked by their own tools.

`promtool` comes with Debian's `prometheus` package and `amtool` with
`prometheus-alertmanager`; `make install` installs both.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import fields

import pytest
import yaml

from mlops_platform.alerting.exporter import Report, Snapshot, quality_families
from mlops_platform.config import PROJECT_ROOT
from serving.metrics import serving_metrics

ALERTING = PROJECT_ROOT / "src" / "mlops_platform" / "alerting"
RULES_TEST = PROJECT_ROOT / "tests" / "unit" / "alert_rules_test.yml"
EVERY_ALERT = {
    "ModelDataDrift", "ModelAccuracyDropped", "ModelEstimatedAccuracyDropped", "NoChampion",
    "MonitoringStale", "MonitoringDatabaseDown", "PredictionLogBacklog",
    "PredictionLogSpoolGrowing", "ScrapeTargetDown",
}  # fmt: skip


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make install` installs Debian's {package} package")
    return path


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def rules() -> list[dict]:
    document = yaml.safe_load((ALERTING / "rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    output = run(tool("promtool", "prometheus"), "test", "rules", str(RULES_TEST))
    assert "SUCCESS" in output
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text()))
    assert tested == EVERY_ALERT == {rule["alert"] for rule in rules()}


def test_prometheus_config_and_its_rules_are_valid() -> None:
    output = run(
        tool("promtool", "prometheus"), "check", "config", str(ALERTING / "prometheus.yml")
    )
    assert f"SUCCESS: {len(EVERY_ALERT)} rules found" in output


@pytest.mark.parametrize("severity", ["warning", "critical"])
def test_alertmanager_routes_every_alert_to_the_webhook(severity: str) -> None:
    config = str(ALERTING / "alertmanager.yml")
    amtool = tool("amtool", "prometheus-alertmanager")
    assert "SUCCESS" in run(amtool, "check-config", config)
    routed = run(
        amtool, "config", "routes", "test", f"--config.file={config}", "--verify.receivers=webhook",
        "alertname=ModelDataDrift", "model_name=credit_score", f"severity={severity}",
    )  # fmt: skip
    assert routed.splitlines()[0] == "webhook"


def test_every_metric_the_rules_use_is_exported() -> None:
    """A renamed gauge would silence its alert without any error."""
    full = Snapshot(
        "credit_score", "2", {"drift": 1.0},
        tuple(Report(kind, "2", 1, 0.5, "ok", {}) for kind in ("drift", "performance")),
    )  # fmt: skip
    exported = {family.name for family in quality_families(full, 3600)}
    exported |= {"mlops_monitoring_database_up"}
    metrics = serving_metrics()
    exported |= {getattr(metrics, f.name).describe()[0].name for f in fields(metrics)}
    used = {name for rule in rules() for name in re.findall(r"\bmlops_\w+", rule["expr"])}
    assert used and used <= exported, used - exported
