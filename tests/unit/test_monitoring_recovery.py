"""Recovery: after concept drift, retraining on post-drift months restores accuracy."""

from __future__ import annotations

from datetime import date

import pandas as pd
from catboost import CatBoostClassifier

from mlops_platform.data.generator import GeneratorConfig, generate_months
from mlops_platform.model import (
    CATEGORICAL_POSITIONS,
    CreditScoreModel,
    classification_metrics,
    model_frame,
)
from mlops_platform.schema import CATEGORICAL_FEATURES, TARGET
from mlops_platform.training import split_by_customer

# The rule changes from 2025-10 and is fully changed from 2025-12 (a three-month ramp).
CONFIG = GeneratorConfig(
    customers=3_000, months=17, start=date(2025, 1, 1), seed=42,
    drift="concept", drift_from=date(2025, 10, 1),
)  # fmt: skip
PRE_DRIFT = slice(3, 9)  # 2025-04 … 2025-09
POST_DRIFT = slice(11, 17)  # 2025-12 … 2026-05


def fit(train: pd.DataFrame) -> CreditScoreModel:
    classifier = CatBoostClassifier(
        iterations=200, depth=6, learning_rate=0.1, cat_features=list(CATEGORICAL_POSITIONS),
        thread_count=2, random_seed=0, allow_writing_files=False, verbose=False,
    )  # fmt: skip
    classifier.fit(model_frame(train), train[TARGET])
    known = {c: train[c].dropna().astype(str).unique().tolist() for c in CATEGORICAL_FEATURES}
    return CreditScoreModel.from_classifier(classifier, known)


def accuracy(model: CreditScoreModel, frame: pd.DataFrame) -> float:
    return classification_metrics(frame[TARGET], model.predict_proba(frame))["accuracy"]


def test_retraining_on_post_drift_months_restores_test_accuracy() -> None:
    months = [
        m.features.merge(m.labels, on=["customer_id", "month"]) for m in generate_months(CONFIG)
    ]
    before = split_by_customer(pd.concat(months[PRE_DRIFT], ignore_index=True))
    after = split_by_customer(pd.concat(months[POST_DRIFT], ignore_index=True))

    old_model = fit(before["train"])
    pre_drift = accuracy(old_model, before["test"])
    drifted = accuracy(old_model, after["test"])
    retrained = accuracy(fit(after["train"]), after["test"])
    print(
        f"test accuracy: pre-drift {pre_drift:.3f}, old model after the drift {drifted:.3f},"
        f" retrained on post-drift months {retrained:.3f}"
    )
    assert drifted < pre_drift - 0.15  # the drift really hurts the old model
    assert retrained >= pre_drift - 0.02
