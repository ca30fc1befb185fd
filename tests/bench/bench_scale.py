"""Throughput through the load balancer of the scale-out overlay, with 3 replicas and with 1.

Starts its own compose project with docker-compose.scale.yml (fresh secrets and ports),
lets the short demo produce a champion, then sends single records with wrk through HAProxy:
first to three serving replicas, then, with two of them stopped, to one. Prints req/s, p50,
p99 and errors for both, and each container's CPU while wrk ran. Takes the stack down
(volumes included) at the end.

    make bench-scale            (needs Docker and wrk)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from rich.table import Table

from mlops_platform import compose
from mlops_platform.orchestration import month_of
from mlops_platform.traffic import feature_records, traffic_month
from tests.bench.bench_serving import WrkResult, run_wrk
from tests.bench.common import console
from tests.compose.project import (
    ComposeProject,
    engine_problem,
    run_short_demo,
    start_project,
    take_down,
)

REPLICAS = ("serving", "serving-2", "serving-3")
# HAProxy checks every 2 s and takes a stopped replica out after three failed checks.
BALANCER_SETTLE_S = 8


def docker_proxy_cpu_s() -> float:
    """CPU seconds of the engine's userland proxies, which carry every published port."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            if fields[0].endswith("(docker-proxy"):
                total += sum(int(value) for value in fields[1].split()[11:13])
        except (OSError, IndexError):
            continue
    return total / ticks


def container_cpu(project: ComposeProject, seconds: float) -> dict[str, float]:
    """Each container's mean CPU (in cores) over `seconds`, from `docker stats` samples."""
    samples: dict[str, list[float]] = defaultdict(list)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        output = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        for line in output.splitlines():
            name, percent = line.rsplit(" ", 1)
            if name.startswith(project.name):
                service = re.sub(rf"^{re.escape(project.name)}-|-\d+$", "", name)
                samples[service].append(float(percent.rstrip("%")) / 100)
    return {service: sum(values) / len(values) for service, values in samples.items()}


def measured(
    project: ComposeProject, url: str, body: bytes, connections: int, seconds: int, scratch: Path
) -> tuple[WrkResult, dict[str, float]]:
    """wrk's figures, and each container's CPU sampled while wrk ran."""
    cpu: dict[str, float] = {}
    sampler = threading.Thread(
        target=lambda: cpu.update(container_cpu(project, seconds - 4)), daemon=True
    )
    sampler.start()
    proxy_before = docker_proxy_cpu_s()
    result = run_wrk(url + "/predict", body, connections, seconds, scratch)
    cpu["docker-proxy (host)"] = (docker_proxy_cpu_s() - proxy_before) / seconds
    sampler.join()
    return result, cpu


def report(runs: dict[str, tuple[WrkResult, dict[str, float]]], connections: int) -> None:
    figures = Table(
        title=f"Single records through HAProxy, {connections} connections", title_justify="left"
    )
    for header in ("replicas", "req/s", "p50 ms", "p99 ms", "non-2xx", "socket errors"):
        figures.add_column(header, justify="right")
    for label, (wrk, _) in runs.items():
        figures.add_row(
            label, f"{wrk.requests_per_s:,.0f}", f"{wrk.p50_ms:.1f}", f"{wrk.p99_ms:.1f}",
            f"{wrk.non_2xx:,}", f"{wrk.socket_errors:,}",
        )  # fmt: skip
    console.print(figures)
    cpu = Table(title="Where the CPU went (cores, mean while wrk ran)", title_justify="left")
    cpu.add_column("container")
    services = sorted({s for _, used in runs.values() for s in used}, key=str)
    for label in runs:
        cpu.add_column(f"{label} replicas", justify="right")
    for service in services:
        cpu.add_row(service, *(f"{runs[label][1].get(service, 0):.2f}" for label in runs))
    console.print(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: sudo apt-get install -y wrk")
    if problem := engine_problem():
        raise SystemExit(f"bench-scale needs a Docker engine: {problem}")

    record = feature_records(traffic_month(20, month_of(datetime.now(UTC))).features)[0]
    body = json.dumps(record).encode()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch_dir:
        scratch = Path(scratch_dir)
        project = start_project(scratch, ("docker-compose.scale.yml",))
        try:
            console.print(f"starting {project.name} and running the short demo for a champion …")
            run_short_demo(project)
            url = compose.published_url(compose.BALANCER, 3000, project.environment)
            run_wrk(url + "/predict", body, args.connections, 3, scratch)  # warm-up
            runs = {"3": measured(project, url, body, args.connections, args.seconds, scratch)}
            project.run("stop", *REPLICAS[1:])
            time.sleep(BALANCER_SETTLE_S)
            runs["1"] = measured(project, url, body, args.connections, args.seconds, scratch)
        finally:
            take_down(project)
    report(runs, args.connections)


if __name__ == "__main__":
    main()
