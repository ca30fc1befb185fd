"""What a hostile body costs the prediction service, and the valid requests beside it.

The body is the one issue 13 measured: 1,000 records of 200 unknown fields each (1.7 MB),
which once got a 30 MB error list after 11.7 s. Starts its own MariaDB, MLflow, champion
and `bentoml serve` (as bench_serving does), or benches a running service with --url.
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
from serving.schemas import EXAMPLE_RECORD
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="bench this running service instead of starting one")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--workers", type=int, default=get_settings().serving_workers)
    args = parser.parse_args()
    body = unknown_fields_batch()
    with ExitStack() as stack:
        if args.url:
            url, pids = args.url.rstrip("/"), []
        else:
            console.print("starting MariaDB, MLflow, a champion and the service …")
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            url, _, processes = start_stack(stack, scratch, args.workers)
            pids = worker_pids(processes["service"])
        predict = url + "/predict"
        never = threading.Event()
        timed_posts(predict, VALID, never, count=200)  # warm-up
        answer = httpx.post(predict, content=body, headers=JSON, timeout=60)
        if pids:
            with PeakMemory(pids) as memory:
                hostile = timed_posts(predict, body, never, args.repeats, 400)
        else:
            hostile, memory = timed_posts(predict, body, never, args.repeats, 400), None
        alone = valid_while(predict, args.seconds, 0, body)
        beside = valid_while(predict, args.seconds, args.workers, body)
    report(args, body, answer, hostile, memory, alone, beside)


def report(
    args: argparse.Namespace, body: bytes, answer: httpx.Response, hostile: Latencies,
    memory: PeakMemory | None, alone: Latencies, beside: Latencies,
) -> None:  # fmt: skip
    delay = beside.percentile(0.99) - alone.percentile(0.99)
    print_figures(
        f"Hostile body: {len(body) / 1e6:.1f} MB, 1,000 records of 200 unknown fields;"
        f" {args.workers} workers on this machine; latencies seen by the client.",
        [
            ("answer", f"{answer.status_code}, {len(answer.content):,} bytes,"
             f" {answer.json()['error_count']:,} errors of which"
             f" {len(answer.json()['errors'])} listed", "4xx, bounded",
             verdict(answer.status_code == 400 and len(answer.content) < 10_000)),
            ("hostile body: latency", str(hostile), "<= 100 ms",
             verdict(hostile.percentile(0.99) <= 100)),
            ("hostile body: worker memory growth",
             f"{memory.growth_mb:.1f} MB" if memory else "not measured (--url)", "<= 50 MB",
             verdict(memory is not None and memory.growth_mb <= 50)),
            ("valid requests alone", str(alone), "", ""),
            (f"valid requests beside {args.workers} hostile clients", str(beside), "", ""),
            ("delay of valid requests (p99 beside − p99 alone)", f"{delay:.1f} ms",
             "<= 100 ms", verdict(delay <= 100)),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
