"""The containers' healthcheck: HTTP status, and a component's status in Airflow's JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_platform.healthcheck import check, main

HEALTH = {"metadatabase": {"status": "healthy"}, "triggerer": {"status": "unhealthy"}}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path != "/down" else 503
        self.send_response(status)
        self.end_headers()
        self.wfile.write(json.dumps(HEALTH).encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_2xx_answer_is_healthy(url: str) -> None:
    assert check(f"{url}/health") is None
    assert main([f"{url}/health"]) == 0


def test_an_error_status_or_no_server_is_unhealthy(url: str) -> None:
    assert "503" in check(f"{url}/down")
    assert main(["http://127.0.0.1:9/nothing-listens-here"]) == 1


def test_a_component_must_report_healthy(url: str) -> None:
    assert check(f"{url}/api/v2/monitor/health", "metadatabase") is None
    assert check(f"{url}/api/v2/monitor/health", "triggerer") == "triggerer is unhealthy"
    assert check(f"{url}/api/v2/monitor/health", "dag_processor") == "dag_processor is None"
