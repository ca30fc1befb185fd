"""The one monitoring decision, retrain or not, from the reports the checks stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from mlops_platform.config import get_settings
from mlops_platform.errors import InvalidInput
from mlops_platform.monitoring import reports
from mlops_platform.monitoring.reports import ReportKind, StoredReport
from mlops_platform.monitoring.windows import Window


@dataclass(frozen=True)
class Decision:
    """What monitoring concluded for a window, and on which report.

    `reason` is the kind of the report that calls for retraining, which is also the
    trigger reason `continuous_training` records.
    """

    action: Literal["retrain", "ok", "insufficient-data"]
    reason: ReportKind | None
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


def _live_accuracy(
    drift: StoredReport, performance: Sequence[StoredReport]
) -> tuple[StoredReport | None, str, str]:
    """The performance report of the drift report's version and window; decision and note."""
    live = next(
        (
            report
            for report in performance
            if (report.model_version, report.window) == (drift.model_version, drift.window)
        ),
        None,
    )
    if live is None:
        return None, "insufficient-data", f"no labelled predictions of v{drift.model_version}"
    return live, live.decision, live.stats["note"]


def _drift_note(drift: StoredReport) -> str:
    stats = drift.stats
    if drift.decision != "drift":
        return "too few rows" if drift.decision == "insufficient-data" else drift.decision
    if not stats["alarm"]:
        return (
            f"drift in {stats['consecutive_drift_windows']} consecutive window(s),"
            f" {get_settings().drift_persistence_windows} needed"
        )
    found = [f"drifted features: {', '.join(stats['drifted'])}"]
    if stats["severe"]:
        found.append(f"severe: {', '.join(stats['severe'])}")
    return "; ".join(found)


def decide(
    drift_report_id: int, performance_report_ids: Sequence[int] = (), url: str | None = None
) -> Decision:
    """Decide on a window from its stored drift report and live-accuracy reports.

    Retrain on degraded live accuracy first, persistent data drift second, unless another
    window's trigger is within RETRAIN_COOLDOWN_HOURS. The same reports give the same
    answer, with the run a report already triggered.
    """
    stored = reports.load_reports([drift_report_id, *performance_report_ids], url)
    drift = stored[drift_report_id]
    if drift.kind != "drift":
        raise InvalidInput(f"report {drift_report_id} is a {drift.kind} report, not a drift one")
    performance = [stored[i] for i in performance_report_ids if stored[i].kind == "performance"]
    live, live_decision, live_note = _live_accuracy(drift, performance)
    verdict = Decision(
        "ok", None, None, drift.model_name, drift.model_version, drift.window, "",
        drift.report_id, live.report_id if live else None,
    )  # fmt: skip
    if live is not None and live_decision == "degraded":
        cause, why = live, live_note
    elif drift.decision == "drift" and drift.stats["alarm"]:
        cause, why = drift, _drift_note(drift)
    elif drift.decision == "insufficient-data" and live_decision == "insufficient-data":
        return replace(
            verdict, action="insufficient-data", note=f"drift: too few rows; accuracy: {live_note}"
        )
    else:
        return replace(verdict, note=f"drift: {_drift_note(drift)}; accuracy: {live_note}")
    recent = reports.recent_trigger(drift.model_name, drift.window, url)
    if recent is not None:
        return replace(
            verdict,
            note=f"{cause.kind} ({why}), but report {recent.report_id} triggered run"
            f" {recent.triggered_run} for the window ending {recent.window_end}:"
            f" within the {get_settings().retrain_cooldown_hours:g} h cooldown",
        )
    return replace(
        verdict,
        action="retrain",
        reason=cause.kind,
        report_id=cause.report_id,
        note=why,
        triggered_run=cause.triggered_run,
    )
