"""`make load` (tests/load): the run lasts its duration, and a run that served nothing fails."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlops_platform.config import PROJECT_ROOT
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.mariadb_server import free_port
from tests.load import run_load

DURATION_S = 3


class AlwaysOk(BaseHTTPRequestHandler):
    """Answers every POST with 200: stands in for the service when only locust is tested."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def store_with_customers(module_store_url: str) -> str:
    load_into_store(
        GeneratorConfig(customers=50, months=1, start=date(2025, 6, 1)), module_store_url
    )
    return module_store_url


@pytest.fixture
def always_ok_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), AlwaysOk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_loading_the_request_pools_does_not_eat_the_run_time(
    store_with_customers: str, always_ok_url: str, tmp_path: Path
) -> None:
    arguments = argparse.Namespace(
        url=always_ok_url, store_url=store_with_customers, users=2, duration=DURATION_S
    )
    stats = run_load.run_locust(arguments, tmp_path)

    assert sum(entry["num_requests"] for entry in stats) > 0
    first = min(entry["start_time"] for entry in stats)
    last = max(entry["last_request_timestamp"] for entry in stats)
    assert last - first >= 0.8 * DURATION_S  # requests span the run, not what loading left


def test_a_run_that_served_nothing_fails(store_with_customers: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "tests.load.run_load", "--url", nobody,
               "--store-url", store_with_customers, "--users", "2", "--duration", "2"]  # fmt: skip
    finished = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode != 0
    assert "answered no request with 200" in finished.stderr + finished.stdout
    assert "exact" not in finished.stdout


def test_a_store_without_customers_stops_locust_with_the_reason(
    store_url: str, always_ok_url: str, tmp_path: Path
) -> None:
    arguments = argparse.Namespace(url=always_ok_url, store_url=store_url, users=1, duration=2)
    with pytest.raises(SystemExit, match="before it sent any request"):
        run_load.run_locust(arguments, tmp_path)
