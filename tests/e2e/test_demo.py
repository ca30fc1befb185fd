"""`make demo DEMO_SIZE=small` end to end, isolated: its own MariaDB, ports and data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import make_url

from mlops_platform.mariadb_server import free_port


def test_the_short_demo_closes_the_level_1_loop(mariadb_server: str, tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("MLFLOW_PORT", "AIRFLOW_PORT", "SERVING_PORT")}
    store = make_url(mariadb_server).set(database="mlops").render_as_string(hide_password=False)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW"))},
        **ports,
        "FEATURE_STORE_URL": store,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
        "MLOPS_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, "-m", "mlops_platform", "demo", "--size", "small"]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    finally:
        subprocess.run(
            [sys.executable, "-m", "mlops_platform", "stack", "down"], env=env, timeout=120
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "serving credit_score v1" in output
    assert "serving credit_score v2 (was v1)" in output
    assert "performance:" in output or "drift:" in output
    assert "demo finished" in output
