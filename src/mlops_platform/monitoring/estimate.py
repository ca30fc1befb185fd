"""Accuracy before the labels arrive: a confidence-based estimate, as in CBPE.

With calibrated probabilities, a prediction of class j is of actual class k with
probability p_k, so a window's expected confusion matrix is E[k, j] = Σ p_k over its rows
predicted j: expected accuracy is the mean top probability, expected macro-F1 follows from
E. MariaDB sums the calibrated probabilities per predicted class: one aggregate query per
window. Calibration is temperature scaling fitted on the validation split at training; it
keeps every row's predicted class. The estimate assumes P(y|x) holds: concept drift is
invisible to it, only labels (`performance`) show it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.logstore import PROBABILITY_COLUMNS, SERVED_ROWS
from mlops_platform.monitoring import reports, runs
from mlops_platform.monitoring.performance import (
    BASELINE_METRIC,
    CLASS_INDEX,
    MATCHING_RULE,
    PerformanceDecision,
    classification_summary,
    judge_macro_f1,
)
from mlops_platform.monitoring.reference import Reference, load_reference
from mlops_platform.monitoring.windows import Window, resolve_window, utc_naive
from mlops_platform.schema import CREDIT_SCORES

METHOD = "confidence-based (CBPE): expected confusion matrix from calibrated probabilities"
# Temperatures tried when fitting, log-spaced: 1 % steps from 1/20 to 20.
TEMPERATURES = np.exp(np.arange(np.log(0.05), np.log(20.0), 0.01))
UNCALIBRATED = {"method": "temperature", "temperature": 1.0, "fitted_on": "none"}
# Per predicted class, the sums of p_k^(1/T) / Σ_j p_j^(1/T) over the window's rows.
_SCALED = ", ".join(f"POW({c}, :inverse_t) AS {c}" for c in PROBABILITY_COLUMNS)
_SUMS = ", ".join(f"SUM({c} / ({' + '.join(PROBABILITY_COLUMNS)}))" for c in PROBABILITY_COLUMNS)
EXPECTED_CONFUSION_SQL = text(
    f"SELECT predicted_class, {_SUMS} FROM (SELECT predicted_class, {_SCALED}"  # noqa: S608 - constants
    " FROM prediction_log WHERE created_at >= :window_start AND created_at < :window_end"
    f" AND model_name = :model_name AND model_version = :model_version AND {SERVED_ROWS})"
    " AS scaled"
    " GROUP BY predicted_class"
)


def calibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities: p_k^(1/T), normalised per row (softmax of logits/T)."""
    scaled = np.power(np.clip(probabilities, 1e-300, None), 1.0 / temperature)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_calibration(actual: Sequence[str], probabilities: np.ndarray) -> dict[str, Any]:
    """The temperature that minimises log loss on held-out rows, and its effect there."""
    index = np.array([CLASS_INDEX[str(label)] for label in actual])
    logs = np.log(np.clip(probabilities, 1e-300, None))
    # Log loss of every candidate temperature at once: logsumexp of log p / T per row.
    scaled = logs[None, :, :] / TEMPERATURES[:, None, None]
    top = scaled.max(axis=2, keepdims=True)
    normaliser = (top + np.log(np.exp(scaled - top).sum(axis=2, keepdims=True)))[:, :, 0]
    losses = (normaliser - scaled[:, np.arange(len(index)), index]).mean(axis=1)
    temperature = float(TEMPERATURES[int(losses.argmin())])
    hits = probabilities.argmax(axis=1) == index
    return {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": "validation",
        "rows": len(index),
        "accuracy": float(hits.mean()),
        "expected_accuracy_raw": float(probabilities.max(axis=1).mean()),
        "expected_accuracy_calibrated": float(
            calibrated(probabilities, temperature).max(axis=1).mean()
        ),
    }


def expected_confusion(probabilities: np.ndarray) -> np.ndarray:
    """E[actual k, predicted j]: calibrated probabilities summed per predicted class."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(CREDIT_SCORES), len(CREDIT_SCORES)))
    for j in range(len(CREDIT_SCORES)):
        confusion[:, j] = probabilities[predicted == j].sum(axis=0)
    return confusion


def _expected_confusion_in_sql(
    connection: Connection, model_name: str, model_version: str, window: Window, temperature: float
) -> np.ndarray:
    rows = connection.execute(
        EXPECTED_CONFUSION_SQL,
        {"inverse_t": 1.0 / temperature, "window_start": window.start,
         "window_end": window.end, "model_name": model_name, "model_version": model_version},
    ).all()  # fmt: skip
    confusion = np.zeros((len(CREDIT_SCORES), len(CREDIT_SCORES)))
    for predicted, *expected in rows:
        confusion[:, CLASS_INDEX[predicted]] = [float(value) for value in expected]
    return confusion


def _realised_confusion(
    connection: Connection,
    model_name: str,
    model_version: str,
    window: Window,
    labels_until: datetime,
) -> np.ndarray:
    """Actual × predicted counts of the window's predictions whose labels arrived in time."""
    rows = connection.execute(
        text(
            "SELECT l.credit_score, p.predicted_class, COUNT(*)"  # noqa: S608 - constants
            " FROM prediction_log p STRAIGHT_JOIN credit_labels l"
            " ON l.customer_id = p.customer_id AND l.month = p.feature_month"
            " WHERE p.created_at >= :window_start AND p.created_at < :window_end"
            " AND p.model_name = :model_name AND p.model_version = :model_version"
            " AND p.created_at >= l.month AND l.observed_at < :labels_until"
            f" AND {SERVED_ROWS}"
            " GROUP BY l.credit_score, p.predicted_class"
        ),
        {"window_start": window.start, "window_end": window.end, "model_name": model_name,
         "model_version": model_version, "labels_until": labels_until},
    ).all()  # fmt: skip
    confusion = np.zeros((len(CREDIT_SCORES), len(CREDIT_SCORES)), dtype=np.int64)
    for actual, predicted, count in rows:
        confusion[CLASS_INDEX[actual], CLASS_INDEX[predicted]] = count
    return confusion


def realised_stats(confusion: np.ndarray, labels_until: datetime) -> dict[str, Any]:
    """The realised side of an estimate report: labels seen before `labels_until`."""
    labelled = int(confusion.sum())
    return {
        "labels_until": labels_until.isoformat(),
        "labelled": labelled,
        "matching_rule": MATCHING_RULE,
        "metrics": classification_summary(confusion) if labelled else None,
        "counts": confusion.tolist(),
    }


@dataclass(frozen=True)
class Estimate:
    """The estimated accuracy of one model version's predictions in a window, and the realised."""

    report_id: int
    model_name: str
    model_version: str
    window: Window
    rows: int
    temperature: float
    metrics: Mapping[str, float]
    baseline: float | None
    decision: PerformanceDecision
    note: str
    labels_until: datetime
    labelled: int
    realised: Mapping[str, float] | None

    @property
    def error(self) -> dict[str, float]:
        """Estimated minus realised, per metric, once labels landed."""
        if self.realised is None:
            return {}
        return {name: self.metrics[name] - self.realised[name] for name in self.realised}


def estimate_reference(
    reference: Reference,
    window: Window,
    url: str | None = None,
    *,
    labels_until: datetime | str | None = None,
) -> Estimate:
    """Estimate the window's accuracy, with the realised one from labels seen before
    `labels_until` (default: the window's end); store both as one 'estimate' report."""
    calibration = reference.profile.get("calibration", UNCALIBRATED)
    temperature = float(calibration["temperature"])
    until = utc_naive(labels_until) if labels_until is not None else window.end
    name, version = reference.model_name, reference.model_version
    baseline = reference.test_metrics.get(BASELINE_METRIC)
    with db.transaction(url) as connection:
        expected = _expected_confusion_in_sql(connection, name, version, window, temperature)
        actual = _realised_confusion(connection, name, version, window, until)
        rows = round(float(expected.sum()))
        metrics = classification_summary(expected)
        labelled = int(actual.sum())
        needed = get_settings().estimate_min_predictions
        decision, note = judge_macro_f1(
            "estimated", rows, needed, "predictions", metrics[BASELINE_METRIC], baseline
        )
        stats = {
            "method": METHOD,
            "calibration": calibration,
            "metrics": metrics,
            "expected_confusion": {"rows_actual_columns_predicted": list(CREDIT_SCORES),
                                   "counts": expected.tolist()},
            "baseline_test_macro_f1": baseline,
            "realised": realised_stats(actual, until),
            "note": note,
        }  # fmt: skip
        report_id = reports.store_report(
            connection, "estimate", name, version, window, rows, stats, None, decision
        )
    return Estimate(
        report_id, name, version, window, rows, temperature, metrics, baseline, decision,
        note, until, labelled, stats["realised"]["metrics"],
    )  # fmt: skip


def estimate(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    model_version: str | None = None,
    url: str | None = None,
    *,
    now: datetime | str | None = None,
    labels_until: datetime | str | None = None,
) -> Estimate:
    """Estimate the champion's (or `model_version`'s) accuracy in the window; store the report."""
    window = resolve_window(start, end, now)  # bad input fails before MLflow is asked
    return estimate_reference(load_reference(model_version), window, url, labels_until=labels_until)


def settle(window: Window, labels_until: datetime, url: str | None = None) -> list[int]:
    """Record the realised accuracy, from labels seen before `labels_until`, on the
    estimate reports of exactly this window; their ids."""
    from mlops_platform import registry

    settled = []
    with db.transaction(url) as connection:
        for stored in reports.window_reports(connection, "estimate", registry.model_name(), window):
            actual = _realised_confusion(
                connection, stored.model_name, stored.model_version, window, labels_until
            )
            stats = {**stored.stats, "realised": realised_stats(actual, labels_until)}
            settled.append(
                reports.store_report(
                    connection, "estimate", stored.model_name, stored.model_version, window,
                    stored.row_count, stats, None, stored.decision,
                )
            )  # fmt: skip
    return settled


def check(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    model_version: str | None = None,
    url: str | None = None,
    *,
    labels_until: datetime | str | None = None,
) -> tuple[Estimate, list[int]]:
    """Estimate the window (as `estimate`) and settle the one ESTIMATE_SETTLE_DAYS earlier
    with the labels seen by the window's end; (the estimate, the settled report ids)."""
    current = estimate(start, end, model_version, url, labels_until=labels_until)
    # The drift check of this window may have logged before the estimate existed.
    runs.log_reports([current.report_id], url)
    back = timedelta(days=get_settings().estimate_settle_days)
    earlier = Window(current.window.start - back, current.window.end - back)
    return current, settle(earlier, current.window.end, url)
