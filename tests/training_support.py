"""A store with generated customers and settings for quick training runs of one module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest

from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, load_into_store

# Enough to train a real model in seconds; the tuning itself is tested elsewhere.
QUICK_TRAINING = {
    "TRAIN_TRIALS": "2",
    "TRAIN_MAX_ITERATIONS": "120",
    "TRAIN_EARLY_STOPPING_ROUNDS": "20",
}


@contextmanager
def quick_training(store_url: str, mlflow_url: str, prefix: str) -> Iterator[pytest.MonkeyPatch]:
    """Six months of 1,200 customers in the store; an experiment and model name of its own."""
    load_into_store(GeneratorConfig(customers=1_200, months=6, start=date(2025, 1, 1)), store_url)
    suffix = uuid.uuid4().hex[:8]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            **QUICK_TRAINING,
            "FEATURE_STORE_URL": store_url,
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MLFLOW_EXPERIMENT": f"{prefix}_{suffix}",
            "MODEL_NAME": f"credit_score_{suffix}",
        }.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        yield patch
    get_settings.cache_clear()
