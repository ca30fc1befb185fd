"""The native stack: the services of docker-compose.yml as local processes under honcho.

Each service runs the same `mlops …` entry point as its compose container. `up` starts
them in one process group in the background, `down` signals that group, `status` asks
every service's health endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pymysql
from sqlalchemy import make_url

from mlops_platform import airflow_api
from mlops_platform.config import (
    PROJECT_ROOT,
    Settings,
    get_settings,
    running_stack_pid,
    stack_settings_file,
    stack_state_dir,
)
from mlops_platform.errors import InvalidInput


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    url: str
    health_path: str | None  # None: probed with a database connection instead


def _mlops(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "mlops_platform", *arguments]


def store_server_reachable(settings: Settings, timeout: float = 2) -> bool:
    """Whether FEATURE_STORE_URL's server answers (its database may not exist yet)."""
    url = make_url(settings.feature_store_url)
    try:
        pymysql.connect(
            host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username,
            password=url.password or "", connect_timeout=timeout,
        ).close()  # fmt: skip
        return True
    except pymysql.err.MySQLError:
        return False


def services(settings: Settings, with_mariadb: bool) -> list[Service]:
    """The stack's long-running services, in start order."""
    store = make_url(settings.feature_store_url)
    listed = [
        Service("mlflow", _mlops("mlflow-server"),
                f"http://{settings.mlflow_host}:{settings.mlflow_port}", "/health"),
        Service("airflow", _mlops("airflow", "standalone"),
                settings.airflow_api_url, "/api/v2/monitor/health"),
        Service("serving", _mlops("serve"), settings.service_url, "/readyz"),
    ]  # fmt: skip
    if with_mariadb:
        listed.insert(
            0,
            Service("mariadb", _mlops("stack", "mariadb"),
                    f"mysql://{store.host}:{store.port or 3306}", None),
        )  # fmt: skip
    return listed


def state_dir(settings: Settings) -> Path:
    return stack_state_dir(settings.mlops_data_dir)


def _single_quoted(value: str) -> str:
    """A dotenv single-quoted value: only backslash and quote are escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def record_settings(settings: Settings) -> Path:
    """Write the settings the stack starts with, which `get_settings()` then reads too."""
    lines = [
        f"{name.upper()}={_single_quoted(str(value))}"
        for name in sorted(settings.model_fields_set)
        if (value := getattr(settings, name)) is not None
    ]
    path = stack_settings_file(settings.mlops_data_dir)
    # It may hold passwords (FEATURE_STORE_URL …), like .env: readable by the owner only.
    path.touch(mode=0o600)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def run_foreground(settings: Settings | None = None) -> int:
    """Run every service under honcho until one of them stops (then all stop)."""
    from honcho.manager import Manager

    settings = settings or get_settings()
    manager = Manager()
    # As in compose: every service, and every Airflow task, talks to the same MLflow server.
    environment = {**os.environ, "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    for service in services(settings, with_mariadb=not store_server_reachable(settings)):
        manager.add_process(
            service.name, shlex.join(service.command), env=environment, cwd=str(PROJECT_ROOT)
        )
    manager.loop()
    return manager.returncode or 0


def start_detached(settings: Settings | None = None) -> int:
    """Start the stack in its own process group in the background; returns its pid."""
    settings = settings or get_settings()
    directory = state_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    if running_pid(settings):
        raise RuntimeError(
            f"the stack already runs (pid {running_pid(settings)}); `make down` first"
        )
    record_settings(settings)
    with open(directory / "stack.log", "ab") as log:
        process = subprocess.Popen(
            _mlops("stack", "up", "--foreground"), cwd=PROJECT_ROOT, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    (directory / "stack.pid").write_text(str(process.pid))
    return process.pid


def up(
    settings: Settings | None = None,
    timeout: float = 240,
    progress: Callable[[str], None] = print,
) -> dict[str, tuple[str, str]]:
    """Start the stack detached, migrate the store, and wait for MLflow and Airflow."""
    from mlops_platform import db

    settings = settings or get_settings()
    pid = start_detached(settings)
    progress(f"stack starting (pid {pid}); log: {state_dir(settings) / 'stack.log'}")
    deadline = time.monotonic() + timeout
    while not store_server_reachable(settings):
        if time.monotonic() > deadline or running_pid(settings) is None:
            raise RuntimeError(f"MariaDB did not come up; see {state_dir(settings) / 'stack.log'}")
        time.sleep(1)
    db.upgrade(settings.feature_store_url)
    while time.monotonic() < deadline:
        states = status(settings)
        # Serving becomes ready only once a champion exists; live is enough here.
        if all(state == "ready" for name, (state, _) in states.items() if name != "serving"):
            return states
        if running_pid(settings) is None:
            break
        time.sleep(3)
    raise RuntimeError(f"the stack is not ready; see {state_dir(settings) / 'stack.log'}")


def running_pid(settings: Settings) -> int | None:
    return running_stack_pid(settings.mlops_data_dir)


def stop(settings: Settings | None = None, timeout: float = 60) -> bool:
    """Signal the stack's whole process group; False when nothing was running."""
    settings = settings or get_settings()
    pid = running_pid(settings)
    if pid is None:
        return False
    # The group: a TERM to honcho alone could orphan Airflow's scheduler and workers.
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(settings):
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # whatever outlived the graceful stop
    (state_dir(settings) / "stack.pid").unlink(missing_ok=True)
    stack_settings_file(settings.mlops_data_dir).unlink(missing_ok=True)
    return True


def probe(service: Service, settings: Settings) -> str:
    """'ready', 'up' (answering but not ready, e.g. serving without a champion) or 'down'."""
    if service.health_path is None:
        return "ready" if store_server_reachable(settings, timeout=1) else "down"
    try:
        with urllib.request.urlopen(service.url + service.health_path, timeout=2):
            pass
    except urllib.error.HTTPError:
        return "up"
    except OSError:
        return "down"
    if service.name == "airflow" and not airflow_api.healthy(service.url):
        return "up"
    return "ready"


def status(settings: Settings | None = None) -> dict[str, tuple[str, str]]:
    """Each service's state and URL."""
    settings = settings or get_settings()
    return {
        s.name: (probe(s, settings), s.url)
        for s in services(settings, with_mariadb=(state_dir(settings) / "mariadb").exists())
    }


def run_local_mariadb(settings: Settings | None = None) -> None:
    """Replace this process with a project-local `mariadbd` on FEATURE_STORE_URL's port."""
    from mlops_platform.mariadb_server import initialise_datadir, server_command

    settings = settings or get_settings()
    datadir = (state_dir(settings) / "mariadb").resolve()
    initialise_datadir(datadir)
    command = server_command(datadir, make_url(settings.feature_store_url).port or 3306)
    os.execv(command[0], command)


def airflow_environment(settings: Settings | None = None) -> dict[str, str]:
    """Airflow's settings for this project; variables already set (e.g. by compose) win."""
    settings = settings or get_settings()
    home = (settings.airflow_home or settings.mlops_data_dir / "airflow").resolve()
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Two cores here: Airflow's default of 32 slots means 40 processes and ~1.7 GB.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
            f"http://127.0.0.1:{settings.airflow_port}/execution/"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    }
    return {**defaults, **os.environ}


def run_airflow(arguments: list[str], settings: Settings | None = None) -> None:
    """Replace this process with `airflow …` in the project's Airflow environment."""
    settings = settings or get_settings()
    environment = airflow_environment(settings)
    home = Path(environment["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if settings.airflow_admin_password:
        # The simple auth manager generates passwords only for users missing from this file.
        passwords = home / airflow_api.GENERATED_PASSWORDS
        passwords.write_text(json.dumps({airflow_api.ADMIN_USER: settings.airflow_admin_password}))
        passwords.chmod(0o600)
    os.execvpe(sys.executable, [sys.executable, "-m", "airflow", *arguments], environment)


def serving_command(settings: Settings | None = None) -> list[str]:
    """`bentoml serve` for the champion service, as native and compose both run it."""
    settings = settings or get_settings()
    return [
        str(Path(sys.executable).parent / "bentoml"), "serve",
        "serving.service:CreditScoreService",
        "--host", settings.serving_host, "--port", str(settings.serving_port),
        "--working-dir", str(PROJECT_ROOT),
    ]  # fmt: skip


def serving_environment(settings: Settings | None = None) -> dict[str, str]:
    """The service's environment with a BentoML home of its own (per host and port): every
    `bentoml serve` keeps its Prometheus files under it, and wipes them when it starts."""
    settings = settings or get_settings()
    home = settings.mlops_data_dir / "serving" / f"{socket.gethostname()}-{settings.serving_port}"
    return {**os.environ, "BENTOML_HOME": str(home.resolve())}


def run_serving(settings: Settings | None = None) -> None:
    """Replace this process with the BentoML prediction service."""
    command = serving_command(settings)
    os.execve(command[0], command, serving_environment(settings))


PLACEHOLDER = "change-me"


def refuse_placeholders(environment: dict[str, str]) -> None:
    """Raise when any variable still holds a `change-me` value copied from .env.example."""
    unchanged = sorted(name for name, value in environment.items() if PLACEHOLDER in value)
    if unchanged:
        raise InvalidInput(
            f"edit the {PLACEHOLDER} values in .env before starting: {', '.join(unchanged)}"
        )
