"""The label-free accuracy estimate: expected confusion, calibration, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_platform.monitoring import estimate
from mlops_platform.monitoring.performance import CLASS_INDEX, classification_summary
from mlops_platform.schema import CREDIT_SCORES

ROWS = 20_000


def softmax(logits: np.ndarray) -> np.ndarray:
    scaled = np.exp(logits - logits.max(axis=1, keepdims=True))
    return scaled / scaled.sum(axis=1, keepdims=True)


def sample_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from each row's probabilities: what 'calibrated' means."""
    draws = (probabilities.cumsum(axis=1) < rng.random((len(probabilities), 1))).sum(axis=1)
    return np.asarray(CREDIT_SCORES)[draws]


def realised_summary(actual: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    confusion = np.zeros((3, 3))
    index = [CLASS_INDEX[label] for label in actual]
    np.add.at(confusion, (index, probabilities.argmax(axis=1)), 1)
    return classification_summary(confusion)


@pytest.fixture
def logits() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(size=(ROWS, 3)) * 1.5 + np.array([0.0, 0.6, 0.2])


def test_expected_accuracy_is_the_mean_top_probability(logits: np.ndarray) -> None:
    probabilities = softmax(logits)
    expected = estimate.expected_confusion(probabilities)
    assert expected.sum() == pytest.approx(ROWS)
    # Columns are the predictions: each column sums to how often that class is predicted.
    assert expected.sum(axis=0) == pytest.approx(np.bincount(probabilities.argmax(1), minlength=3))
    summary = classification_summary(expected)
    assert summary["accuracy"] == pytest.approx(probabilities.max(axis=1).mean())


def test_on_calibrated_probabilities_the_estimate_matches_sampled_labels(logits) -> None:
    probabilities = softmax(logits)
    estimated = classification_summary(estimate.expected_confusion(probabilities))
    rng = np.random.default_rng(11)
    realised = [
        realised_summary(sample_labels(probabilities, rng), probabilities) for _ in range(5)
    ]
    for metric in ("accuracy", "macro_f1"):
        mean = np.mean([r[metric] for r in realised])
        assert estimated[metric] == pytest.approx(mean, abs=0.005), metric


def test_temperature_scaling_recovers_overconfidence_and_keeps_predictions(logits) -> None:
    truth = softmax(logits)
    overconfident = softmax(logits * 2.0)  # what a model that is too sure of itself outputs
    actual = sample_labels(truth, np.random.default_rng(3))
    calibration = estimate.fit_calibration(actual, overconfident)

    assert calibration["temperature"] == pytest.approx(2.0, rel=0.05)
    rescaled = estimate.calibrated(overconfident, calibration["temperature"])
    assert (rescaled.argmax(axis=1) == overconfident.argmax(axis=1)).all()
    assert rescaled.sum(axis=1) == pytest.approx(1.0)
    realised = realised_summary(actual, overconfident)["accuracy"]
    raw = classification_summary(estimate.expected_confusion(overconfident))["accuracy"]
    fitted = classification_summary(estimate.expected_confusion(rescaled))["accuracy"]
    assert raw - realised > 0.05  # uncalibrated, the estimate is far too optimistic
    assert fitted == pytest.approx(realised, abs=0.01)
    assert calibration["expected_accuracy_calibrated"] == pytest.approx(fitted)
    assert calibration["accuracy"] == pytest.approx(realised)


def test_a_calibrated_model_keeps_temperature_one(logits) -> None:
    truth = softmax(logits)
    actual = sample_labels(truth, np.random.default_rng(5))
    assert estimate.fit_calibration(actual, truth)["temperature"] == pytest.approx(1.0, rel=0.05)
    assert estimate.calibrated(truth, 1.0) == pytest.approx(truth)
