"""Champion against challenger on the same labelled requests (shadow scoring's evidence).

Each request the challenger scored in shadow has two log rows under one key (created_at,
request_id): the served row and the shadow row. A window pairs them, matches each pair
to its label by (customer_id, feature_month = month) among the labels observed before
the window ends, and computes both models' accuracy and macro-F1 on exactly those
requests, with McNemar's exact test on the requests where exactly one of them was right.

The verdict, stored as a report of kind `shadow` on the challenger's version, is what the
live-evidence gate (`registry.promote_on_live_evidence`) acts on; it decides nothing again.
The window ends at the run's logical date and reaches SHADOW_WINDOW_DAYS back, so a
re-run judges the same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.logstore import SHADOW_ROLE
from mlops_platform.monitoring import reports, runs
from mlops_platform.monitoring.performance import (
    BASELINE_METRIC,
    CLASS_INDEX,
    MATCHING_RULE,
    classification_summary,
)
from mlops_platform.monitoring.reports import StoredReport
from mlops_platform.monitoring.runs import SHADOW_KIND
from mlops_platform.monitoring.windows import Window, this_hour, utc_naive
from mlops_platform.schema import CREDIT_SCORES

CHALLENGER_BETTER = "challenger-better"
# Pairs of one window: each served row and its shadow row, with the label both are judged on.
PAIRED_SQL = text(
    "SELECT c.model_version AS champion_version, s.model_version AS challenger_version,"
    " l.credit_score AS actual, c.predicted_class AS champion_class,"
    " s.predicted_class AS challenger_class, COUNT(*) AS n, MAX(s.created_at) AS last_at"
    " FROM prediction_log s"
    " JOIN prediction_log c ON c.created_at = s.created_at AND c.request_id = s.request_id"
    " AND c.role <> s.role"
    " JOIN credit_labels l ON l.customer_id = c.customer_id AND l.month = c.feature_month"
    " WHERE s.role = :shadow AND s.model_name = :model_name"
    " AND s.created_at >= :window_start AND s.created_at < :window_end"
    " AND s.created_at >= l.month AND l.observed_at < :window_end"
    " GROUP BY champion_version, challenger_version, actual, champion_class, challenger_class"
)


def mcnemar_p_value(champion_only: int, challenger_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against a fair coin.

    `champion_only` counts requests only the champion got right, `challenger_only` those
    only the challenger got right.
    """
    discordant = champion_only + challenger_only
    if discordant == 0:
        return 1.0
    fewer = min(champion_only, challenger_only)
    # P(X <= fewer) for X ~ Binomial(discordant, 1/2), summed in log space (large counts).
    log_terms = [
        math.lgamma(discordant + 1) - math.lgamma(k + 1) - math.lgamma(discordant - k + 1)
        - discordant * math.log(2)
        for k in range(fewer + 1)
    ]  # fmt: skip
    peak = max(log_terms)
    tail = math.exp(peak) * sum(math.exp(term - peak) for term in log_terms)
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedComparison:
    """Both models on the same labelled requests of one window, and the verdict."""

    model_name: str
    champion_version: str
    challenger_version: str
    window: Window
    labelled: int
    champion: Mapping[str, float]
    challenger: Mapping[str, float]
    champion_only: int
    challenger_only: int
    p_value: float
    checks: Mapping[str, bool]
    decision: str
    note: str
    report_id: int

    @property
    def gain(self) -> float:
        """How far the challenger's gate metric is above the champion's (negative: below)."""
        return self.challenger[BASELINE_METRIC] - self.champion[BASELINE_METRIC]


def judge(
    labelled: int,
    champion: Mapping[str, float],
    challenger: Mapping[str, float],
    champion_only: int,
    challenger_only: int,
    p_value: float,
) -> tuple[str, dict[str, bool], str]:
    """(decision, checks, note): does the challenger beat the champion on live evidence?"""
    settings = get_settings()
    gain = challenger[BASELINE_METRIC] - champion[BASELINE_METRIC]
    checks = {
        "enough_labelled": labelled >= settings.shadow_min_labelled,
        "beats_by_margin": gain >= settings.shadow_min_gain,
        "significant": challenger_only > champion_only and p_value <= settings.shadow_significance,
    }
    evidence = (
        f"{BASELINE_METRIC} {challenger[BASELINE_METRIC]:.4f} against"
        f" {champion[BASELINE_METRIC]:.4f} ({gain:+.4f}) on {labelled:,} labelled requests;"
        f" right only by the challenger {challenger_only}, only by the champion"
        f" {champion_only}, McNemar p={p_value:.2g}"
    )
    if not checks["enough_labelled"]:
        return (
            "insufficient-data",
            checks,
            (
                f"{labelled:,} labelled requests scored by both; {settings.shadow_min_labelled:,}"
                " needed"
            ),
        )
    if all(checks.values()):
        return CHALLENGER_BETTER, checks, f"challenger better: {evidence}"
    needs = []
    if not checks["beats_by_margin"]:
        needs.append(f"a gain of {settings.shadow_min_gain}")
    if not checks["significant"]:
        needs.append(f"McNemar p <= {settings.shadow_significance} in its favour")
    return "ok", checks, f"champion stays ({' and '.join(needs)} needed): {evidence}"


def compare(
    end: datetime | str | None = None, url: str | None = None, *, log_to_mlflow: bool = True
) -> list[PairedComparison]:
    """Compare every champion–challenger pair that scored the window's requests.

    One stored report per challenger version (usually one), against the champion version
    that served its latest pair (the champion changed within the window only after a manual
    promotion or a rollback); an empty list when nothing was scored in shadow. The reports
    join the challengers' monitoring runs in MLflow.
    """
    from mlops_platform import registry

    name = registry.model_name()
    window_end = utc_naive(end) if end is not None else this_hour()
    window = Window(window_end - timedelta(days=get_settings().shadow_window_days), window_end)
    with db.transaction(url) as connection:
        rows = connection.execute(
            PAIRED_SQL,
            {"shadow": SHADOW_ROLE, "model_name": name,
             "window_start": window.start, "window_end": window.end},
        ).all()  # fmt: skip
        results = [
            _store(connection, name, versions, window, counts)
            for versions, counts in _by_pair(rows).items()
        ]
    if log_to_mlflow and results:
        runs.log_reports([result.report_id for result in results], url)
    return results


def _by_pair(rows: list[Any]) -> dict[tuple[str, str], np.ndarray]:
    """Counts per (champion, challenger) version pair, actual × champion × challenger class;
    one champion per challenger: the one of the challenger's latest pair."""
    size = len(CREDIT_SCORES)
    pairs: dict[tuple[str, str], np.ndarray] = {}
    latest: dict[str, tuple[datetime, str]] = {}
    for champion, challenger, actual, champion_class, challenger_class, count, last_at in rows:
        champion, challenger = str(champion), str(challenger)
        counts = pairs.setdefault((champion, challenger), np.zeros((size,) * 3, int))
        counts[CLASS_INDEX[actual], CLASS_INDEX[champion_class], CLASS_INDEX[challenger_class]] = (
            count
        )
        latest[challenger] = max(latest.get(challenger, (last_at, champion)), (last_at, champion))
    return {
        (champion, challenger): pairs[champion, challenger]
        for challenger, (_, champion) in latest.items()
    }


def _store(
    connection: Connection,
    model_name: str,
    versions: tuple[str, str],
    window: Window,
    counts: np.ndarray,
) -> PairedComparison:
    champion_version, challenger_version = versions
    labelled = int(counts.sum())
    champion_confusion, challenger_confusion = counts.sum(axis=2), counts.sum(axis=1)
    champion = classification_summary(champion_confusion)
    challenger = classification_summary(challenger_confusion)
    classes = np.arange(len(CREDIT_SCORES))
    champion_right = classes[:, None, None] == classes[None, :, None]
    challenger_right = classes[:, None, None] == classes[None, None, :]
    champion_only = int(counts[champion_right & ~challenger_right].sum())
    challenger_only = int(counts[challenger_right & ~champion_right].sum())
    p_value = mcnemar_p_value(champion_only, challenger_only)
    decision, checks, note = judge(
        labelled, champion, challenger, champion_only, challenger_only, p_value
    )
    stats = {
        "champion_version": champion_version,
        "matching_rule": MATCHING_RULE + "; both rows of a request share its key",
        "champion": champion,
        "challenger": challenger,
        "champion_only_right": champion_only,
        "challenger_only_right": challenger_only,
        "mcnemar_p_value": p_value,
        "checks": checks,
        "confusion": {
            "rows_actual_columns_predicted": list(CREDIT_SCORES),
            "champion": champion_confusion.tolist(),
            "challenger": challenger_confusion.tolist(),
        },
        "note": note,
    }
    report_id = reports.store_report(
        connection, SHADOW_KIND, model_name, challenger_version, window, labelled, stats, None,
        decision,
    )  # fmt: skip
    return PairedComparison(
        model_name=model_name,
        champion_version=champion_version,
        challenger_version=challenger_version,
        window=window,
        labelled=labelled,
        champion=champion,
        challenger=challenger,
        champion_only=champion_only,
        challenger_only=challenger_only,
        p_value=p_value,
        checks=checks,
        decision=decision,
        note=note,
        report_id=report_id,
    )


def from_report(report: StoredReport) -> PairedComparison:
    """A stored shadow report as the comparison it records."""
    stats = report.stats
    return PairedComparison(
        model_name=report.model_name,
        champion_version=stats["champion_version"],
        challenger_version=report.model_version,
        window=report.window,
        labelled=report.row_count,
        champion=stats["champion"],
        challenger=stats["challenger"],
        champion_only=stats["champion_only_right"],
        challenger_only=stats["challenger_only_right"],
        p_value=stats["mcnemar_p_value"],
        checks=stats["checks"],
        decision=report.decision,
        note=stats["note"],
        report_id=report.report_id,
    )
