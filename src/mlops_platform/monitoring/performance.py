"""Live accuracy from late labels, per model version and window.

A label is matched to logged predictions by (customer_id, feature_month = month); a
prediction logged without either can never be matched, and reports count those. A window
takes the labels that *arrived* in it (`observed_at`) with the predictions of those
customer-months made before the window ended (each logged prediction counts; features of
a month exist from its first day, so earlier rows cannot be its predictions): each run
judges the newly arrived ground truth, and re-running a window sees the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.logstore import SERVED_ROWS
from mlops_platform.monitoring import reports, runs
from mlops_platform.monitoring.reference import mlflow_client
from mlops_platform.monitoring.windows import Window, resolve_window
from mlops_platform.schema import CREDIT_SCORES

MATCHING_RULE = (
    "prediction_log (customer_id, feature_month) = credit_labels (customer_id, month),"
    " predicted on or after the first day of that month"
)
BASELINE_METRIC = "macro_f1"
CLASS_INDEX = {score: i for i, score in enumerate(CREDIT_SCORES)}
PerformanceDecision = Literal["ok", "degraded", "insufficient-data"]


def classification_summary(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class recall from a confusion matrix (actual × predicted).

    The same definitions as training's test metrics: F1 of a class that is neither
    present nor predicted counts as 0.
    """
    hits = np.diag(confusion).astype(float)
    actual, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(actual > 0, hits / actual, 0.0)
        f1 = np.where(actual + predicted > 0, 2 * hits / (actual + predicted), 0.0)
    total = confusion.sum()
    return {
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        **{f"recall_{score}": float(r) for score, r in zip(CREDIT_SCORES, recall, strict=True)},
    }


@dataclass(frozen=True)
class VersionPerformance:
    """Live accuracy of one model version in the window, and its verdict."""

    model_version: str
    labelled: int
    unmatchable: int
    confusion: tuple[tuple[int, ...], ...]
    metrics: Mapping[str, float]
    daily: Mapping[str, Mapping[str, float]]
    baseline: float | None
    decision: PerformanceDecision
    note: str
    report_id: int

    @property
    def drop(self) -> float | None:
        """How far live macro-F1 is below the version's test macro-F1."""
        if self.baseline is None or not self.labelled:
            return None
        return self.baseline - self.metrics[BASELINE_METRIC]


@dataclass(frozen=True)
class PerformanceReport:
    """Live accuracy per model version for one window (kind 'performance' reports)."""

    model_name: str
    window: Window
    versions: tuple[VersionPerformance, ...]

    @property
    def report_ids(self) -> list[int]:
        """The stored report of each version, for the decision to read."""
        return [version.report_id for version in self.versions]

    def version(self, model_version: str) -> VersionPerformance | None:
        """The result for one model version, if the window had it."""
        return next((v for v in self.versions if v.model_version == model_version), None)


def _confusion_rows(
    connection: Connection, model_name: str, model_version: str | None, window: Window
) -> list[Any]:
    # The log has no index on (customer_id, feature_month): it is scanned by its primary
    # key from the oldest labelled month on, each row's label found by credit_labels' key.
    earliest_month = connection.execute(
        text(
            "SELECT MIN(month) FROM credit_labels"
            " WHERE observed_at >= :window_start AND observed_at < :window_end"
        ),
        {"window_start": window.start, "window_end": window.end},
    ).scalar_one()
    if earliest_month is None:
        return []
    return connection.execute(
        text(
            "SELECT p.model_version, DATE(l.observed_at) AS day, p.predicted_class,"  # noqa: S608
            " l.credit_score, COUNT(*) AS n"
            " FROM prediction_log p STRAIGHT_JOIN credit_labels l"
            " ON l.customer_id = p.customer_id AND l.month = p.feature_month"
            " WHERE p.created_at >= :earliest_month AND p.created_at < :window_end"
            " AND p.created_at >= l.month"
            " AND l.observed_at >= :window_start AND l.observed_at < :window_end"
            " AND p.model_name = :model_name"
            " AND (:model_version IS NULL OR p.model_version = :model_version)"
            f" AND {SERVED_ROWS}"
            " GROUP BY p.model_version, day, p.predicted_class, l.credit_score"
        ),
        {"model_name": model_name, "model_version": model_version,
         "earliest_month": earliest_month, "window_start": window.start,
         "window_end": window.end},
    ).all()  # fmt: skip


def _unmatchable(
    connection: Connection, model_name: str, model_version: str | None, window: Window
) -> dict[str, int]:
    rows = connection.execute(
        text(
            "SELECT model_version, COUNT(*) FROM prediction_log"  # noqa: S608 - constants
            " WHERE model_name = :model_name"
            " AND created_at >= :window_start AND created_at < :window_end"
            " AND (:model_version IS NULL OR model_version = :model_version)"
            " AND (customer_id IS NULL OR feature_month IS NULL)"
            f" AND {SERVED_ROWS}"
            " GROUP BY model_version"
        ),
        {"model_name": model_name, "model_version": model_version,
         "window_start": window.start, "window_end": window.end},
    ).all()  # fmt: skip
    return {str(version): int(count) for version, count in rows}


def training_macro_f1(model_version: str) -> float | None:
    """The version's test macro-F1 from its training run in MLflow."""
    from mlops_platform import registry

    client = mlflow_client()
    version = client.get_model_version(registry.model_name(), model_version)
    return client.get_run(version.run_id).data.metrics.get(f"test_{BASELINE_METRIC}")


def judge_macro_f1(
    source: str, count: int, needed: int, counted: str, macro_f1: float, baseline: float | None
) -> tuple[PerformanceDecision, str]:
    """(decision, note) for a `source` macro-F1 ("live", "estimated") against the test one."""
    if count < needed:
        return "insufficient-data", f"{count} {counted}; {needed} needed"
    if baseline is None:
        return "insufficient-data", f"the training run has no test_{BASELINE_METRIC}"
    drop = baseline - macro_f1
    tolerance = get_settings().performance_tolerance
    if drop > tolerance:
        return "degraded", (
            f"{source} macro-F1 {macro_f1:.4f} is {drop:.4f} below the test {baseline:.4f}"
            f" (tolerance {tolerance})"
        )
    return "ok", f"{source} macro-F1 {macro_f1:.4f}, test {baseline:.4f}"


def performance(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    url: str | None = None,
    *,
    now: datetime | str | None = None,
    model_version: str | None = None,
    baselines: Mapping[str, float | None] | None = None,
) -> PerformanceReport:
    """Live accuracy of every version (or `model_version`) from the labels of the window.

    The reports join the versions' monitoring runs in MLflow. `baselines` (version → test
    macro-F1) skips the look-up for those versions; given at all, nothing is logged.
    """
    from mlops_platform import registry

    name = registry.model_name()
    window = resolve_window(start, end, now)
    with db.transaction(url) as connection:
        rows = _confusion_rows(connection, name, model_version, window)
        unmatchable = _unmatchable(connection, name, model_version, window)
    confusions: dict[str, dict[str, np.ndarray]] = {}
    for version, day, predicted, actual, count in rows:
        by_day = confusions.setdefault(str(version), {})
        matrix = by_day.setdefault(day.isoformat(), np.zeros((3, 3), dtype=np.int64))
        matrix[CLASS_INDEX[actual], CLASS_INDEX[predicted]] += count
    versions = set(confusions) | set(unmatchable) | ({model_version} if model_version else set())
    results = []
    with db.transaction(url) as connection:
        for version in sorted(versions, key=lambda v: (len(v), v)):
            by_day = confusions.get(version, {})
            total = sum(by_day.values(), np.zeros((3, 3), dtype=np.int64))
            labelled = int(total.sum())
            metrics = classification_summary(total)
            daily = {
                day: {**classification_summary(m), "labelled": int(m.sum())}
                for day, m in sorted(by_day.items())
            }
            if baselines is not None and version in baselines:
                baseline = baselines[version]
            else:
                baseline = training_macro_f1(version) if labelled else None
            needed = get_settings().performance_min_labelled
            decision, note = judge_macro_f1(
                "live", labelled, needed, "labelled predictions", metrics[BASELINE_METRIC], baseline
            )
            stats = {
                "matching_rule": MATCHING_RULE,
                "metrics": metrics,
                "daily": daily,
                "confusion": {"rows_actual_columns_predicted": list(CREDIT_SCORES),
                              "counts": total.tolist()},
                "baseline_test_macro_f1": baseline,
                "unmatchable_predictions": unmatchable.get(version, 0),
                "note": note,
            }  # fmt: skip
            report_id = reports.store_report(
                connection, "performance", name, version, window, labelled, stats, None, decision
            )
            results.append(
                VersionPerformance(
                    model_version=version,
                    labelled=labelled,
                    unmatchable=unmatchable.get(version, 0),
                    confusion=tuple(tuple(int(c) for c in row) for row in total),
                    metrics=metrics,
                    daily=daily,
                    baseline=baseline,
                    decision=decision,
                    note=note,
                    report_id=report_id,
                )
            )
    report = PerformanceReport(name, window, tuple(results))
    if baselines is None:
        runs.log_reports(report.report_ids, url)
    return report
