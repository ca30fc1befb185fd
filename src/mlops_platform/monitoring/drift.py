"""Data drift: live traffic in `prediction_log` against the champion's training profile.

The window's rows are bucketed inside MariaDB with the reference's own bin edges and
categories (bound parameters), so only counts reach Python. Every feature and the
predicted class get the statistics in `statistics`; missing values are a bucket of their
own, so a feature that suddenly arrives empty is drift. `type_of_loan` has no reference
profile and is not checked.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.errors import InvalidInput
from mlops_platform.logstore import SERVED_ROWS
from mlops_platform.monitoring import html_report, reports, runs, statistics
from mlops_platform.monitoring.reference import Reference, load_reference
from mlops_platform.monitoring.statistics import Kind
from mlops_platform.monitoring.windows import Window, resolve_window
from mlops_platform.schema import CATEGORICAL_FEATURES, CREDIT_SCORES, NUMERIC_FEATURES

# The window is counted in time slices on parallel connections: the scan is CPU-bound
# in the server, and one query uses one server core.
SCAN_CONNECTIONS = 2
SCAN_SLICES = 8
UNSEEN = "unseen"
MISSING = "missing"
PREDICTION = "predicted_class"

Status = Literal["ok", "warn", "drift"]


# -- counting in MariaDB -----------------------------------------------------------------


@dataclass(frozen=True)
class BucketSpec:
    """How one feature's buckets are counted: its SQL aggregates and their reference shares."""

    name: str
    kind: Kind
    buckets: tuple[str, ...]
    reference: tuple[float, ...]
    aggregates: tuple[str, ...]
    parameters: Mapping[str, Any]

    def counts(self, values: Sequence[int], rows: int) -> np.ndarray:
        """Bucket counts from this feature's aggregate results (see `bucket_specs`)."""
        if self.kind == "prediction":
            return np.array(values, dtype=np.int64)
        present, *marks = values
        if self.kind == "numeric":
            # marks[i] counts values <= edge i; differences give the bins between edges.
            cumulative = np.array([*marks, present], dtype=np.int64)
            bins = np.diff(cumulative, prepend=0)
        else:
            bins = np.array([*marks, present - sum(marks)], dtype=np.int64)  # last: unseen
        return np.append(bins, rows - present)  # last: missing


def bucket_specs(profile: Mapping[str, Any]) -> list[BucketSpec]:
    """One spec per profiled feature, plus the predicted class; edges and categories bound.

    A numeric value is in bin i when i edges are strictly below it (training's rule):
    `SUM(x <= edge_i)` for each edge gives the cumulative counts.
    """
    specs = []
    for name in NUMERIC_FEATURES:
        if name not in profile["numeric"]:
            continue
        entry = profile["numeric"][name]
        edges = [float(edge) for edge in entry["edges"]]
        # Column names are f_<feature> for schema constants (sql/006); values are bound.
        column = f"f_{name}"
        keys = [f"{name}_{i}" for i in range(len(edges))]
        labels = [f"≤ {edges[0]:g}"] if edges else ["all"]
        labels += [f"({a:g}, {b:g}]" for a, b in itertools.pairwise(edges)]
        labels += [f"> {edges[-1]:g}"] if edges else []
        present_share = 1 - entry["missing_share"]
        specs.append(
            BucketSpec(
                name=name,
                kind="numeric",
                buckets=(*labels, MISSING),
                reference=(*(s * present_share for s in entry["shares"]), entry["missing_share"]),
                aggregates=(f"COUNT({column})", *(f"SUM({column} <= :{k})" for k in keys)),
                parameters=dict(zip(keys, edges, strict=True)),
            )
        )
    for name in CATEGORICAL_FEATURES:
        if name not in profile["categorical"]:
            continue
        entry = profile["categorical"][name]
        categories = sorted(entry["shares"])
        column = f"f_{name}"
        keys = [f"{name}_{i}" for i in range(len(categories))]
        present_share = 1 - entry["missing_share"]
        specs.append(
            BucketSpec(
                name=name,
                kind="categorical",
                buckets=(*categories, UNSEEN, MISSING),
                reference=(
                    *(entry["shares"][c] * present_share for c in categories),
                    0.0,
                    entry["missing_share"],
                ),
                aggregates=(f"COUNT({column})", *(f"SUM({column} = :{k})" for k in keys)),
                parameters=dict(zip(keys, categories, strict=True)),
            )
        )
    shares = profile["predictions"]["shares"]
    keys = [f"{PREDICTION}_{i}" for i in range(len(CREDIT_SCORES))]
    specs.append(
        BucketSpec(
            name=PREDICTION,
            kind="prediction",
            buckets=CREDIT_SCORES,
            reference=tuple(float(shares.get(score, 0.0)) for score in CREDIT_SCORES),
            aggregates=tuple(f"SUM(predicted_class = :{k})" for k in keys),
            parameters=dict(zip(keys, CREDIT_SCORES, strict=True)),
        )
    )
    return specs


def count_window(
    specs: Sequence[BucketSpec],
    model_name: str,
    model_version: str,
    window: Window,
    url: str | None = None,
) -> tuple[int, dict[str, np.ndarray]]:
    """Rows in the window and each feature's bucket counts, aggregated by MariaDB."""
    aggregates = [aggregate for spec in specs for aggregate in spec.aggregates]
    parameters = {key: value for spec in specs for key, value in spec.parameters.items()}
    # Every aggregate is built from schema constants and bound names. The table is
    # clustered by created_at, so a window is one primary-key range scan.
    statement = text(
        f"SELECT COUNT(*), {', '.join(aggregates)}"  # noqa: S608
        " FROM prediction_log"
        " WHERE created_at >= :window_start AND created_at < :window_end"
        " AND model_name = :model_name AND model_version = :model_version"
        f" AND {SERVED_ROWS}"
    )
    engine = db.get_engine(url)

    def scan(part: Window) -> np.ndarray:
        with engine.connect() as connection:
            row = connection.execute(
                statement,
                {**parameters, "model_name": model_name, "model_version": model_version,
                 "window_start": part.start, "window_end": part.end},
            ).one()  # fmt: skip
        return np.array([int(value or 0) for value in row], dtype=np.int64)

    with ThreadPoolExecutor(SCAN_CONNECTIONS, thread_name_prefix="mlops-drift") as pool:
        totals = sum(pool.map(scan, window.slices(SCAN_SLICES)))
    rows = int(totals[0])
    counts, position = {}, 1
    for spec in specs:
        values = totals[position : position + len(spec.aggregates)].tolist()
        counts[spec.name] = spec.counts(values, rows)
        position += len(spec.aggregates)
    return rows, counts


# -- verdicts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's reference and current buckets, its statistics and the verdict on them."""

    name: str
    kind: Kind
    buckets: tuple[str, ...]
    reference: tuple[float, ...]
    counts: tuple[int, ...]
    scores: Mapping[str, float | None]
    status: Status

    @property
    def psi(self) -> float:
        """The population stability index, which every verdict rests on."""
        return float(self.scores["psi"])

    @property
    def p_value(self) -> float | None:
        """The chi-square p-value (categoricals and predictions only)."""
        return self.scores.get("p_value")

    @property
    def current(self) -> tuple[float, ...]:
        """The window's shares per bucket."""
        return tuple(float(share) for share in statistics.shares_of(self.counts))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the report's `stats`."""
        return {
            "kind": self.kind, "buckets": list(self.buckets), "reference": list(self.reference),
            "counts": list(self.counts), **self.scores, "status": self.status,
        }  # fmt: skip


def judge_feature(spec: BucketSpec, counts: np.ndarray) -> FeatureDrift:
    """PSI for every feature; categoricals also need a significant chi-square to drift.

    PSI ≥ DRIFT_PSI_ALERT is drift and ≥ DRIFT_PSI_WARN a warning. For categoricals and
    predictions a p-value ≥ DRIFT_CHI2_P_VALUE caps the verdict at a warning, so that
    noise spread over many categories in a small window cannot raise an alarm.
    """
    settings = get_settings()
    scores = statistics.compute(spec.kind, spec.reference, counts)
    score, p_value = scores["psi"], scores.get("p_value")
    status: Status = "ok"
    if score >= settings.drift_psi_alert:
        status = "drift"
    elif score >= settings.drift_psi_warn:
        status = "warn"
    if status == "drift" and p_value is not None and p_value >= settings.drift_chi2_p_value:
        status = "warn"
    return FeatureDrift(
        spec.name, spec.kind, spec.buckets, spec.reference,
        tuple(int(c) for c in counts), scores, status,
    )  # fmt: skip


def key_features() -> tuple[str, ...]:
    """DRIFT_KEY_FEATURES as names, checked against the schema so a typo fails loudly."""
    names = tuple(n.strip() for n in get_settings().drift_key_features.split(",") if n.strip())
    unknown = sorted(set(names) - {*NUMERIC_FEATURES, *CATEGORICAL_FEATURES})
    if unknown:
        raise InvalidInput(f"DRIFT_KEY_FEATURES names no profiled feature: {', '.join(unknown)}")
    return names


@dataclass(frozen=True)
class Verdict:
    """The window's dataset-level verdict from its per-feature results."""

    decision: Literal["ok", "drift", "insufficient-data"]
    drift_share: float
    drifted: tuple[str, ...]
    key_drifted: tuple[str, ...]
    severe: tuple[str, ...]
    weighted: bool

    def reasons(self) -> list[str]:
        """Why the window drifted, for notes and pages."""
        found = [f"{self.drift_share:.0%} of the features{' by importance' * self.weighted}"]
        if self.key_drifted:
            found.append(f"key features {', '.join(self.key_drifted)}")
        if self.severe:
            found.append(f"severe shifts in {', '.join(self.severe)}")
        return found


def judge_dataset(
    rows: int,
    features: Sequence[FeatureDrift],
    importance: Mapping[str, float] | None = None,
) -> Verdict:
    """Drift when enough features drifted, a key feature did, or one shifted severely.

    "Enough" is DRIFT_SHARE_THRESHOLD of the features, each weighted by its share of the
    model's feature importance when the profile has one. A drifted feature with PSI ≥
    DRIFT_PSI_SEVERE is drift on its own. Too few rows give no verdict.
    """
    settings = get_settings()
    drifted = tuple(f.name for f in features if f.status == "drift")
    key_drifted = tuple(name for name in drifted if name in key_features())
    severe = tuple(
        f.name for f in features if f.status == "drift" and f.psi >= settings.drift_psi_severe
    )
    weights = {f.name: (importance or {}).get(f.name, 0.0) for f in features}
    weighted = sum(weights.values()) > 0
    if not weighted:
        weights = dict.fromkeys(weights, 1.0)
    total = sum(weights.values())
    share = sum(weights[name] for name in drifted) / total if total else 0.0
    if rows < settings.drift_min_rows:
        decision = "insufficient-data"
    elif share >= settings.drift_share_threshold or key_drifted or severe:
        decision = "drift"
    else:
        decision = "ok"
    return Verdict(decision, share, drifted, key_drifted, severe, weighted)


# -- the check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    """One window's drift check, as stored in `drift_reports` (kind 'drift')."""

    report_id: int
    model_name: str
    model_version: str
    window: Window
    rows: int
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift
    verdict: Verdict
    consecutive: int
    alarm: bool  # drifted in DRIFT_PERSISTENCE_WINDOWS consecutive windows, ending here
    html_path: Path | None = None
    mlflow_run_id: str | None = None

    @property
    def decision(self) -> str:
        """'ok', 'drift' or 'insufficient-data', as stored."""
        return self.verdict.decision


def check(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    model_version: str | None = None,
    url: str | None = None,
    *,
    now: datetime | str | None = None,
) -> DriftReport:
    """Check the window's traffic of the champion (or `model_version`) for data drift."""
    window = resolve_window(start, end, now)  # bad input fails before MLflow is asked
    return check_reference(load_reference(model_version), window, url)


def check_reference(reference: Reference, window: Window, url: str | None = None) -> DriftReport:
    """Check one window against a reference, store the report, write and log its HTML.

    A reference without an MLflow run (tests, offline use) logs nothing to MLflow; else
    the window's numbers join the version's monitoring run (`runs`).
    """
    specs = bucket_specs(reference.profile)
    rows, counts = count_window(specs, reference.model_name, reference.model_version, window, url)
    judged = [judge_feature(spec, counts[spec.name]) for spec in specs]
    features, prediction = tuple(judged[:-1]), judged[-1]
    verdict = judge_dataset(rows, features, reference.profile.get("importance"))
    with db.transaction(url) as connection:
        consecutive = reports.consecutive_drift(
            connection, reference.model_name, reference.model_version, window,
            verdict.decision == "drift",
        )  # fmt: skip
        alarm = consecutive >= get_settings().drift_persistence_windows
        stats = {
            "features": {f.name: f.as_dict() for f in features},
            "prediction": prediction.as_dict(),
            "drifted": list(verdict.drifted),
            "key_drifted": list(verdict.key_drifted),
            "severe": list(verdict.severe),
            "weighted_by_importance": verdict.weighted,
            "consecutive_drift_windows": consecutive,
            "alarm": alarm,
            "reference_run_id": reference.run_id,
            "reference_base_dt": reference.profile.get("base_dt"),
        }
        report_id = reports.store_report(
            connection, "drift", reference.model_name, reference.model_version, window,
            rows, stats, verdict.drift_share, verdict.decision,
        )  # fmt: skip
    report = DriftReport(
        report_id, reference.model_name, reference.model_version, window, rows,
        features, prediction, verdict, consecutive, alarm,
    )  # fmt: skip
    html_path = html_report.write_html(report, reference)
    run_id = None
    if reference.run_id:
        logged = runs.log_reports([report_id], url, [html_path])
        run_id = logged[reference.model_version]
    return replace(report, html_path=html_path, mlflow_run_id=run_id)
