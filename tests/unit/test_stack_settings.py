"""Commands run beside a native stack use the settings the stack was started with."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_platform import stack
from mlops_platform.config import Settings, get_settings, stack_state_dir

STARTED_WITH = {
    "FEATURE_STORE_URL": "mysql+pymysql://app:it's\\secret@127.0.0.1:3307/mlops_demo_1",
    "SERVING_PORT": "3101",
    "AIRFLOW_HOME": "/tmp/a dir/airflow",
}


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no project .env
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def start_stack_with(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """Record the settings as `stack up` does, with this process standing in for the stack."""
    with monkeypatch.context() as started:
        for name, value in STARTED_WITH.items():
            started.setenv(name, value)
        stack.record_settings(Settings())
    (stack_state_dir(data_dir) / "stack.pid").write_text(str(os.getpid()))
    get_settings.cache_clear()


def test_a_running_stack_s_settings_apply_without_environment(monkeypatch, data_dir) -> None:
    stack_state_dir(data_dir).mkdir()
    start_stack_with(monkeypatch, data_dir)

    settings = get_settings()
    assert settings.feature_store_url == STARTED_WITH["FEATURE_STORE_URL"]
    assert (settings.serving_port, str(settings.airflow_home)) == (3101, "/tmp/a dir/airflow")
    assert stack.state_dir(settings) == stack_state_dir(data_dir)
    assert oct(stack.stack_settings_file(data_dir).stat().st_mode & 0o777) == "0o600"


def test_the_environment_still_wins_over_the_stack(monkeypatch, data_dir) -> None:
    stack_state_dir(data_dir).mkdir()
    start_stack_with(monkeypatch, data_dir)
    monkeypatch.setenv("SERVING_PORT", "3999")
    get_settings.cache_clear()
    assert get_settings().serving_port == 3999


def test_settings_of_a_stack_that_is_not_running_are_ignored(monkeypatch, data_dir) -> None:
    stack_state_dir(data_dir).mkdir()
    start_stack_with(monkeypatch, data_dir)
    (stack_state_dir(data_dir) / "stack.pid").write_text("999999999")
    get_settings.cache_clear()
    assert get_settings().serving_port == Settings.model_fields["serving_port"].default
