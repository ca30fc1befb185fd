"""Real servers for tests and benchmarks: the MLflow server as `mlops` runs it, and stopping
process groups cleanly (a SIGTERM to the parent alone can orphan workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def start_mlflow_server(backend: str, directory: Path, port: int) -> subprocess.Popen:
    """A real MLflow server started by `tracking.run_server()` like `mlops`; waits for health."""
    environment = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": backend,
        "MLFLOW_ARTIFACTS_DESTINATION": str(directory / "artifacts"),
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
    }
    log_path = directory / "server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from mlops_platform import tracking; tracking.run_server()"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_health(f"http://127.0.0.1:{port}", process, log_path)
    except BaseException:
        stop_process_group(process)
        raise
    return process


def _wait_for_health(uri: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"mlflow server not healthy after 90 s:\n{log_path.read_text()[-3000:]}")


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the server's whole process group (uvicorn has children), then SIGKILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
