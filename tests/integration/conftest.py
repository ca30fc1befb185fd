"""Fixtures the monitoring modules share: a small trained model and a private data dir."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlops_platform.config import get_settings
from mlops_platform.model import CreditScoreModel
from mlops_platform.monitoring.reference import Reference
from tests.integration.test_drift import train_reference


@pytest.fixture(scope="module")
def trained() -> tuple[CreditScoreModel, Reference]:
    """A small model on generated data with its reference profile, once per module."""
    return train_reference()


@pytest.fixture
def private_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Reports go to a temporary MLOPS_DATA_DIR, not the checkout's."""
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
