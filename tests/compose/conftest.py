"""The compose tests' stacks: one per module, taken down with its volumes afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlops_platform.mariadb_server import free_port
from tests.compose.project import ComposeProject, start_project, take_down


def taken_down_afterwards(project: ComposeProject) -> Iterator[ComposeProject]:
    try:
        yield project
    finally:
        take_down(project)


@pytest.fixture(scope="module")
def compose_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    """The stack as `docker compose up` starts it."""
    yield from taken_down_afterwards(start_project(tmp_path_factory.mktemp("compose")))


@pytest.fixture(scope="module")
def scale_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    """The stack with the scale-out overlay; one task slot per Celery worker, so two
    parallel tasks must land on two workers."""
    project = start_project(
        tmp_path_factory.mktemp("compose-scale"),
        ("docker-compose.scale.yml",),
        {"AIRFLOW_CELERY_WORKER_CONCURRENCY": "1"},
    )
    yield from taken_down_afterwards(project)


@pytest.fixture(scope="module")
def monitoring_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    """The `monitoring` profile on ports of its own, started by the caller with only what
    Prometheus scrapes (no Airflow or MLflow)."""
    project = start_project(
        tmp_path_factory.mktemp("compose-monitoring"),
        extra={"PROMETHEUS_PORT": str(free_port()), "ALERTMANAGER_PORT": str(free_port())},
    )
    project.environment["COMPOSE_PROFILES"] = "monitoring"  # `down` included
    yield from taken_down_afterwards(project)
