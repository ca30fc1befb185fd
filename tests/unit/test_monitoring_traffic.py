"""Simulated traffic: records the service's strict schema accepts, posted as it expects."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlops_platform import traffic
from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, generate_months
from serving.schemas import RECORD

MONTH = date(2025, 6, 1)


def test_records_pass_the_services_strict_schema() -> None:
    features = traffic.traffic_month(300, MONTH, start=date(2025, 1, 1)).features
    records = traffic.feature_records(features)
    for record, customer_id in zip(records, features["customer_id"], strict=True):
        RECORD.validate_python({**record, "customer_id": customer_id, "month": MONTH})
    assert any(value is None for record in records for value in record.values())
    json.dumps(records)  # plain JSON types only


def test_a_simulated_month_is_the_generators_month_of_the_same_population() -> None:
    config = GeneratorConfig(
        customers=200, months=6, start=date(2025, 1, 1), drift="covariate",
        drift_from=date(2025, 4, 1),
    )  # fmt: skip
    *_, expected = generate_months(config)
    simulated = traffic.traffic_month(
        200, date(2025, 6, 1), "covariate", start=date(2025, 1, 1), drift_from=date(2025, 4, 1)
    )
    assert simulated.features.equals(expected.features)
    assert simulated.labels.equals(expected.labels)
    with pytest.raises(ValueError, match="first day"):
        traffic.traffic_month(200, date(2025, 6, 2))


@pytest.fixture
def service() -> Iterator[tuple[str, list[Any]]]:
    """A stand-in `/predict` that answers 'Standard' and keeps the bodies it got."""
    bodies: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append((self.path, body))
            answer = (
                [{"predicted_class": "Standard"} for _ in body]
                if isinstance(body, list)
                else {"predicted_class": "Standard"}
            )
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            """Quiet: the test output is for the tests."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_paced_traffic_sends_one_record_per_request_at_the_rate(service) -> None:
    url, bodies = service
    started = time.perf_counter()
    result = traffic.simulate(
        100, MONTH, count=10, rate=50, target="service", service_url=url, start=date(2025, 1, 1)
    )
    elapsed = time.perf_counter() - started
    assert (result.records, result.predicted) == (10, {"Standard": 10})
    assert [path for path, _ in bodies] == ["/predict"] * 10
    assert all(body["month"] == "2025-06-01" and body["customer_id"] for _, body in bodies)
    assert elapsed >= 9 / 50


def test_unpaced_traffic_sends_batches_of_the_service_limit(
    service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVING_MAX_BATCH", "40")
    get_settings.cache_clear()
    url, bodies = service
    try:
        result = traffic.simulate(100, MONTH, target="service", service_url=url)
    finally:
        get_settings.cache_clear()
    assert result.records == 100
    assert [len(body) for _, body in bodies] == [40, 40, 20]
