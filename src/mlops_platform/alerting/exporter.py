"""Model-quality gauges for Prometheus, read from MariaDB on every scrape.

The champion is the newest promotion or rollback in `deployments`; the monitoring checks
keep one verdict per kind and window in `drift_reports`. Each scrape reads both (bound
parameters, EXPORTER_DB_TIMEOUT_S) and exports the champion's newest report of each kind.
An unreachable MariaDB still gets an answer: `mlops_monitoring_database_up 0`.

The same server takes Alertmanager's webhook at POST /alerts and logs every alert.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from mlops_platform import db
from mlops_platform.config import get_settings

log = logging.getLogger(__name__)

# Report kinds that measure the champion's quality, and the `source` label of their
# gauges: `performance` from late labels; `estimate` (before the labels land) stores the
# same `stats.metrics` and decisions.
QUALITY_SOURCES = {"performance": "live", "estimate": "estimated"}
MAX_WEBHOOK_BYTES = 1_000_000

Sample = tuple[Mapping[str, str], float]


@dataclass(frozen=True)
class Report:
    """The champion's newest report of one kind."""

    kind: str
    model_version: str
    row_count: int
    drift_share: float | None
    decision: str
    stats: Mapping[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """What one scrape read from MariaDB."""

    model_name: str
    champion: str | None
    last_written: Mapping[str, float]  # kind → Unix time the newest report was written
    reports: tuple[Report, ...]


def read_snapshot(connection: Connection, model_name: str) -> Snapshot:
    """The champion, when each kind of report was last written, and the champion's reports."""
    parameters = {"model_name": model_name}
    champion = connection.execute(
        text(
            "SELECT version FROM deployments WHERE model_name = :model_name"
            " AND action IN ('promote', 'manual_promote', 'rollback')"
            " ORDER BY deployment_id DESC LIMIT 1"
        ),
        parameters,
    ).scalar()
    # UNIX_TIMESTAMP reads the DATETIME in the session's time zone, the one that wrote it.
    last_written = connection.execute(
        text(
            "SELECT kind, UNIX_TIMESTAMP(MAX(updated_at)) FROM drift_reports"
            " WHERE model_name = :model_name GROUP BY kind"
        ),
        parameters,
    ).all()
    rows = []
    if champion is not None:
        rows = connection.execute(
            text(
                "SELECT r.kind, r.model_version, r.row_count, r.drift_share, r.decision, r.stats"
                " FROM drift_reports r JOIN ("
                "  SELECT kind, MAX(window_end) AS window_end FROM drift_reports"
                "  WHERE model_name = :model_name AND model_version = :version GROUP BY kind"
                " ) newest ON newest.kind = r.kind AND newest.window_end = r.window_end"
                " WHERE r.model_name = :model_name AND r.model_version = :version"
                " ORDER BY r.report_id"
            ),
            {**parameters, "version": champion},
        ).all()
    # Two reports of one window end (different starts): the newer report id counts.
    newest = {
        kind: Report(str(kind), str(version), int(count), share, str(decision), json.loads(stats))
        for kind, version, count, share, decision, stats in rows
    }
    return Snapshot(
        model_name=model_name,
        champion=None if champion is None else str(champion),
        last_written={str(kind): float(at) for kind, at in last_written},
        reports=tuple(newest.values()),
    )


def gauge(name: str, documentation: str, labels: Iterable[str], samples: Iterable[Sample]):
    """One gauge family; label values come from each sample's mapping, in `labels` order."""
    labels = tuple(labels)
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric([values[label] for label in labels], value)
    return family


def quality_families(snapshot: Snapshot, stale_after_s: float) -> list[GaugeMetricFamily]:
    """The gauges of one snapshot; a report's gauges only when the report has the numbers."""
    model = {"model_name": snapshot.model_name}
    by_report = [
        ({**model, "model_version": r.model_version, "kind": r.kind}, r) for r in snapshot.reports
    ]
    drift = [(labels, r) for labels, r in by_report if r.kind == "drift"]
    features = [
        ({**labels, "feature": feature}, float(values["psi"]))
        for labels, r in drift
        for feature, values in r.stats.get("features", {}).items()
    ]
    quality, test_f1 = [], {}
    for labels, r in by_report:
        metrics = r.stats.get("metrics") or {}
        if r.kind in QUALITY_SOURCES and r.row_count and metrics:
            quality.append(({**labels, "source": QUALITY_SOURCES[r.kind]}, metrics))
        if r.stats.get("baseline_test_macro_f1") is not None:
            test_f1[r.model_version] = float(r.stats["baseline_test_macro_f1"])
    version = ("model_name", "model_version")
    return [
        gauge(
            "mlops_champion_version",
            "Version holding the champion alias, per the deployments history; 0 when none does.",
            ("model_name",),
            [(model, float(snapshot.champion or 0))],
        ),
        gauge(
            "mlops_monitoring_last_report_timestamp_seconds",
            "When the newest monitoring report of this kind was written (any version).",
            ("model_name", "kind"),
            [({**model, "kind": kind}, at) for kind, at in snapshot.last_written.items()],
        ),
        gauge(
            "mlops_monitoring_stale_after_seconds",
            "Report age at which monitoring counts as stale (MONITORING_STALE_AFTER_HOURS).",
            ("model_name",),
            [(model, stale_after_s)],
        ),
        gauge(
            "mlops_monitoring_decision",
            "1 for the verdict of the champion's newest report of each kind.",
            (*version, "kind", "decision"),
            [({**labels, "decision": r.decision}, 1.0) for labels, r in by_report],
        ),
        gauge(
            "mlops_monitoring_report_rows",
            "Predictions (drift) or labelled predictions (performance) the newest report judged.",
            (*version, "kind"),
            [(labels, float(r.row_count)) for labels, r in by_report],
        ),
        gauge(
            "mlops_drift_share",
            "Share of the features that drifted in the champion's newest drift report.",
            version,
            [(labels, float(r.drift_share)) for labels, r in drift if r.drift_share is not None],
        ),
        gauge(
            "mlops_drift_psi",
            "Population stability index of each feature in the champion's newest drift report.",
            (*version, "feature"),
            features,
        ),
        gauge(
            "mlops_drift_psi_max",
            "Largest feature PSI in the champion's newest drift report.",
            version,
            [
                (labels, max(f["psi"] for f in r.stats["features"].values()))
                for labels, r in drift
                if r.stats.get("features")
            ],
        ),
        gauge(
            "mlops_drift_consecutive_windows",
            "Drift checks in a row, ending with the newest, that found drift.",
            version,
            [
                (labels, float(r.stats["consecutive_drift_windows"]))
                for labels, r in drift
                if "consecutive_drift_windows" in r.stats
            ],
        ),
        gauge(
            "mlops_model_accuracy",
            "The champion's accuracy: live (late labels) or estimated (before labels land).",
            (*version, "source"),
            [(labels, float(m["accuracy"])) for labels, m in quality if "accuracy" in m],
        ),
        gauge(
            "mlops_model_macro_f1",
            "The champion's macro-F1: live, estimated, or on its test set (source=test).",
            (*version, "source"),
            [(labels, float(m["macro_f1"])) for labels, m in quality if "macro_f1" in m]
            + [({**model, "model_version": v, "source": "test"}, f1) for v, f1 in test_f1.items()],
        ),
    ]


class QualityCollector:
    """A prometheus_client collector that reads MariaDB on every scrape."""

    def __init__(self, url: str | None = None) -> None:
        settings = get_settings()
        self.url = url or settings.feature_store_url
        self.model_name = settings.model_name
        self.timeout_s = settings.exporter_db_timeout_s
        self.stale_after_s = settings.monitoring_stale_after_hours * 3600

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with db.get_bounded_engine(self.url, self.timeout_s).connect() as connection:
                snapshot = read_snapshot(connection, self.model_name)
        except SQLAlchemyError as error:
            log.warning("cannot read the monitoring reports: %s", error)
            snapshot = None
        yield gauge(
            "mlops_monitoring_database_up",
            "1 when this scrape read the monitoring reports from MariaDB, 0 when it could not.",
            (), [({}, float(snapshot is not None))],
        )  # fmt: skip
        if snapshot is not None:
            yield from quality_families(snapshot, self.stale_after_s)


def application(url: str | None = None):
    """The exporter's WSGI app: GET /metrics, GET /livez, and Alertmanager's POST /alerts."""
    registry = CollectorRegistry()
    registry.register(QualityCollector(url))
    received = Counter(
        "mlops_alerts_received",
        "Alert notifications Alertmanager delivered to the webhook, by alert and status.",
        ["alertname", "status"],
        registry=registry,
    )
    metrics = make_wsgi_app(registry)

    def answer(start_response, status: str, body: dict[str, Any]) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    def app(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == "/livez":
            return answer(start_response, "200 OK", {"status": "live"})
        if path != "/alerts":
            return metrics(environ, start_response)
        if method != "POST":
            return answer(start_response, "405 Method Not Allowed", {"error": "POST alerts"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_WEBHOOK_BYTES:
            return answer(start_response, "400 Bad Request", {
                "error": f"Content-Length: a body of 1 to {MAX_WEBHOOK_BYTES} bytes is required"
            })  # fmt: skip
        try:
            alerts = webhook_alerts(json.loads(environ["wsgi.input"].read(length)))
        except ValueError as error:
            return answer(start_response, "400 Bad Request", {"error": str(error)})
        for alert in alerts:
            received.labels(alert["alertname"], alert["status"]).inc()
            log.warning("alert %(status)s: %(alertname)s %(labels)s %(summary)s", alert)
        return answer(start_response, "200 OK", {"received": len(alerts)})

    return app


def webhook_alerts(payload: Any) -> list[dict[str, Any]]:
    """The alerts of an Alertmanager webhook payload; ValueError naming what is malformed."""
    alerts = payload.get("alerts") if isinstance(payload, dict) else None
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise ValueError("alerts: a list of alert objects is required")
    result = []
    for alert in alerts:
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        if not isinstance(labels, dict) or not isinstance(annotations, dict):
            raise ValueError("alerts[].labels and alerts[].annotations: objects are required")
        result.append({
            "alertname": str(labels.get("alertname", "unnamed")),
            "status": "resolved" if alert.get("status") == "resolved" else "firing",
            "labels": {k: v for k, v in labels.items() if k != "alertname"},
            "summary": str(annotations.get("summary", "")),
        })  # fmt: skip
    return result


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the alert log."""


def make_exporter_server(host: str, port: int, url: str | None = None) -> ThreadingWSGIServer:
    """The exporter's HTTP server, bound and not yet serving (port 0: any free port)."""
    return make_server(host, port, application(url), ThreadingWSGIServer, QuietHandler)


def serve(host: str | None = None, port: int | None = None) -> None:
    """Serve the exporter until interrupted (EXPORTER_HOST, EXPORTER_PORT)."""
    settings = get_settings()
    host = host or settings.exporter_host
    server = make_exporter_server(host, settings.exporter_port if port is None else port)
    log.info("model-quality exporter on http://%s:%s/metrics", host, server.server_port)
    with server:
        server.serve_forever()
