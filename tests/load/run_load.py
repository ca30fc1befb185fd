"""Run the locust load test headless against a running service, then audit the log.

Prints requests/s, p50/p95/p99 and failures per request type, then waits for the
service's log writers and checks that `prediction_log` grew by exactly the number of
records the service answered with 200. Assumes no other traffic during the run.

    uv run python -m tests.load.run_load --url http://127.0.0.1:3000 --users 20 --duration 30
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.config import get_settings

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RECORDS_IN_NAME = re.compile(r"\((\d+) records?\)$")
console = Console()


def logged_rows(store_url: str) -> int:
    with db.transaction(store_url) as connection:
        return connection.execute(text("SELECT COUNT(*) FROM prediction_log")).scalar_one()


def settled_rows(store_url: str, quiet_s: float = 1.5) -> int:
    """The row count once it has stopped changing (the writers flushed what they had)."""
    previous = logged_rows(store_url)
    while True:
        time.sleep(quiet_s)
        current = logged_rows(store_url)
        if current == previous:
            return current
        previous = current


def run_locust(args: argparse.Namespace, directory: Path) -> list[dict[str, Any]]:
    """Locust headless; users finish their request when time is up, so none is cut off.

    Locust exits non-zero when any request failed; the stats still tell what happened.
    """
    finished = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
         "--host", args.url, "--users", str(args.users), "--spawn-rate", str(args.users),
         "--run-time", f"{args.duration}s", "--stop-timeout", "30", "--only-summary",
         "--json-file", str(directory / "stats"), "--store-url", args.store_url],
    )  # fmt: skip
    stats = directory / "stats.json"
    if not stats.exists():
        raise SystemExit(
            f"locust stopped (exit code {finished.returncode}) before it sent any request"
        )
    return json.loads(stats.read_text())


def percentile(response_times: dict[str, int], fraction: float) -> float:
    """From locust's histogram of response times (milliseconds, rounded)."""
    threshold = fraction * sum(response_times.values())
    seen = 0
    for milliseconds, count in sorted((float(k), v) for k, v in response_times.items()):
        seen += count
        if seen >= threshold:
            return milliseconds
    return 0.0


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=settings.service_url)
    parser.add_argument("--store-url", default=settings.feature_store_url)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=int, default=30, help="seconds")
    args = parser.parse_args()

    before = settled_rows(args.store_url)
    with tempfile.TemporaryDirectory(prefix="load-") as scratch:
        stats = run_locust(args, Path(scratch))

    table = Table(title=f"Load: {args.users} users for {args.duration} s against {args.url}")
    for column in ("request", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "request" else "right")
    answered = 0
    for entry in stats:
        seconds = max(entry["last_request_timestamp"] - entry["start_time"], 1e-9)
        table.add_row(
            entry["name"], f"{entry['num_requests']:,}", f"{entry['num_failures']:,}",
            f"{entry['num_requests'] / seconds:,.1f}",
            *(f"{percentile(entry['response_times'], f):.0f}" for f in (0.5, 0.95, 0.99)),
        )  # fmt: skip
        records = int(RECORDS_IN_NAME.search(entry["name"])[1])
        answered += (entry["num_requests"] - entry["num_failures"]) * records
    console.print(table)
    if answered == 0:
        sent = sum(entry["num_requests"] for entry in stats)
        raise SystemExit(
            f"FAILED: the service at {args.url} answered no request with 200"
            f" ({sent:,} sent in {args.duration} s); nothing was load-tested"
        )

    deadline = time.monotonic() + 60
    while (grown := logged_rows(args.store_url) - before) < answered:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    verdict = "[green]exact[/]" if grown == answered else "[red]MISMATCH[/]"
    console.print(
        f"prediction_log grew by {grown:,} rows; the service answered {answered:,} records"
        f" with 200: {verdict}"
    )
    if grown != answered:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
