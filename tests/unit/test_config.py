import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_platform.config import PROJECT_ROOT, Settings, get_settings

COMPOSE_ONLY_MARKER = "# ---- docker compose only"


def documented(section: str) -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", section, flags=re.M))


def test_env_example_documents_every_setting_and_nothing_else() -> None:
    platform, _ = (PROJECT_ROOT / ".env.example").read_text().split(COMPOSE_ONLY_MARKER)
    assert documented(platform) == {name.upper() for name in Settings.model_fields}


def test_a_placeholder_value_is_refused_without_echoing_secrets(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_ADMIN_PASSWORD", "change-me-please")
    monkeypatch.setenv("FEATURE_STORE_URL", "mysql+pymysql://app:hunter2@db/mlops")
    with pytest.raises(ValueError, match="AIRFLOW_ADMIN_PASSWORD") as error:
        Settings()
    assert "hunter2" not in str(error.value)


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []


def test_settings_are_cached_and_read_the_environment(monkeypatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("MLOPS_LOOKBACK_MONTHS", "7")
    try:
        assert get_settings() is get_settings()
        assert get_settings().mlops_lookback_months == 7
    finally:
        get_settings.cache_clear()


def test_importing_the_package_has_no_side_effects(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    code = (
        "import mlops_platform.cli, mlops_platform.config, mlops_platform.db, "
        "mlops_platform.data.generator, mlops_platform.data.loader"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={
            "MLOPS_DATA_DIR": str(data_dir),
            "FEATURE_STORE_URL": "mysql+pymysql://x@10.255.255.1/none",
        },
        cwd=tmp_path,
        timeout=60,
    )
    assert not data_dir.exists()


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []
