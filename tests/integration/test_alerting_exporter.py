"""The model-quality exporter on a real MariaDB: report rows in, gauges out of /metrics,
and Alertmanager's webhook."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.alerting.exporter import make_exporter_server
from mlops_platform.config import get_settings
from mlops_platform.mariadb_server import free_port
from mlops_platform.monitoring import reports
from mlops_platform.monitoring.drift import FeatureDrift
from mlops_platform.monitoring.windows import Window

WINDOW_END = datetime(2026, 3, 2)
DAY = timedelta(days=1)
PSI = {"age": 0.02, "outstanding_debt": 0.41, "occupation": 0.12}


def serve(url: str) -> Iterator[str]:
    server = make_exporter_server("127.0.0.1", 0, url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def exporter(store_url: str) -> Iterator[str]:
    yield from serve(store_url)


def scrape(exporter: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, by name and labels."""
    response = httpx.get(f"{exporter}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    """The sample of `name` whose labels include `labels`; None when there is none."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, found
    return found[0] if found else None


def deploy(url: str, version: str, action: str = "promote") -> None:
    with db.transaction(url) as connection:
        connection.execute(
            text(
                "INSERT INTO deployments (model_name, version, action, reason, actor)"
                " VALUES (:model_name, :version, :action, 'test', 'test')"
            ),
            {"model_name": get_settings().model_name, "version": version, "action": action},
        )


def report(
    url: str,
    kind: str,
    version: str,
    end: datetime,
    decision: str,
    share: float | None = None,
    **stats,
) -> None:
    """A report stored the way the monitoring checks store theirs."""
    with db.transaction(url) as connection:
        reports.store_report(
            connection, kind, get_settings().model_name, version, Window(end - DAY, end), 900,
            stats, share, decision,
        )  # fmt: skip


def drift_stats(psi: dict[str, float], consecutive: int) -> dict:
    """A drift report's stats as the drift check writes them (features as FeatureDrift)."""
    features = {
        name: FeatureDrift(name, "numeric", ("all",), (1.0,), (900,), {"psi": value}, "ok")
        for name, value in psi.items()
    }
    return {"features": {name: f.as_dict() for name, f in features.items()},
            "consecutive_drift_windows": consecutive}  # fmt: skip


def test_without_a_champion_only_the_champion_gauge_says_so(exporter: str) -> None:
    samples = scrape(exporter)
    assert value(samples, "mlops_monitoring_database_up") == 1
    assert value(samples, "mlops_champion_version") == 0
    assert value(samples, "mlops_drift_share") is None
    assert value(samples, "mlops_monitoring_stale_after_seconds") == 3 * 3600


def test_the_champions_newest_reports_become_gauges(exporter: str, store_url: str) -> None:
    deploy(store_url, "1")
    deploy(store_url, "2")
    # An older window of the champion, and the newest window of the previous version.
    report(store_url, "drift", "2", WINDOW_END - DAY, "ok", **drift_stats({"age": 0.01}, 0))
    report(store_url, "drift", "1", WINDOW_END + DAY, "ok", **drift_stats({"age": 0.9}, 0))
    report(store_url, "drift", "2", WINDOW_END, "drift", 1 / 3, **drift_stats(PSI, 2))
    report(
        store_url, "performance", "2", WINDOW_END, "degraded",
        metrics={"accuracy": 0.61, "macro_f1": 0.58}, baseline_test_macro_f1=0.7,
    )  # fmt: skip
    written = time.time()

    samples = scrape(exporter)
    v2 = {"model_version": "2"}
    assert value(samples, "mlops_champion_version") == 2
    assert value(samples, "mlops_drift_share", **v2) == pytest.approx(1 / 3)
    assert value(samples, "mlops_drift_psi_max", **v2) == pytest.approx(0.41)
    for feature, psi in PSI.items():
        assert value(samples, "mlops_drift_psi", feature=feature, **v2) == pytest.approx(psi)
    assert value(samples, "mlops_drift_consecutive_windows", **v2) == 2
    assert value(samples, "mlops_monitoring_decision", kind="drift", decision="drift", **v2) == 1
    assert value(samples, "mlops_monitoring_decision", kind="drift", decision="ok") is None
    assert value(samples, "mlops_monitoring_decision", kind="performance", **v2) == 1
    assert value(samples, "mlops_model_accuracy", source="live", **v2) == pytest.approx(0.61)
    assert value(samples, "mlops_model_macro_f1", source="live", **v2) == pytest.approx(0.58)
    assert value(samples, "mlops_model_macro_f1", source="test", **v2) == pytest.approx(0.7)
    assert value(samples, "mlops_monitoring_report_rows", kind="performance", **v2) == 900
    # The model_version 1 report is newer but not the champion's.
    assert value(samples, "mlops_drift_share", model_version="1") is None
    for kind in ("drift", "performance"):
        at = value(samples, "mlops_monitoring_last_report_timestamp_seconds", kind=kind)
        assert at == pytest.approx(written, abs=60)
    # No estimate report yet: no estimated gauges.
    assert value(samples, "mlops_model_accuracy", source="estimated") is None


def test_an_estimate_report_adds_the_estimated_gauges(exporter: str, store_url: str) -> None:
    # The estimate's own report kind comes from migration 010.
    deploy(store_url, "3")
    report(
        store_url, "estimate", "3", WINDOW_END, "degraded",
        metrics={"accuracy": 0.64, "macro_f1": 0.6}, baseline_test_macro_f1=0.71,
    )  # fmt: skip
    samples = scrape(exporter)
    v3 = {"model_version": "3"}
    assert value(samples, "mlops_model_accuracy", source="estimated", **v3) == pytest.approx(0.64)
    assert value(samples, "mlops_model_macro_f1", source="estimated", **v3) == pytest.approx(0.6)
    assert value(samples, "mlops_model_macro_f1", source="test", **v3) == pytest.approx(0.71)
    assert value(samples, "mlops_monitoring_decision", kind="estimate", **v3) == 1
    assert value(samples, "mlops_model_accuracy", source="live") is None


def test_a_rollback_moves_the_gauges_to_the_restored_champion(
    exporter: str, store_url: str
) -> None:
    deploy(store_url, "1")
    deploy(store_url, "2")
    report(store_url, "drift", "1", WINDOW_END, "ok", **drift_stats({"age": 0.05}, 0))
    report(store_url, "drift", "2", WINDOW_END, "drift", **drift_stats({"age": 0.5}, 1))
    assert value(scrape(exporter), "mlops_drift_psi_max") == pytest.approx(0.5)
    deploy(store_url, "1", "rollback")
    samples = scrape(exporter)
    assert value(samples, "mlops_champion_version") == 1
    assert value(samples, "mlops_drift_psi_max", model_version="1") == pytest.approx(0.05)
    assert value(samples, "mlops_drift_psi_max", model_version="2") is None


def test_an_unreachable_mariadb_is_a_gauge_not_a_failed_scrape(store_url: str) -> None:
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/mlops"
    for exporter in serve(url):
        started = time.monotonic()
        samples = scrape(exporter)
        took = time.monotonic() - started
    assert value(samples, "mlops_monitoring_database_up") == 0
    assert value(samples, "mlops_champion_version") is None
    assert took < get_settings().exporter_db_timeout_s + 2


def test_the_webhook_logs_and_counts_alertmanagers_alerts(
    exporter: str, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {
        "version": "4", "status": "firing", "receiver": "webhook",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "ModelDataDrift", "model_version": "2"},
             "annotations": {"summary": "Data drift in credit_score v2"}},
            {"status": "resolved", "labels": {"alertname": "NoChampion"}, "annotations": {}},
        ],
    }  # fmt: skip
    with caplog.at_level("WARNING"):
        response = httpx.post(f"{exporter}/alerts", json=payload, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2}
    assert "alert firing: ModelDataDrift {'model_version': '2'} Data drift" in caplog.text
    samples = scrape(exporter)
    counted = "mlops_alerts_received_total"
    assert value(samples, counted, alertname="ModelDataDrift", status="firing") == 1
    assert value(samples, counted, alertname="NoChampion", status="resolved") == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "Expecting value"),
        (b'{"alerts": "none"}', "alerts: a list of alert objects is required"),
        (b'{"alerts": [{"labels": []}]}', "alerts[].labels and alerts[].annotations"),
        (b"", "Content-Length: a body of 1 to 1000000 bytes is required"),
    ],
)
def test_a_malformed_webhook_call_is_a_400_naming_the_field(
    exporter: str, body: bytes, error: str
) -> None:
    response = httpx.post(f"{exporter}/alerts", content=body, timeout=30)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert httpx.get(f"{exporter}/alerts", timeout=30).status_code == 405
    assert httpx.get(f"{exporter}/livez", timeout=30).json() == {"status": "live"}
