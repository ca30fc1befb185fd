"""Prediction service speed with `wrk`: single-record req/s and latency, batch rows/s,
and what shadow scoring costs.

Without --url it starts everything itself: a throwaway MariaDB, an MLflow server, a
champion trained on small generated data, and `bentoml serve` as `make serve` runs it.
It also checks that every prediction the service made is in `prediction_log`.

The shadow comparison (its own service only; --shadow-only runs just it) registers a
second model of the champion's size and measures single records in rounds, without and
with that model as `challenger`, the order flipped every other round (without, with,
with, without, …) so that machine noise and a growing log fall on both alike. It checks
that the challenger logged one shadow row per served one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import astuple, dataclass
from functools import cache
from pathlib import Path
from statistics import median
from typing import TypeVar

import mlflow
import pandas as pd
from sqlalchemy import text

from mlops_platform import db, registry, tracking
from mlops_platform.config import get_settings
from mlops_platform.logstore import SHADOW_ROLE
from mlops_platform.mariadb_server import free_port
from serving import shadow
from tests.bench.common import console, print_figures, throwaway_store, verdict
from tests.servers import start_mlflow_server, stop_process_group
from tests.serving_harness import (
    ServiceProcess,
    fit,
    labelled_frame,
    promote,
    publish,
    records,
)

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = file:read("*a")
file:close()
"""
T = TypeVar("T")
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
MODEL = {"iterations": 300, "depth": 6}
# Workers check the aliases this often (the default is 30 s): the shadow comparison moves
# `challenger` and waits for every worker to see it.
POLL_INTERVAL_S = 5
WARM_UP_S = 3


@dataclass(frozen=True)
class WrkResult:
    requests: int
    non_2xx: int
    socket_errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx


def run_wrk(url: str, body: bytes, connections: int, seconds: int, scratch: Path) -> WrkResult:
    """POST `body` to `url` from `connections` connections for `seconds`."""
    (scratch / "post.lua").write_text(WRK_SCRIPT)
    (scratch / "body.json").write_bytes(body)
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(scratch / "post.lua"), url],
        env={**os.environ, "BENCH_BODY": str(scratch / "body.json")},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def latency(percentile: str) -> float:
        value, unit = re.search(rf"{percentile}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * UNITS[unit]

    errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(re.search(r"(\d+) requests in", output).group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, errors.groups())) if errors else 0,
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
    )


@dataclass(frozen=True)
class Counts:
    """What the service counted, summed over its workers."""

    predicted: int  # records the champion predicted
    shadowed: int  # records the challenger scored in shadow
    skipped: int  # served records the challenger did not score (its queue was full)
    stored: int  # log rows, served and shadow, stored in the database directly or by replay

    @property
    def to_store(self) -> int:
        """Log rows the predictions make: one per served record, one per shadow score."""
        return self.predicted + self.shadowed

    def __sub__(self, earlier: Counts) -> Counts:
        pairs = zip(astuple(self), astuple(earlier), strict=True)
        return Counts(*(now - then for now, then in pairs))


def service_counts(url: str) -> Counts:
    """The service's counts from one read of /metrics.

    The log is counted by the service: polling COUNT(*) on the table instead would scan
    all of it each time and slow down the very inserts being waited for.
    """
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()

    def total(name: str, labels: str = "") -> int:
        pattern = rf"^{name}\{{[^}}]*{labels}[^}}]*\}} (\S+)$"
        return int(sum(float(value) for value in re.findall(pattern, metrics, re.M)))

    stored = sum(
        total("mlops_prediction_log_rows_total", f'destination="{destination}"')
        for destination in ("database", "replay")
    )
    return Counts(
        total("mlops_predictions_total"),
        total("mlops_shadow_predictions_total"),
        total("mlops_shadow_skipped_rows_total"),
        stored,
    )


def settled(read: Callable[[], T], quiet_s: float = 1.0) -> T:
    """`read()` once it stops changing: abandoned requests finished, log writers flushed."""
    previous = read()
    while True:
        time.sleep(quiet_s)
        if (current := read()) == previous:
            return current
        previous = current


def logged_rows(store_url: str) -> Counter[str]:
    """Rows in prediction_log by role: `shadow`, or one whose prediction was served."""
    with db.transaction(store_url) as connection:
        rows = connection.execute(text("SELECT role, COUNT(*) FROM prediction_log GROUP BY role"))
        return Counter({role: count for role, count in rows})


def start_stack(stack: ExitStack, scratch: Path, workers: int) -> tuple[str, str, dict[str, int]]:
    """Store, MLflow, champion and service, torn down by `stack`.

    Returns the service URL, the store URL, and the processes whose CPU time is reported.
    """
    store_url = stack.enter_context(throwaway_store("mlops_bench"))
    backend = db.feature_store_url(store_url).set(database="mlflow_bench")
    port = free_port()
    mlflow_process = start_mlflow_server(
        backend.render_as_string(hide_password=False), scratch, port
    )
    stack.callback(stop_process_group, mlflow_process)
    mlflow_uri = f"http://127.0.0.1:{port}"
    environment = {
        "FEATURE_STORE_URL": store_url,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "MLFLOW_EXPERIMENT": "bench-serving",
        "MODEL_NAME": "credit_score_bench",
    }
    os.environ.update(environment)
    get_settings.cache_clear()
    tracking.configure()
    promote(publish(fit(training_frame(), **MODEL), training_frame()), store_url)

    service = ServiceProcess(
        {
            **environment,
            "SERVING_WORKERS": str(workers),
            "SERVING_CACHE_DIR": str(scratch / "cache"),
            "SERVING_SPOOL_DIR": str(scratch / "spool"),
            "SERVING_POLL_INTERVAL_S": str(POLL_INTERVAL_S),
        },
        scratch / "service.log",
    ).start()
    stack.callback(service.stop)
    service.wait()
    processes = {"service": service.process.pid}  # `bentoml serve`: its workers descend from it
    if (mariadb := mariadb_pid(db.make_url(store_url).port)) is not None:
        processes["MariaDB"] = mariadb
    return service.url, store_url, processes


@cache
def training_frame() -> pd.DataFrame:
    """The data the champion and the challenger are trained on."""
    return labelled_frame(customers=3_000, months=2)


def mariadb_pid(port: int | None) -> int | None:
    """The local `mariadbd` listening on `port`, if there is one."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if arguments[0].endswith(b"mariadbd") and f"--port={port}".encode() in arguments:
            return int(cmdline.parent.name)
    return None


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) that a live process and its descendants used (Linux)."""
    parent, ticks = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parent[pid], ticks[pid] = int(fields[1]), int(fields[11]) + int(fields[12])

    def descends(pid: int) -> bool:
        while pid not in (root, 0, 1):
            pid = parent.get(pid, 0)
        return pid == root

    return sum(t for pid, t in ticks.items() if descends(pid)) / os.sysconf("SC_CLK_TCK")


def cpu_ticks() -> tuple[int, int, int]:
    """(all, idle, stolen) CPU time of the machine so far, from /proc/stat: steal is time
    the hypervisor gave this VM's virtual CPUs to others, so figures vary with the neighbours."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9]
    )
    return user + nice + system + idle + iowait + irq + softirq + steal, idle + iowait, steal


def children_cpu_s() -> float:
    """CPU seconds of this process's finished children: wrk, once it has been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class MachineCpu:
    """Shares of the machine's CPU time over a while."""

    idle: float  # nothing used it
    stolen: float  # the hypervisor gave it to other VMs
    outside: float  # processes other than this bench's used it: other sessions, the kernel


def machine_cpu_during(run: Callable[[], T]) -> tuple[T, MachineCpu]:
    """`run()` and how the machine's CPU time was shared while it ran."""

    def own_cpu_s() -> float:  # this bench and everything it started, wrk included
        return tree_cpu_s(os.getpid()) + children_cpu_s()

    before_ticks, before_own = cpu_ticks(), own_cpu_s()
    result = run()
    own = own_cpu_s() - before_own
    ticks, idle, stolen = (now - then for now, then in zip(cpu_ticks(), before_ticks, strict=True))
    busy_s = (ticks - idle - stolen) / os.sysconf("SC_CLK_TCK")
    outside = max(0.0, busy_s - own) * os.sysconf("SC_CLK_TCK") / ticks
    return result, MachineCpu(idle / ticks, stolen / ticks, outside)


@dataclass(frozen=True)
class Measurement:
    wrk: WrkResult
    seconds: int  # how long wrk sent requests
    predicted: int  # records the service predicted (its /metrics counter)
    logged: int  # served rows that reached prediction_log
    shadowed: int  # records the challenger scored in shadow (its /metrics counter)
    shadow_skipped: int  # served records the challenger did not score
    shadow_logged: int  # shadow rows that reached prediction_log
    answered: int  # records in responses wrk received with 2xx
    log_lag_s: float  # after wrk stopped, until every prediction was in prediction_log
    cpu_us_per_record: dict[str, float]  # process → CPU µs per predicted record
    machine: MachineCpu  # while wrk ran

    @property
    def sustained_per_s(self) -> float:
        """Records per second with the logging included: until the last one was stored."""
        return self.predicted / (self.seconds + self.log_lag_s)

    @property
    def cut_off(self) -> int:
        """Predictions whose response wrk no longer waited for when its time was up."""
        return self.predicted - self.answered


def measure(
    url: str, store_url: str, processes: dict[str, int], body: bytes, records: int,
    connections: int, seconds: int, scratch: Path,
) -> Measurement:  # fmt: skip
    before = settled(lambda: service_counts(url))
    before_logged = logged_rows(store_url)
    before_cpu = {name: tree_cpu_s(root) for name, root in processes.items()}
    before_wrk = children_cpu_s()
    result, machine = machine_cpu_during(
        lambda: run_wrk(url + "/predict", body, connections, seconds, scratch)
    )
    ended = time.monotonic()
    counts, caught_up = until_logged(url, before)
    # Counted until the log caught up, so storing every row is part of the cost.
    used = {name: tree_cpu_s(root) - before_cpu[name] for name, root in processes.items()}
    used["wrk"] = children_cpu_s() - before_wrk
    logged = logged_rows(store_url) - before_logged  # the audit: rows really in the table
    return Measurement(
        result, seconds, counts.predicted, logged.total() - logged[SHADOW_ROLE], counts.shadowed,
        counts.skipped, logged[SHADOW_ROLE], result.ok * records,
        max(0.0, caught_up - ended),
        {name: seconds_used / counts.predicted * 1e6 for name, seconds_used in used.items()},
        machine,
    )  # fmt: skip


def until_logged(
    url: str, before: Counts, quiet_s: float = 1.0, timeout_s: float = 120
) -> tuple[Counts, float]:
    """(counts since `before`, when the log had stored every row), from /metrics every
    0.1 s after wrk stopped: until no prediction, served or shadow, came for `quiet_s`
    and every one was stored."""
    samples: list[tuple[float, Counts]] = []  # (time.monotonic(), counts since `before`)
    while True:
        now = time.monotonic()
        counts = service_counts(url) - before
        samples.append((now, counts))
        recent = {(c.predicted, c.shadowed) for at, c in samples if at >= now - quiet_s}
        quiet = now - samples[0][0] >= quiet_s and len(recent) == 1
        if quiet and counts.stored >= counts.to_store:
            return counts, next(at for at, c in samples if c.stored >= counts.to_store)
        if now - samples[0][0] > timeout_s:
            raise TimeoutError(f"the log did not catch up within {timeout_s:.0f} s")
        time.sleep(0.1)


# -- shadow scoring's cost ---------------------------------------------------------------


def conditions(rounds: int) -> Iterator[bool]:
    """Whether a challenger scores in shadow, run by run: without, with, with, without, …

    Each round flips the order of the one before, so a drift in time (a neighbour's load,
    the log table growing) weighs on both conditions alike, and the alias moves once a round.
    """
    for round_number in range(rounds):
        yield from (True, False) if round_number % 2 else (False, True)


def reported_challenger(url: str) -> str | None:
    """The challenger version that /metadata names (None: none), from whichever worker
    accepts the new connection that each call opens."""
    with urllib.request.urlopen(url + "/metadata", timeout=10) as response:
        challenger = json.load(response)["challenger"]
    return challenger["version"] if challenger else None


def set_challenger(url: str, version: str | None, asks: int = 16, timeout_s: float = 90) -> None:
    """Point the registry's `challenger` alias at `version` (None removes it), then wait
    until every worker reports it: each polls the registry alone, so /metadata is asked
    `asks` times in a row on new connections."""
    client, name = mlflow.MlflowClient(), registry.model_name()
    current = client.get_registered_model(name).aliases.get(registry.CHALLENGER)
    if version is None and current is not None:
        client.delete_registered_model_alias(name, registry.CHALLENGER)
    elif version is not None and version != current:
        client.set_registered_model_alias(name, registry.CHALLENGER, version)
    deadline = time.monotonic() + timeout_s
    while not all(reported_challenger(url) == version for _ in range(asks)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every worker reports challenger {version} in /metadata")
        time.sleep(0.5)


def compare_shadow(
    url: str, store_url: str, processes: dict[str, int], body: bytes,
    args: argparse.Namespace, scratch: Path,
) -> dict[bool, list[Measurement]]:  # fmt: skip
    """Single-record runs without (False) and with (True) a challenger scoring in shadow:
    a second model of the champion's size, trained with another seed."""
    console.print("registering a challenger; single records without and with it …")
    challenger = publish(fit(training_frame(), **MODEL, seed=1), training_frame())
    runs: dict[bool, list[Measurement]] = {False: [], True: []}
    for with_challenger in conditions(args.shadow_rounds):
        set_challenger(url, challenger if with_challenger else None)
        run_wrk(url + "/predict", body, args.connections, WARM_UP_S, scratch)
        runs[with_challenger].append(
            measure(url, store_url, processes, body, 1, args.connections, args.seconds, scratch)
        )
    set_challenger(url, None)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="bench this running service instead of starting one")
    parser.add_argument("--store-url", help="its log store (default: FEATURE_STORE_URL)")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--batch-rows", type=int, default=1_000)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=get_settings().serving_workers)
    parser.add_argument(
        "--shadow-only", action="store_true",
        help="run only the comparison without and with a challenger scoring in shadow",
    )  # fmt: skip
    parser.add_argument(
        "--shadow-rounds", type=int, default=2,
        help="runs of each condition in that comparison (default: 2)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.url and args.shadow_only:
        parser.error("--shadow-only needs the bench's own service: it moves `challenger`")
    if args.shadow_rounds < 1:
        parser.error("--shadow-rounds must be at least 1")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: sudo apt-get install -y wrk")

    frame = labelled_frame(customers=args.batch_rows, months=1, seed=11)
    single = json.dumps(records(frame.head(1))[0]).encode()
    batch = json.dumps(records(frame.head(args.batch_rows))).encode()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serving-")))
        if args.url:
            url, store_url = (
                args.url.rstrip("/"),
                args.store_url or get_settings().feature_store_url,
            )
            processes: dict[str, int] = {}  # another host's processes: only wrk is measured
        else:
            console.print("starting MariaDB, MLflow, a champion and the service …")
            url, store_url, processes = start_stack(stack, scratch, args.workers)
        speed = None if args.shadow_only else (
            measure_single_and_batch(url, store_url, processes, single, batch, args, scratch)
        )  # fmt: skip
        # Another host's registry is not the bench's to change.
        compared = None if args.url else compare_shadow(
            url, store_url, processes, single, args, scratch
        )  # fmt: skip
    if speed:
        report(args, *speed)
    if compared:
        shadow_report(args, compared)


def measure_single_and_batch(
    url: str, store_url: str, processes: dict[str, int], single: bytes, batch: bytes,
    args: argparse.Namespace, scratch: Path,
) -> tuple[Measurement, Measurement]:  # fmt: skip
    """Single records from --connections, then batches of --batch-rows."""
    run_wrk(url + "/predict", single, args.connections, WARM_UP_S, scratch)
    one = measure(url, store_url, processes, single, 1, args.connections, args.seconds, scratch)
    many = measure(
        url, store_url, processes, batch, args.batch_rows, args.batch_connections,
        args.seconds, scratch,
    )  # fmt: skip
    return one, many


def all_logged(m: Measurement, in_flight_limit: int) -> bool:
    """Every prediction logged once, and only those; wrk left at most the in-flight ones."""
    return m.logged == m.predicted and 0 <= m.cut_off <= in_flight_limit


def errors(m: Measurement) -> int:
    return m.wrk.non_2xx + m.wrk.socket_errors


def logging_rows(label: str, m: Measurement, in_flight_limit: int) -> list[tuple[str, ...]]:
    """Errors and the log audit: every prediction logged once, and only those."""
    return [
        (f"{label}: errors", f"{m.wrk.non_2xx} non-2xx, {m.wrk.socket_errors} socket", "0",
         verdict(errors(m) == 0)),
        (f"{label}: rows logged", f"{m.logged:,} = predicted {m.predicted:,} (2xx {m.answered:,}"
         f" + {m.cut_off:,} cut off by wrk's stop)", "logged == predicted",
         verdict(all_logged(m, in_flight_limit))),
    ]  # fmt: skip


def cpu_split(m: Measurement, unit: str) -> str:
    """CPU µs per record of each measured process, and their sum."""
    parts = " + ".join(f"{name} {us:.1f}" for name, us in m.cpu_us_per_record.items())
    return f"{parts} = {sum(m.cpu_us_per_record.values()):.1f} µs {unit}"


def throughput(m: Measurement, unit: str) -> str:
    """Records/s with logging included, and what wrk saw while it ran."""
    return (
        f"{m.sustained_per_s:,.0f} {unit}/s, all logged (wrk saw"
        f" {m.wrk.requests_per_s:,.1f} req/s; the log caught up {m.log_lag_s:.1f} s later)"
    )


def report(args: argparse.Namespace, one: Measurement, many: Measurement) -> None:
    settings = get_settings()
    print_figures(
        f"Serving: {args.workers} workers on {os.cpu_count()} CPUs; wrk -t2 for {args.seconds} s"
        f" with {args.connections} (single) and {args.batch_connections} (batch) connections;"
        f" CatBoost {MODEL['iterations']} trees of depth {MODEL['depth']}; log batches of"
        f" {settings.serving_log_batch_rows} rows every {settings.serving_log_flush_interval_s} s."
        " Throughput counts until the last prediction is stored in prediction_log.",
        [
            ("single record: throughput", throughput(one, "req"),
             ">= 600 req/s", verdict(one.sustained_per_s >= 600)),
            ("single record: latency p50 / p99", f"{one.wrk.p50_ms:.1f} / {one.wrk.p99_ms:.1f} ms",
             "p99 <= 60 ms", verdict(one.wrk.p99_ms <= 60)),
            *logging_rows("single record", one, args.connections),
            (f"{args.batch_rows:,}-record batch: throughput", throughput(many, "rows"),
             ">= 50,000 rows/s", verdict(many.sustained_per_s >= 50_000)),
            ("single record: CPU per request", cpu_split(one, "a request"), "", ""),
            ("CPU stolen by the hypervisor while wrk ran",
             f"{one.machine.stolen:.0%} (single), {many.machine.stolen:.0%} (batch)", "", ""),
            (f"{args.batch_rows:,}-record batch: CPU per row", cpu_split(many, "a row"),
             f"{os.cpu_count()} CPUs: <= {os.cpu_count() * 1e6 / 50_000:.0f} µs a row"
             " at 50,000 rows/s", ""),
            (f"{args.batch_rows:,}-record batch: latency p50 / p99",
             f"{many.wrk.p50_ms:.0f} / {many.wrk.p99_ms:.0f} ms", "", ""),
            *logging_rows(f"{args.batch_rows:,}-record batch", many,
                          args.batch_connections * args.batch_rows),
        ],
    )  # fmt: skip


@dataclass(frozen=True)
class Medians:
    """One condition's figures: the median over its runs."""

    p50_ms: float
    p99_ms: float
    requests_per_s: float
    cpu_us: dict[str, float]  # process → CPU µs per served request

    @classmethod
    def of(cls, runs: list[Measurement]) -> Medians:
        return cls(
            median(m.wrk.p50_ms for m in runs),
            median(m.wrk.p99_ms for m in runs),
            median(m.wrk.requests_per_s for m in runs),
            {
                name: median(m.cpu_us_per_record[name] for m in runs)
                for name in runs[0].cpu_us_per_record
            },
        )

    def __str__(self) -> str:
        cpu = " + ".join(f"{name} {us:,.0f}" for name, us in self.cpu_us.items())
        return (
            f"p50 {self.p50_ms:.1f} / p99 {self.p99_ms:.1f} ms, {self.requests_per_s:,.0f} req/s;"
            f" CPU {cpu} = {sum(self.cpu_us.values()):,.0f} µs a request"
        )


def change(before: float, after: float) -> str:
    return f"{(after - before) / before:+.1%}"


def shadow_report(args: argparse.Namespace, runs: dict[bool, list[Measurement]]) -> None:
    without, with_shadow = Medians.of(runs[False]), Medians.of(runs[True])
    p99_cost = (with_shadow.p99_ms - without.p99_ms) / without.p99_ms
    every_run = runs[False] + runs[True]
    shadow_rows = sum(m.shadow_logged for m in runs[True])
    served_rows = sum(m.logged for m in runs[True])
    skipped = sum(m.shadow_skipped for m in runs[True])
    stray = sum(m.shadow_logged for m in runs[False])  # rows a removed challenger still made

    def per_run(figure: Callable[[Measurement], str]) -> str:
        return "; ".join(
            f"{'with' if condition else 'without'} {', '.join(map(figure, runs[condition]))}"
            for condition in (False, True)
        )

    print_figures(
        f"Shadow scoring's cost: single records, wrk -t2 -c{args.connections} for"
        f" {args.seconds} s a run, {args.shadow_rounds} runs of each condition in the order"
        f" {', '.join('with' if c else 'without' for c in conditions(args.shadow_rounds))};"
        f" medians over the runs. {args.workers} workers on {os.cpu_count()} CPUs; the"
        f" challenger is a second CatBoost model of {MODEL['iterations']} trees of depth"
        f" {MODEL['depth']}, batched every {shadow.GATHER_S} s.",
        [
            ("without a challenger", str(without), "", ""),
            ("with a challenger in shadow", str(with_shadow), "", ""),
            ("p99 of each run (ms)", per_run(lambda m: f"{m.wrk.p99_ms:.1f}"), "", ""),
            ("p99 cost of shadow scoring", f"{p99_cost:+.1%} (p50 "
             f"{change(without.p50_ms, with_shadow.p50_ms)}, req/s "
             f"{change(without.requests_per_s, with_shadow.requests_per_s)}, service CPU "
             f"{change(without.cpu_us['service'], with_shadow.cpu_us['service'])})", "<= +5%",
             verdict(p99_cost <= 0.05)),
            ("shadow rows logged in the runs with", f"{shadow_rows:,} = served {served_rows:,}"
             f" ({skipped:,} skipped; {stray:,} in the runs without)",
             "shadow == served", verdict(shadow_rows == served_rows and stray == 0)),
            ("served rows logged, every run", f"{sum(m.logged for m in every_run):,} ="
             f" predicted {sum(m.predicted for m in every_run):,}", "logged == predicted",
             verdict(all(all_logged(m, args.connections) for m in every_run))),
            ("errors, every run", f"{sum(errors(m) for m in every_run)} non-2xx or socket", "0",
             verdict(not any(errors(m) for m in every_run))),
            ("machine CPU while wrk ran: idle / stolen by the hypervisor / used outside"
             " the bench", per_run(lambda m: f"{m.machine.idle:.0%} / {m.machine.stolen:.0%} /"
                                   f" {m.machine.outside:.0%}"), "", ""),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
