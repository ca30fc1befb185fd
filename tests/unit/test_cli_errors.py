"""The CLI prints a `PlatformError` as one line, and lets every other error through."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlops_platform.cli import main
from mlops_platform.config import get_settings
from mlops_platform.mariadb_server import free_port


@pytest.fixture
def dead_store(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FEATURE_STORE_URL", f"mysql+pymysql://u:p@127.0.0.1:{free_port()}/mlops")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_an_unreachable_store_says_what_to_check(dead_store) -> None:
    result = CliRunner().invoke(main, ["monitor", "record-trigger", "1", "run_1"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "feature store is not reachable or not ready" in result.output
    assert "FEATURE_STORE_URL" in result.output and "Traceback" not in result.output


def test_bad_input_names_the_rule_before_anything_is_contacted(dead_store) -> None:
    result = CliRunner().invoke(
        main, ["drift", "check", "--start", "2026-03-02", "--end", "2026-03-01"]
    )
    assert result.exit_code == 1
    assert "Error: the window must start before it ends" in result.output


def test_a_bug_is_not_dressed_up_as_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_platform.monitoring import reports

    def broken(report_id: int, run_id: str) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(reports, "record_trigger", broken)
    result = CliRunner().invoke(main, ["monitor", "record-trigger", "1", "run_1"])
    assert isinstance(result.exception, KeyError)
