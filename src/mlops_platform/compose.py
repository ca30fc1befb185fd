"""The compose stack, driven from the host: `docker compose` on this project's file.

`docker compose` itself reads COMPOSE_PROJECT_NAME, COMPOSE_FILE, COMPOSE_ENV_FILES and
`.env`, so a project name, an overlay file or a private env file chosen by the caller
(the compose tests choose all three) reach every command here unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

from mlops_platform.config import PROJECT_ROOT
from mlops_platform.errors import PlatformError

# A slow host's first start (image layers cold, every service importing at once) stays
# well inside this; it bounds a start that will never become healthy.
UP_TIMEOUT_S = 600
# docker-compose.scale.yml's load balancer in front of the serving replicas.
BALANCER = "balancer"


class ComposeError(PlatformError):
    """A `docker compose` command failed; the message says which and how."""


def command(*arguments: str) -> list[str]:
    return ["docker", "compose", "--project-directory", str(PROJECT_ROOT), *arguments]


def compose(*arguments: str, environment: dict[str, str] | None = None, **kwargs) -> str:
    """Run `docker compose ARGUMENTS`; its stdout, or ComposeError with its stderr."""
    if shutil.which("docker") is None:
        raise ComposeError("docker is not installed; see the README's Docker section")
    result = subprocess.run(
        command(*arguments), env=environment, capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        raise ComposeError(f"docker compose {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def build_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment, the commit for the image's lineage label, and `extra`."""
    environment = {**os.environ, **(extra or {})}
    if not environment.get("GIT_COMMIT"):
        from mlops_platform.training import git_commit

        environment["GIT_COMMIT"] = git_commit() or "unknown"
    return environment


def up(environment: dict[str, str], progress: Callable[[str], None] = print) -> float:
    """Build what changed, start every service and wait until all are healthy; seconds taken."""
    started = time.monotonic()
    compose("build", environment=environment)
    progress(f"images built in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    compose(
        "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S),
        environment=environment,
    )  # fmt: skip
    healthy_after = time.monotonic() - started
    progress(f"every service healthy {healthy_after:.0f} s after `docker compose up`")
    return healthy_after


def published_url(
    service: str, port: int, environment: dict[str, str] | None = None, index: int = 1
) -> str:
    """`http://host:port` where the host reaches container PORT of SERVICE's replica INDEX."""
    address = compose(
        "port", "--index", str(index), service, str(port), environment=environment
    ).strip()
    host, _, host_port = address.rpartition(":")
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{host_port}"


def prediction_entry(environment: dict[str, str] | None = None) -> str:
    """The service that publishes the prediction endpoint: the balancer when one runs."""
    services = compose("config", "--services", environment=environment).split()
    return BALANCER if BALANCER in services else "serving"


def run_demo(
    size_name: str, pace: dict[str, str], progress: Callable[[str], None] = print
) -> list[tuple[str, str]]:
    """Start the stack at the demo's pace, tell the story from a container inside it;
    returns where the user finds the UIs."""
    environment = build_environment(pace)
    progress("docker compose: building the image and starting the stack")
    up(environment, progress)
    # The CLI container reaches every service by its compose name; its output is the story.
    story = subprocess.run(
        command("run", "--rm", "--no-deps", "-T", "cli",
                "mlops", "demo", "--size", size_name, "--stack", "running"),
        env=environment,
    )  # fmt: skip
    if story.returncode != 0:
        raise ComposeError(
            f"the demo inside the stack failed (exit {story.returncode});"
            " `docker compose logs` shows the services' side"
        )
    return [
        ("Airflow UI", published_url("airflow-apiserver", 8080, environment)
         + "  (admin; AIRFLOW_ADMIN_PASSWORD)"),
        ("MLflow UI", published_url("mlflow", 5000, environment)),
        ("Swagger UI", published_url(prediction_entry(environment), 3000, environment) + "/"),
        ("Stop the stack", "docker compose down  (-v also removes its data)"),
    ]  # fmt: skip
