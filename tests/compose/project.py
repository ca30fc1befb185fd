"""A compose project of its own, for the compose tests and `make bench-scale`: project
name, env file with fresh secrets, free host ports, and which compose files.

Nothing here touches the user's `.env`, images tagged `latest` or the default ports. Without
a Docker engine the tests are skipped with the reason, or fail when MLOPS_REQUIRE_DOCKER is
set (`.ci/run` sets it, so CI never passes them silently).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops_platform import compose
from mlops_platform.config import PROJECT_ROOT
from mlops_platform.mariadb_server import free_port


def engine_problem() -> str | None:
    """Why no compose stack can run here, or None."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"no Docker engine answers `docker info` ({info.stderr.strip()[-200:]})"
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    if version.returncode != 0:
        return "the Compose v2 plugin (`docker compose`) is missing"
    return None


def free_port_pair() -> str:
    """Two adjacent free host ports as a compose range, for up to two serving replicas."""
    for _ in range(50):
        first = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", first + 1))
            except OSError:
                continue
        return f"{first}-{first + 1}"
    raise RuntimeError("no two adjacent free ports")


@dataclass
class ComposeProject:
    name: str
    environment: dict[str, str]
    secrets: dict[str, str]

    def run(self, *arguments: str, timeout: float = 600) -> str:
        return compose.compose(*arguments, environment=self.environment, timeout=timeout)

    def sql(self, query: str) -> str:
        """One query as root inside the MariaDB container; its tab-separated output."""
        return self.run(
            "exec", "-T", "-e", f"MYSQL_PWD={self.secrets['MARIADB_ROOT_PASSWORD']}", "mariadb",
            "mariadb", "-uroot", "--batch", "--skip-column-names", "mlops", "-e", query,
        ).strip()  # fmt: skip

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks that still carry the project's label."""
        label = f"label=com.docker.compose.project={self.name}"
        found = {}
        for kind, listing in (
            ("containers", ["docker", "ps", "-a", "--filter", label, "--format", "{{.Names}}"]),
            ("volumes", ["docker", "volume", "ls", "--filter", label, "--format", "{{.Name}}"]),
            ("networks", ["docker", "network", "ls", "--filter", label, "--format", "{{.Name}}"]),
        ):
            output = subprocess.run(listing, capture_output=True, text=True, check=True).stdout
            found[kind] = output.split()
        return found


def start_project(
    tmp_path: Path, overlays: tuple[str, ...] = (), extra: dict[str, str] | None = None
) -> ComposeProject:
    """A project of its own: name, env file with fresh secrets, free host ports, and files."""
    problem = engine_problem()
    if problem:
        message = f"compose tests need a Docker engine: {problem}"
        if os.environ.get("MLOPS_REQUIRE_DOCKER"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message + " (set MLOPS_REQUIRE_DOCKER=1 to make this a failure)")
    from cryptography.fernet import Fernet

    name = f"mlops-test-{uuid.uuid4().hex[:8]}"
    chosen = {
        "MARIADB_ROOT_PASSWORD": secrets.token_hex(16),
        "MARIADB_USER": "mlops",
        "MARIADB_PASSWORD": secrets.token_hex(16),
        "MARIADB_REPLICATION_PASSWORD": secrets.token_hex(16),
        "REDIS_PASSWORD": secrets.token_hex(16),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW_SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_hex(12),
        "AIRFLOW_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
        "SERVING_PORTS": free_port_pair(),
        # The test's own tag: layers are reused between runs, the user's `latest` is untouched.
        "MLOPS_IMAGE_TAG": "compose-test",
        **(extra or {}),
    }
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in chosen.items()))
    # Only the test's env file: compose would otherwise also read the checkout's `.env`.
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COMPOSE_", "MLFLOW_", "AIRFLOW", "SERVING_", "MARIADB_"))
    }
    files = [str(PROJECT_ROOT / "docker-compose.yml")]
    files += [str(PROJECT_ROOT / overlay) for overlay in overlays]
    environment |= {
        "COMPOSE_PROJECT_NAME": name,
        "COMPOSE_ENV_FILES": str(env_file),
        "COMPOSE_FILE": os.pathsep.join(files),
    }
    return ComposeProject(name, environment, chosen)


def take_down(project: ComposeProject) -> None:
    """Idempotent: the last test of a module already took the stack down and checked."""
    subprocess.run(
        compose.command("down", "--volumes", "--remove-orphans", "--timeout", "20"),
        env=project.environment, capture_output=True, timeout=300,
    )  # fmt: skip


def run_short_demo(project: ComposeProject) -> str:
    """`mlops demo --size small --stack compose`, as `make demo STACK=compose` runs it; its
    output, or AssertionError with the end of it."""
    result = subprocess.run(
        [sys.executable, "-m", "mlops_platform", "demo", "--size", "small", "--stack", "compose"],
        env=project.environment, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    return output


def settled_log_rows(project: ComposeProject) -> int:
    """The log's row count once the writers have flushed what earlier tests sent."""
    rows = int(project.sql("SELECT COUNT(*) FROM prediction_log"))
    while True:
        time.sleep(3)  # several flush intervals
        now = int(project.sql("SELECT COUNT(*) FROM prediction_log"))
        if now == rows:
            return rows
        rows = now


def wait_for_log_rows(project: ComposeProject, expected: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while True:
        rows = int(project.sql("SELECT COUNT(*) FROM prediction_log"))
        if rows >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(2)
