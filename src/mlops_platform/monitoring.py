"""Live accuracy from late labels, and the one monitoring decision: retrain or not.

A label is matched to logged predictions by (customer_id, feature_month = month); a
prediction logged without either can never be matched, and reports count those. A window
takes the labels that *arrived* in it (`observed_at`) with the predictions of those
customer-months made before the window ended (each logged prediction counts; features of
a month exist from its first day, so earlier rows cannot be its predictions): each run
judges the newly arrived ground truth, and re-running a window sees the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from rich.table import Table
from sqlalchemy import Connection, text

from mlops_platform import db, drift
from mlops_platform.config import get_settings
from mlops_platform.drift import Reference, Window
from mlops_platform.schema import CREDIT_SCORES

MATCHING_RULE = (
    "prediction_log (customer_id, feature_month) = credit_labels (customer_id, month),"
    " predicted on or after the first day of that month"
)
BASELINE_METRIC = "macro_f1"
CLASS_INDEX = {score: i for i, score in enumerate(CREDIT_SCORES)}


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
    decision: Literal["ok", "degraded", "insufficient-data"]
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
    def report_id(self) -> int | None:
        """The report of the version with the most labelled predictions."""
        if not self.versions:
            return None
        return max(self.versions, key=lambda v: v.labelled).report_id

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
            "SELECT p.model_version, DATE(l.observed_at) AS day, p.predicted_class,"
            " l.credit_score, COUNT(*) AS n"
            " FROM prediction_log p STRAIGHT_JOIN credit_labels l"
            " ON l.customer_id = p.customer_id AND l.month = p.feature_month"
            " WHERE p.created_at >= :earliest_month AND p.created_at < :window_end"
            " AND p.created_at >= l.month"
            " AND l.observed_at >= :window_start AND l.observed_at < :window_end"
            " AND p.model_name = :model_name"
            " AND (:model_version IS NULL OR p.model_version = :model_version)"
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
            "SELECT model_version, COUNT(*) FROM prediction_log"
            " WHERE model_name = :model_name"
            " AND created_at >= :window_start AND created_at < :window_end"
            " AND (:model_version IS NULL OR model_version = :model_version)"
            " AND (customer_id IS NULL OR feature_month IS NULL)"
            " GROUP BY model_version"
        ),
        {"model_name": model_name, "model_version": model_version,
         "window_start": window.start, "window_end": window.end},
    ).all()  # fmt: skip
    return {str(version): int(count) for version, count in rows}


def training_macro_f1(model_version: str) -> float | None:
    """The version's test macro-F1 from its training run in MLflow."""
    from mlflow import MlflowClient

    from mlops_platform import registry, tracking

    tracking.configure()
    client = MlflowClient()
    version = client.get_model_version(registry.model_name(), model_version)
    return client.get_run(version.run_id).data.metrics.get(f"test_{BASELINE_METRIC}")


def judge_version(labelled: int, live_f1: float, baseline: float | None) -> tuple[str, str]:
    """(decision, note) for one version's live macro-F1 against its test macro-F1."""
    settings = get_settings()
    if labelled < settings.performance_min_labelled:
        return "insufficient-data", (
            f"{labelled} labelled predictions; {settings.performance_min_labelled} needed"
        )
    if baseline is None:
        return "insufficient-data", f"the training run has no test_{BASELINE_METRIC}"
    drop = baseline - live_f1
    if drop > settings.performance_tolerance:
        return "degraded", (
            f"live macro-F1 {live_f1:.4f} is {drop:.4f} below the test {baseline:.4f}"
            f" (tolerance {settings.performance_tolerance})"
        )
    return "ok", f"live macro-F1 {live_f1:.4f}, test {baseline:.4f}"


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

    `baselines` (version → test macro-F1) skips the MLflow look-up for those versions.
    """
    from mlops_platform import registry

    name = registry.model_name()
    window = drift.resolve_window(start, end, now)
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
            decision, note = judge_version(labelled, metrics[BASELINE_METRIC], baseline)
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
            report_id = drift.store_report(
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
    return PerformanceReport(name, window, tuple(results))


# -- the decision ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What monitoring concluded for a window, and on which report."""

    action: Literal["retrain", "ok", "insufficient-data"]
    reason: Literal["drift", "performance"] | None
    report_id: int | None
    model_name: str
    model_version: str
    window: Window
    note: str
    drift_report_id: int
    performance_report_id: int | None
    triggered_run: str | None = None

    @property
    def already_triggered(self) -> bool:
        """A retraining run was already recorded for this report (a re-run of the window)."""
        return self.triggered_run is not None


def _recent_trigger(connection: Connection, model_name: str, window: Window) -> Any:
    """The latest retrain trigger of another window that ended within the cooldown."""
    since = window.end - timedelta(hours=get_settings().retrain_cooldown_hours)
    return connection.execute(
        text(
            "SELECT report_id, triggered_run, window_end FROM drift_reports"
            " WHERE model_name = :model_name AND triggered_run IS NOT NULL"
            " AND window_end > :since AND window_end <= :window_end"
            " AND NOT (window_start = :window_start AND window_end = :window_end)"
            " ORDER BY window_end DESC LIMIT 1"
        ),
        {"model_name": model_name, "since": since,
         "window_start": window.start, "window_end": window.end},
    ).first()  # fmt: skip


def decide(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    url: str | None = None,
    *,
    now: datetime | str | None = None,
    reference: Reference | None = None,
) -> Decision:
    """Check drift and live accuracy of the champion for the window, and decide.

    Retrain on degraded live accuracy first, persistent data drift second, unless another
    window's trigger is within RETRAIN_COOLDOWN_HOURS. Re-running a window updates its
    reports and gives the same answer. `reference` replaces the MLflow look-up (tests).
    """
    reference = reference or drift.load_reference()
    window = drift.resolve_window(start, end, now)
    drift_report = drift.check_reference(reference, window, url)
    version = reference.model_version
    live = performance(
        window.start,
        window.end,
        url,
        model_version=version,
        baselines={version: reference.test_metrics.get(BASELINE_METRIC)},
    ).version(version)
    assert live is not None  # performance() reports the version it was asked for
    verdict = Decision(
        "ok", None, None, reference.model_name, version, window, "",
        drift_report.report_id, live.report_id,
    )  # fmt: skip
    if live.decision == "degraded":
        reason, report_id, why = "performance", live.report_id, live.note
    elif drift_report.alarm:
        drifted = ", ".join(drift_report.verdict.drifted)
        reason, report_id, why = "drift", drift_report.report_id, f"drifted features: {drifted}"
    elif drift_report.decision == "insufficient-data" and live.decision == "insufficient-data":
        return replace(
            verdict, action="insufficient-data", note=f"drift: too few rows; accuracy: {live.note}"
        )
    else:
        drift_note = drift_report.decision
        if drift_report.decision == "drift":
            drift_note = (
                f"drift in {drift_report.consecutive} consecutive window(s),"
                f" {get_settings().drift_persistence_windows} needed"
            )
        return replace(verdict, note=f"drift: {drift_note}; accuracy: {live.note}")
    with db.transaction(url) as connection:
        recent = _recent_trigger(connection, reference.model_name, window)
        triggered_run = connection.execute(
            text("SELECT triggered_run FROM drift_reports WHERE report_id = :report_id"),
            {"report_id": report_id},
        ).scalar()
    if recent is not None:
        return replace(
            verdict,
            note=f"{reason} ({why}), but report {recent.report_id} triggered run"
            f" {recent.triggered_run} for the window ending {recent.window_end}:"
            f" within the {get_settings().retrain_cooldown_hours:g} h cooldown",
        )
    return replace(
        verdict,
        action="retrain",
        reason=reason,
        report_id=report_id,
        note=why,
        triggered_run=triggered_run,
    )


def record_trigger(report_id: int, run_id: str, url: str | None = None) -> None:
    """Mark the report as having triggered `run_id` (recording the same run again is a no-op)."""
    with db.transaction(url) as connection:
        updated = connection.execute(
            text(
                # Assignments apply left to right: compare with the old run before replacing it.
                "UPDATE drift_reports SET triggered_at ="
                " IF(triggered_run <=> :run_id, triggered_at, CURRENT_TIMESTAMP(6)),"
                " triggered_run = :run_id WHERE report_id = :report_id"
            ),
            {"report_id": report_id, "run_id": run_id},
        ).rowcount
    if not updated:
        raise LookupError(f"there is no drift report {report_id}")


# -- tables for the CLI ------------------------------------------------------------------


def format_performance_table(report: PerformanceReport) -> Table:
    """One row per model version: labelled rows, live metrics, test macro-F1, verdict."""
    table = Table(
        title=f"Live accuracy {report.model_name}, labels that arrived {report.window.label()}",
        caption=f"matched on {MATCHING_RULE}; predictions without either id cannot be matched",
        title_justify="left",
    )
    columns = ("version", "labelled", "unmatchable", "accuracy", "macro-F1", "test macro-F1",
               *(f"recall {s}" for s in CREDIT_SCORES), "decision", "report")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "decision" else "right")
    for version in report.versions:
        metrics = version.metrics
        table.add_row(
            version.model_version,
            f"{version.labelled:,}",
            f"{version.unmatchable:,}",
            *(
                f"{metrics[key]:.4f}" if version.labelled else "—"
                for key in ("accuracy", "macro_f1")
            ),
            "—" if version.baseline is None else f"{version.baseline:.4f}",
            *(f"{metrics[f'recall_{s}']:.4f}" if version.labelled else "—" for s in CREDIT_SCORES),
            version.decision,
            str(version.report_id),
        )
    return table


def format_decision(decision: Decision) -> Table:
    """The decision, its reason and the reports it rests on."""
    table = Table(
        title=f"Monitoring decision for {decision.model_name} v{decision.model_version},"
        f" {decision.window.label()}",
        show_header=False,
        title_justify="left",
    )
    table.add_column(style="bold")
    table.add_column()
    colour = {"retrain": "red", "ok": "green", "insufficient-data": "yellow"}[decision.action]
    rows: Sequence[tuple[str, str]] = (
        ("action", f"[{colour}]{decision.action}[/]"),
        ("reason", decision.reason or ""),
        ("report", "" if decision.report_id is None else str(decision.report_id)),
        ("note", decision.note),
        ("drift report", str(decision.drift_report_id)),
        ("performance report", str(decision.performance_report_id)),
        ("triggered run", decision.triggered_run or ""),
    )
    for label, value in rows:
        table.add_row(label, value)
    return table
