"""Live-accuracy metrics from confusion counts, and the degraded rule."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from mlops_platform.config import get_settings
from mlops_platform.monitoring import performance
from mlops_platform.schema import CREDIT_SCORES


def classification_summary_of(actual, predicted) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class recall computed by sklearn from the rows."""
    labels = list(CREDIT_SCORES)
    recalls = recall_score(actual, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": accuracy_score(actual, predicted),
        "macro_f1": f1_score(actual, predicted, labels=labels, average="macro", zero_division=0),
        **{f"recall_{s}": r for s, r in zip(CREDIT_SCORES, recalls, strict=True)},
    }


def test_metrics_from_counts_match_sklearn_on_the_rows() -> None:
    rng = np.random.default_rng(0)
    actual = rng.choice(CREDIT_SCORES, 500, p=[0.2, 0.5, 0.3])
    predicted = np.where(rng.random(500) < 0.7, actual, rng.choice(CREDIT_SCORES, 500))
    confusion = confusion_matrix(actual, predicted, labels=list(CREDIT_SCORES))
    summary = performance.classification_summary(confusion)
    assert summary == pytest.approx(classification_summary_of(actual, predicted))


def test_a_class_neither_present_nor_predicted_counts_as_zero_f1() -> None:
    confusion = np.array([[0, 0, 0], [0, 8, 2], [0, 1, 9]])
    summary = performance.classification_summary(confusion)
    assert summary["recall_Good"] == 0.0
    assert summary["macro_f1"] == pytest.approx((0 + 16 / 19 + 18 / 21) / 3)
    assert performance.classification_summary(np.zeros((3, 3), dtype=int))["accuracy"] == 0.0


def test_degraded_needs_enough_labels_and_a_drop_beyond_the_tolerance() -> None:
    settings = get_settings()
    enough = settings.performance_min_labelled
    tolerance = settings.performance_tolerance

    def judge(labelled: int, live_f1: float, baseline: float | None) -> tuple[str, str]:
        return performance.judge_macro_f1("live", labelled, enough, "labelled", live_f1, baseline)

    assert judge(enough - 1, 0.1, 0.9)[0] == "insufficient-data"
    assert judge(enough, 0.1, None)[0] == "insufficient-data"
    assert judge(enough, 0.9 - tolerance + 0.001, 0.9)[0] == "ok"
    decision, note = judge(enough, 0.9 - tolerance - 0.001, 0.9)
    assert decision == "degraded" and "live macro-F1" in note and "below the test" in note
