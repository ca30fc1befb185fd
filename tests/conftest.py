"""Shared fixtures: real MariaDB and MLflow servers per test session, fresh databases per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.mariadb_server import (
    HOW_TO_GET_ONE,
    MariaDBNotFound,
    free_port,
    start_local_mariadb,
)
from tests.servers import start_mlflow_server, stop_process_group

TESTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so `-m integration`, `-m e2e` and `-m compose` select them."""
    for item in items:
        relative = Path(item.fspath).relative_to(TESTS_DIR)
        if relative.parts[0] in ("integration", "e2e", "compose"):
            item.add_marker(relative.parts[0])


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a MariaDB server (no database) that this session may create databases on."""
    external = os.environ.get("MLOPS_TEST_DATABASE_URL")
    if external:
        yield external
        return
    try:
        server = start_local_mariadb(tmp_path_factory.mktemp("mariadb") / "data")
    except MariaDBNotFound as error:
        pytest.fail(str(error), pytrace=False)
    except Exception as error:  # the server binary exists but would not start
        pytest.fail(f"could not start a throwaway mariadbd: {error}. {HOW_TO_GET_ONE}")
    try:
        yield server.url("mysql")
    finally:
        server.stop()


def create_store(server_url: str) -> str:
    """A new uniquely named database with all migrations applied."""
    url = make_url(server_url).set(database=f"mlops_t_{uuid.uuid4().hex[:10]}")
    url_text = url.render_as_string(hide_password=False)
    db.upgrade(url_text)
    return url_text


@pytest.fixture
def store_url(mariadb_server: str) -> Iterator[str]:
    """A fresh, migrated feature store for one test, dropped afterwards."""
    url = create_store(mariadb_server)
    yield url
    db.drop_database(url)


@pytest.fixture(scope="module")
def module_store_url(mariadb_server: str) -> Iterator[str]:
    """A migrated feature store shared by one test module (for expensive data)."""
    url = create_store(mariadb_server)
    yield url
    db.drop_database(url)


@pytest.fixture
def use_store(monkeypatch: pytest.MonkeyPatch, store_url: str) -> Iterator[str]:
    """Point FEATURE_STORE_URL (and so the CLI) at the fresh store."""
    monkeypatch.setenv("FEATURE_STORE_URL", store_url)
    get_settings.cache_clear()
    yield store_url
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def mlflow_server(mariadb_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tracking URI of a real MLflow server backed by the session's MariaDB."""
    backend = (
        make_url(mariadb_server)
        .set(database=f"mlflow_t_{uuid.uuid4().hex[:10]}")
        .render_as_string(hide_password=False)
    )
    port = free_port()
    process = start_mlflow_server(backend, tmp_path_factory.mktemp("mlflow"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)
        db.drop_database(backend)


@pytest.fixture
def use_mlflow(monkeypatch: pytest.MonkeyPatch, mlflow_server: str) -> Iterator[str]:
    """Point the client at the session's server, with an experiment and model name of its own."""
    from mlops_platform import tracking

    suffix = uuid.uuid4().hex[:10]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT", f"test_{suffix}")
    monkeypatch.setenv("MODEL_NAME", f"credit_score_{suffix}")
    get_settings.cache_clear()
    tracking.configure()
    yield mlflow_server
    get_settings.cache_clear()
