"""The report store: drift, performance, estimate and shadow reports in `drift_reports`.

Each check writes its report here; the decision reads them back by id, and the retrain
trigger a report caused is recorded on it (which starts the cooldown).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.errors import NotFound
from mlops_platform.monitoring.windows import Window

ReportKind = Literal["drift", "performance", "estimate", "shadow"]


@dataclass(frozen=True)
class StoredReport:
    """One row of `drift_reports`, its JSON `stats` parsed."""

    report_id: int
    kind: ReportKind
    model_name: str
    model_version: str
    window: Window
    row_count: int
    stats: Mapping[str, Any]
    drift_share: float | None
    decision: str
    triggered_run: str | None


def store_report(
    connection: Connection,
    kind: ReportKind,
    model_name: str,
    model_version: str,
    window: Window,
    row_count: int,
    stats: Mapping[str, Any],
    drift_share: float | None,
    decision: str,
) -> int:
    """Insert or update the report of this kind, model version and window; its id.

    A retrain trigger already recorded on the report is kept.
    """
    result = connection.execute(
        text(
            "INSERT INTO drift_reports (kind, model_name, model_version, window_start,"
            " window_end, row_count, stats, drift_share, decision)"
            " VALUES (:kind, :model_name, :model_version, :window_start, :window_end,"
            " :row_count, :stats, :drift_share, :decision)"
            # LAST_INSERT_ID(report_id) makes an update report the existing row's id.
            " ON DUPLICATE KEY UPDATE report_id = LAST_INSERT_ID(report_id),"
            " row_count = VALUES(row_count), stats = VALUES(stats),"
            " drift_share = VALUES(drift_share), decision = VALUES(decision)"
        ),
        {
            "kind": kind, "model_name": model_name, "model_version": model_version,
            "window_start": window.start, "window_end": window.end, "row_count": row_count,
            "stats": json.dumps(stats), "drift_share": drift_share, "decision": decision,
        },
    )  # fmt: skip
    return int(result.lastrowid)


REPORT_COLUMNS = (
    "report_id, kind, model_name, model_version, window_start, window_end,"
    " row_count, stats, drift_share, decision, triggered_run"
)


def _stored(row: Any) -> StoredReport:
    return StoredReport(
        report_id=row.report_id,
        kind=row.kind,
        model_name=row.model_name,
        model_version=row.model_version,
        window=Window(row.window_start, row.window_end),
        row_count=row.row_count,
        stats=json.loads(row.stats),
        drift_share=row.drift_share,
        decision=row.decision,
        triggered_run=row.triggered_run,
    )


def load_reports(report_ids: Sequence[int], url: str | None = None) -> dict[int, StoredReport]:
    """The stored reports with these ids, by id; an unknown id fails."""
    wanted = sorted(set(report_ids))
    if not wanted:
        return {}
    with db.transaction(url) as connection:
        rows = connection.execute(
            text(
                f"SELECT {REPORT_COLUMNS} FROM drift_reports"  # noqa: S608 - a constant
                " WHERE report_id IN :report_ids"
            ).bindparams(bindparam("report_ids", expanding=True)),
            {"report_ids": wanted},
        ).all()
    found = {row.report_id: _stored(row) for row in rows}
    missing = sorted(set(wanted) - found.keys())
    if missing:
        raise NotFound(f"there is no report {', '.join(map(str, missing))} in drift_reports")
    return found


def window_reports(
    connection: Connection, kind: ReportKind, model_name: str, window: Window
) -> list[StoredReport]:
    """The reports of this kind on exactly this window, one per model version."""
    rows = connection.execute(
        text(
            f"SELECT {REPORT_COLUMNS} FROM drift_reports WHERE kind = :kind"  # noqa: S608
            " AND model_name = :model_name AND window_start = :window_start"
            " AND window_end = :window_end ORDER BY report_id"
        ),
        {"kind": kind, "model_name": model_name,
         "window_start": window.start, "window_end": window.end},
    ).all()  # fmt: skip
    return [_stored(row) for row in rows]


def consecutive_drift(
    connection: Connection, model_name: str, model_version: str, window: Window, drifted: bool
) -> int:
    """How many drift checks in a row, ending with this window, found drift."""
    if not drifted:
        return 0
    needed = get_settings().drift_persistence_windows - 1
    earlier = connection.execute(
        text(
            "SELECT decision FROM drift_reports WHERE kind = 'drift'"
            " AND model_name = :model_name AND model_version = :model_version"
            " AND window_end < :window_end ORDER BY window_end DESC LIMIT :needed"
        ),
        {"model_name": model_name, "model_version": model_version,
         "window_end": window.end, "needed": needed},
    ).scalars()  # fmt: skip
    run = 1
    for decision in earlier:
        if decision != "drift":
            break
        run += 1
    return run


def recent_trigger(model_name: str, window: Window, url: str | None = None) -> Any:
    """The latest retrain trigger of another window that ended within the cooldown."""
    since = window.end - timedelta(hours=get_settings().retrain_cooldown_hours)
    with db.transaction(url) as connection:
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
        raise NotFound(f"there is no drift report {report_id}")
