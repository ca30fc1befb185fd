"""What a hostile body costs the prediction service, and the valid requests beside it.

Two bodies: the one issue 13 measured, 1,000 records of 200 unknown fields each (1.7 MB),
which once got a 30 MB error list after 11.7 s; and the costliest body the service still
parses (1,000 records whose 24 fields all have the wrong type). Starts its own MariaDB,
MLflow, champion and `bentoml serve` (as bench_serving does), or benches one with --url.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlops_platform.config import get_settings
from serving.schemas import EXAMPLE_RECORD, RECORD_FIELDS
from tests.bench.bench_serving import start_stack
from tests.bench.common import console, print_figures, verdict
from tests.serving_bodies import unknown_fields_batch

JSON = {"content-type": "application/json"}
PAGE = 4096


def worker_pids(root: int) -> list[int]:
    """The service's worker processes: descendants of `bentoml serve` running a worker."""
    parent: dict[int, int] = {}
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if b"worker" in (stat.parent / "cmdline").read_bytes():
                workers.append(int(stat.parent.name))
        except (OSError, IndexError):  # the process ended meanwhile
            continue

    def descends(pid: int) -> bool:
        while pid not in (root, 0, 1):
            pid = parent.get(pid, 0)
        return pid == root

    return [pid for pid in workers if descends(pid)]


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


class PeakMemory:
    """Samples each worker's resident memory every 2 ms: the most any grew over its start."""

    def __init__(self, pids: list[int]) -> None:
        self.start = {pid: rss_bytes(pid) for pid in pids}
        self.peak = dict(self.start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            for pid in self.peak:
                self.peak[pid] = max(self.peak[pid], rss_bytes(pid))

    @property
    def growth_mb(self) -> float:
        return max(self.peak[pid] - self.start[pid] for pid in self.peak) / 1e6


@dataclass(frozen=True)
class Latencies:
    ms: list[float]

    def percentile(self, share: float) -> float:
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def __str__(self) -> str:
        return (
            f"p50 {statistics.median(self.ms):.1f} / p99 {self.percentile(0.99):.1f}"
            f" / max {max(self.ms):.1f} ms ({len(self.ms)} requests)"
        )


def timed_posts(
    url: str, body: bytes, stop: threading.Event, count: int | None = None, expect: int = 200
) -> Latencies:
    """POST `body` one after another until `stop` (or `count` times): each one's latency."""
    latencies = []
    with httpx.Client(headers=JSON, timeout=60) as http:
        while not stop.is_set() and (count is None or len(latencies) < count):
            started = time.perf_counter()
            response = http.post(url, content=body)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != expect:
                raise RuntimeError(f"{response.status_code} (not {expect}): {response.text[:200]}")
    return Latencies(latencies)


VALID = json.dumps(EXAMPLE_RECORD).encode()


def valid_while(url: str, seconds: float, hostile_clients: int, body: bytes) -> Latencies:
    """Valid single-record latencies for `seconds` while `hostile_clients` send `body` nonstop."""
    stop = threading.Event()
    hostile = [
        threading.Thread(target=timed_posts, args=(url, body, stop, None, 400), daemon=True)
        for _ in range(hostile_clients)
    ]
    for thread in hostile:
        thread.start()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        return timed_posts(url, VALID, stop)
    finally:
        stop.set()
        for thread in hostile:
            thread.join()


def wrong_typed_batch() -> bytes:
    """The costliest body that is still parsed: 1,000 records of every field, all arrays."""
    record = {name: [] for name in RECORD_FIELDS}
    return json.dumps([record] * 1_000).encode()


@dataclass(frozen=True)
class Measured:
    body: bytes
    answer: httpx.Response
    latency: Latencies
    memory_mb: float | None
    valid_beside: Latencies


def measure(url: str, body: bytes, pids: list[int], args: argparse.Namespace) -> Measured:
    """One hostile body: its answer, its latency and memory, and valid requests beside it."""
    answer = httpx.post(url, content=body, headers=JSON, timeout=60)
    never = threading.Event()
    if pids:
        with PeakMemory(pids) as memory:
            latency = timed_posts(url, body, never, args.repeats, 400)
    else:
        latency, memory = timed_posts(url, body, never, args.repeats, 400), None
    beside = valid_while(url, args.seconds, args.workers, body)
    return Measured(body, answer, latency, memory.growth_mb if memory else None, beside)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="bench this running service instead of starting one")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--workers", type=int, default=get_settings().serving_workers)
    args = parser.parse_args()
    bodies = {
        "issue 13's body: 1,000 records of 200 unknown fields": unknown_fields_batch(),
        "costliest body parsed: 1,000 records of 24 wrong-typed fields": wrong_typed_batch(),
    }
    with ExitStack() as stack:
        if args.url:
            url, pids = args.url.rstrip("/"), []
        else:
            console.print("starting MariaDB, MLflow, a champion and the service …")
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            url, _, processes = start_stack(stack, scratch, args.workers)
            pids = worker_pids(processes["service"])
        predict = url + "/predict"
        timed_posts(predict, VALID, threading.Event(), count=200)  # warm-up
        alone = valid_while(predict, args.seconds, 0, VALID)
        measured = {name: measure(predict, body, pids, args) for name, body in bodies.items()}
    report(args, alone, measured)


def report(args: argparse.Namespace, alone: Latencies, measured: dict[str, Measured]) -> None:
    rows = [("valid single records, alone", str(alone), "", "")]
    for name, m in measured.items():
        delay = m.valid_beside.percentile(0.99) - alone.percentile(0.99)
        rows += [
            (f"{name} ({len(m.body) / 1e6:.1f} MB): answer",
             f"{m.answer.status_code} {m.answer.json()['rule']}, {len(m.answer.content):,} bytes,"
             f" {len(m.answer.json()['errors'])} of {m.answer.json()['error_count']:,} errors"
             " listed", "4xx, <= 20 listed",
             verdict(m.answer.status_code == 400 and len(m.answer.json()["errors"]) <= 20)),
            ("  latency", str(m.latency), "<= 100 ms", verdict(m.latency.percentile(0.99) <= 100)),
            ("  worker memory growth",
             "not measured (--url)" if m.memory_mb is None else f"{m.memory_mb:.1f} MB",
             "<= 50 MB", verdict(m.memory_mb is not None and m.memory_mb <= 50)),
            (f"  valid single records beside {args.workers} clients sending it nonstop",
             str(m.valid_beside), "", ""),
            ("  delay of valid records (p99 beside − p99 alone)", f"{delay:.1f} ms",
             "<= 100 ms", verdict(delay <= 100)),
        ]  # fmt: skip
    print_figures(
        f"Hostile bodies against {args.workers} workers on this machine (wrk-less: one"
        " client thread each; latencies as the client sees them).",
        rows,
    )


if __name__ == "__main__":
    main()
