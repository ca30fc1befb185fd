"""Data drift: live traffic in `prediction_log` against the champion's training profile.

The window's rows are bucketed inside MariaDB with the reference's own bin edges and
categories (bound parameters), so only counts reach Python. Numeric features get a PSI,
categoricals a PSI and a chi-square test, predicted classes the same as categoricals.
Missing values are a bucket of their own in both: a feature that suddenly arrives empty
is drift. `type_of_loan` has no reference profile and is not checked.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from rich.table import Table
from sqlalchemy import Connection, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.schema import CATEGORICAL_FEATURES, CREDIT_SCORES, NUMERIC_FEATURES

if TYPE_CHECKING:
    from mlflow import MlflowClient

REFERENCE_PROFILE = "reference_profile.json"  # the artifact training logs on its parent run
# Shares are floored at this before the PSI's logarithm and the chi-square's division,
# so a bucket that is empty on one side counts as rare, not as infinitely surprising.
EPSILON = 1e-4
# The window is counted in time slices on parallel connections: the scan is CPU-bound
# in the server, and one query uses one server core.
SCAN_CONNECTIONS = 2
SCAN_SLICES = 8
UNSEEN = "unseen"
MISSING = "missing"
PREDICTION = "predicted_class"
SAFE_FILE_PART = re.compile(r"[^A-Za-z0-9_.-]")

Status = Literal["ok", "warn", "drift"]
Kind = Literal["numeric", "categorical", "prediction"]


@dataclass(frozen=True)
class Window:
    """A monitoring window [start, end) in naive UTC, as `prediction_log` stores times."""

    start: datetime
    end: datetime

    def slices(self, count: int) -> list[Window]:
        """`count` consecutive windows that cover this one exactly."""
        step = (self.end - self.start) / count
        bounds = [min(self.start + step * i, self.end) for i in range(count)] + [self.end]
        return [Window(a, b) for a, b in itertools.pairwise(bounds) if a < b]

    def label(self) -> str:
        """The window for people: minutes, UTC."""
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


def utc_naive(moment: datetime | str) -> datetime:
    """A datetime or ISO string as naive UTC; naive input is taken to be UTC already."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def resolve_window(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    now: datetime | str | None = None,
) -> Window:
    """The window to judge: `end` defaults to `now` (or this hour), `start` to a window before.

    Callers with a logical time (Airflow) pass it, so a re-run judges the same window.
    """
    if end is None and now is None:
        # Without a logical time, this hour: repeated runs within it judge one window.
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window_end = utc_naive(end if end is not None else now)
    window_start = (
        utc_naive(start)
        if start is not None
        else window_end - timedelta(hours=get_settings().drift_window_hours)
    )
    if window_start >= window_end:
        raise ValueError(f"the window must start before it ends: {window_start} >= {window_end}")
    return Window(window_start, window_end)


# -- the reference -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """What a model version was trained on: its profile, test metrics and MLflow run."""

    model_name: str
    model_version: str
    profile: Mapping[str, Any]
    test_metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str | None = None
    experiment_id: str | None = None


def load_reference(model_version: str | None = None) -> Reference:
    """The reference of `model_version`, or of the version holding alias `champion`."""
    from mlops_platform import registry, tracking

    tracking.configure()
    client = _mlflow_client()
    name = registry.model_name()
    version = (
        client.get_model_version(name, model_version)
        if model_version
        else client.get_model_version_by_alias(name, registry.CHAMPION)
    )
    run = client.get_run(version.run_id)
    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as scratch:
        path = client.download_artifacts(version.run_id, REFERENCE_PROFILE, scratch)
        profile = json.loads(Path(path).read_text())
    return Reference(
        model_name=name,
        model_version=str(version.version),
        profile=profile,
        test_metrics={
            key.removeprefix("test_"): value
            for key, value in run.data.metrics.items()
            if key.startswith("test_")
        },
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
    )


def _mlflow_client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


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


# -- statistics --------------------------------------------------------------------------


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same buckets."""
    expected = np.maximum(np.asarray(reference, dtype=float), EPSILON)
    actual = np.maximum(np.asarray(current, dtype=float), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def chi_square_p(reference: Sequence[float], counts: Sequence[int]) -> float:
    """p-value of the counts being drawn from the reference shares (goodness of fit)."""
    from scipy.stats import chisquare

    observed = np.asarray(counts, dtype=float)
    expected = np.maximum(np.asarray(reference, dtype=float), EPSILON)
    expected = expected / expected.sum() * observed.sum()
    return float(chisquare(observed, expected).pvalue)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's reference and current buckets and the verdict on them."""

    name: str
    kind: Kind
    buckets: tuple[str, ...]
    reference: tuple[float, ...]
    counts: tuple[int, ...]
    psi: float
    p_value: float | None
    status: Status

    @property
    def current(self) -> tuple[float, ...]:
        """The window's shares per bucket."""
        total = sum(self.counts)
        return tuple(c / total if total else 0.0 for c in self.counts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the report's `stats`."""
        return {
            "kind": self.kind, "buckets": list(self.buckets), "reference": list(self.reference),
            "counts": list(self.counts), "psi": self.psi, "p_value": self.p_value,
            "status": self.status,
        }  # fmt: skip


def judge_feature(spec: BucketSpec, counts: np.ndarray) -> FeatureDrift:
    """PSI for every feature; categoricals also need a significant chi-square to drift.

    PSI ≥ DRIFT_PSI_ALERT is drift and ≥ DRIFT_PSI_WARN a warning. For categoricals and
    predictions a p-value ≥ DRIFT_CHI2_P_VALUE caps the verdict at a warning, so that
    noise spread over many categories in a small window cannot raise an alarm.
    """
    settings = get_settings()
    total = int(counts.sum())
    shares = counts / total if total else np.zeros(len(counts))
    score = psi(spec.reference, shares)
    p_value = chi_square_p(spec.reference, counts) if spec.kind != "numeric" and total else None
    status: Status = "ok"
    if score >= settings.drift_psi_alert:
        status = "drift"
    elif score >= settings.drift_psi_warn:
        status = "warn"
    if status == "drift" and p_value is not None and p_value >= settings.drift_chi2_p_value:
        status = "warn"
    return FeatureDrift(
        spec.name, spec.kind, spec.buckets, spec.reference,
        tuple(int(c) for c in counts), score, p_value, status,
    )  # fmt: skip


def key_features() -> tuple[str, ...]:
    """DRIFT_KEY_FEATURES as names, checked against the schema so a typo fails loudly."""
    names = tuple(n.strip() for n in get_settings().drift_key_features.split(",") if n.strip())
    unknown = sorted(set(names) - {*NUMERIC_FEATURES, *CATEGORICAL_FEATURES})
    if unknown:
        raise ValueError(f"DRIFT_KEY_FEATURES names no profiled feature: {', '.join(unknown)}")
    return names


@dataclass(frozen=True)
class Verdict:
    """The window's dataset-level verdict from its per-feature results."""

    decision: Literal["ok", "drift", "insufficient-data"]
    drift_share: float
    drifted: tuple[str, ...]
    key_drifted: tuple[str, ...]


def judge_dataset(rows: int, features: Sequence[FeatureDrift]) -> Verdict:
    """Drift when enough features drifted, or a key feature did; too few rows: no verdict."""
    settings = get_settings()
    drifted = tuple(f.name for f in features if f.status == "drift")
    key_drifted = tuple(name for name in drifted if name in key_features())
    share = len(drifted) / len(features) if features else 0.0
    if rows < settings.drift_min_rows:
        decision = "insufficient-data"
    elif share >= settings.drift_share_threshold or key_drifted:
        decision = "drift"
    else:
        decision = "ok"
    return Verdict(decision, share, drifted, key_drifted)


# -- the report --------------------------------------------------------------------------


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
    html_path: Path | None = None
    mlflow_run_id: str | None = None

    @property
    def decision(self) -> str:
        """'ok', 'drift' or 'insufficient-data', as stored."""
        return self.verdict.decision

    @property
    def alarm(self) -> bool:
        """Drifted in DRIFT_PERSISTENCE_WINDOWS consecutive windows, ending with this one."""
        return (
            self.decision == "drift"
            and self.consecutive >= get_settings().drift_persistence_windows
        )


def store_report(
    connection: Connection,
    kind: Literal["drift", "performance"],
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


def check(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    model_version: str | None = None,
    url: str | None = None,
    *,
    profile: Mapping[str, Any] | None = None,
    now: datetime | str | None = None,
) -> DriftReport:
    """Check the window's traffic of the champion (or `model_version`) for data drift.

    With `profile` (tests, offline use) MLflow is not asked and nothing is logged there;
    `model_version` is then required.
    """
    if profile is None:
        reference = load_reference(model_version)
    elif model_version is None:
        raise ValueError("pass model_version together with profile")
    else:
        from mlops_platform import registry

        reference = Reference(registry.model_name(), model_version, profile)
    return check_reference(reference, resolve_window(start, end, now), url)


def check_reference(reference: Reference, window: Window, url: str | None = None) -> DriftReport:
    """Check one window against a reference, store the report, write and log its HTML."""
    specs = bucket_specs(reference.profile)
    rows, counts = count_window(specs, reference.model_name, reference.model_version, window, url)
    judged = [judge_feature(spec, counts[spec.name]) for spec in specs]
    features, prediction = tuple(judged[:-1]), judged[-1]
    verdict = judge_dataset(rows, features)
    with db.transaction(url) as connection:
        consecutive = consecutive_drift(
            connection, reference.model_name, reference.model_version, window,
            verdict.decision == "drift",
        )  # fmt: skip
        stats = {
            "features": {f.name: f.as_dict() for f in features},
            "prediction": prediction.as_dict(),
            "drifted": list(verdict.drifted),
            "key_drifted": list(verdict.key_drifted),
            "consecutive_drift_windows": consecutive,
            "reference_run_id": reference.run_id,
            "reference_base_dt": reference.profile.get("base_dt"),
        }
        report_id = store_report(
            connection, "drift", reference.model_name, reference.model_version, window,
            rows, stats, verdict.drift_share, verdict.decision,
        )  # fmt: skip
    report = DriftReport(
        report_id, reference.model_name, reference.model_version, window, rows,
        features, prediction, verdict, consecutive,
    )  # fmt: skip
    html_path = write_html(report, reference)
    run_id = log_to_mlflow(report, reference, html_path) if reference.run_id else None
    return replace(report, html_path=html_path, mlflow_run_id=run_id)


# -- HTML report and MLflow --------------------------------------------------------------


def bar_charts(features: Sequence[FeatureDrift]) -> list[str]:
    """Reference against current shares per bucket, one base64 PNG per feature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One figure with a fixed layout, redrawn per feature: tight_layout and new figures
    # would triple the time (about 1 s for all features this way).
    figure = plt.figure(figsize=(6.4, 2.8))
    axes = figure.add_axes((0.09, 0.32, 0.89, 0.58))
    charts = []
    for feature in features:
        axes.clear()
        positions = np.arange(len(feature.buckets))
        axes.bar(positions - 0.2, feature.reference, 0.4, label="reference (training)")
        axes.bar(positions + 0.2, feature.current, 0.4, label="current window")
        axes.set_xticks(positions, feature.buckets, rotation=30, ha="right", fontsize=7)
        axes.set_ylabel("share")
        axes.set_title(f"{feature.name}: PSI {feature.psi:.3f} ({feature.status})", fontsize=9)
        axes.legend(fontsize=7)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=72)
        charts.append(base64.b64encode(buffer.getvalue()).decode())
    plt.close(figure)
    return charts


def render_html(report: DriftReport, reference: Reference) -> str:
    """A self-contained page: the verdict, a table of every feature, and their bar charts."""
    settings = get_settings()
    verdict = report.verdict
    everything = (*report.features, report.prediction)
    rows = "".join(
        f"<tr class='{f.status}'><td>{html.escape(f.name)}</td><td>{f.kind}</td>"
        f"<td>{f.psi:.4f}</td><td>{'' if f.p_value is None else f'{f.p_value:.2g}'}</td>"
        f"<td>{f.status}</td></tr>"
        for f in everything
    )
    charts = "".join(
        f"<figure><img alt='{html.escape(f.name)}' src='data:image/png;base64,{chart}'></figure>"
        for f, chart in zip(everything, bar_charts(everything), strict=True)
    )
    facts = {
        "model": f"{report.model_name} v{report.model_version}",
        "reference": f"training run {reference.run_id or '(given profile)'},"
        f" snapshot {reference.profile.get('base_dt', '?')}",
        "window": report.window.label(),
        "rows": f"{report.rows:,}",
        "decision": report.decision + (" (alarm)" if report.alarm else ""),
        "drift share": f"{verdict.drift_share:.0%}"
        f" (threshold {settings.drift_share_threshold:.0%})",
        "drifted": ", ".join(verdict.drifted) or "none",
        "key features drifted": ", ".join(verdict.key_drifted) or "none",
        "thresholds": f"PSI warn {settings.drift_psi_warn}, alert {settings.drift_psi_alert};"
        f" chi-square p < {settings.drift_chi2_p_value}; at least {settings.drift_min_rows} rows",
    }
    summary = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Drift report {report.report_id}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}"
        "tr.drift{background:#fdd}tr.warn{background:#ffd}figure{display:inline-block;margin:4px}"
        f"</style></head><body><h1>Data drift report {report.report_id}</h1>"
        f"<table>{summary}</table><h2>Features</h2><table><tr><th>feature</th><th>kind</th>"
        f"<th>PSI</th><th>chi-square p</th><th>status</th></tr>{rows}</table>"
        f"<h2>Reference against current</h2>{charts}</body></html>"
    )


def write_html(report: DriftReport, reference: Reference) -> Path:
    """Write the HTML report under MLOPS_DATA_DIR/reports; one file per model and window."""
    directory = get_settings().mlops_data_dir / "reports"
    directory.mkdir(parents=True, exist_ok=True)
    name = SAFE_FILE_PART.sub(
        "_",
        f"drift_{report.model_name}_v{report.model_version}"
        f"_{report.window.start:%Y%m%dT%H%M%S}_{report.window.end:%Y%m%dT%H%M%S}",
    )
    path = directory / f"{name}.html"
    path.write_text(render_html(report, reference), encoding="utf-8")
    return path


def log_to_mlflow(report: DriftReport, reference: Reference, html_path: Path) -> str:
    """Log the report in a monitoring run beside the champion's run; its run id.

    Re-checking a window logs into the same run (found by its report id tag).
    """
    client = _mlflow_client()
    tags = {
        "monitoring_kind": "drift",
        "monitoring_report_id": str(report.report_id),
        "model_name": report.model_name,
        "model_version": report.model_version,
        "window_start": report.window.start.isoformat(),
        "window_end": report.window.end.isoformat(),
    }
    # Report ids restart with a new database; the window tags keep runs apart then.
    existing = client.search_runs(
        [reference.experiment_id],
        filter_string=" and ".join(f"tags.{key} = '{value}'" for key, value in tags.items()),
        max_results=1,
    )
    if existing:
        run_id = existing[0].info.run_id
    else:
        run_id = client.create_run(
            reference.experiment_id,
            run_name=f"drift v{report.model_version} {report.window.label()}",
            tags={**tags, "champion_run_id": reference.run_id},
        ).info.run_id
    from mlflow.entities import Metric, RunTag

    at = int(time.time() * 1_000)
    values = {"rows": report.rows, "drift_share": report.verdict.drift_share}
    values |= {f"psi_{f.name}": f.psi for f in (*report.features, report.prediction)}
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), at, 0) for key, value in values.items()],
        tags=[RunTag("decision", report.decision)],
    )
    client.log_artifact(run_id, str(html_path))
    client.set_terminated(run_id)
    return run_id


def format_drift_table(report: DriftReport) -> Table:
    """Every checked feature with its PSI, p-value and status; the verdict in the title."""
    verdict = report.verdict
    title = (
        f"Drift {report.model_name} v{report.model_version}, {report.window.label()}:"
        f" {report.decision.upper()}{' (alarm)' if report.alarm else ''}"
        f" — {report.rows:,} rows, {verdict.drift_share:.0%} of features drifted"
    )
    caption = f"report {report.report_id}; drifted: {', '.join(verdict.drifted) or 'none'}"
    if report.html_path:
        caption += f"; HTML: {report.html_path}"
    table = Table(title=title, caption=caption, title_justify="left")
    for column in ("feature", "kind", "PSI", "chi² p", "status"):
        table.add_column(column, justify="right" if column in ("PSI", "chi² p") else "left")
    colours = {"ok": "green", "warn": "yellow", "drift": "red"}
    for feature in (*report.features, report.prediction):
        table.add_row(
            feature.name,
            feature.kind,
            f"{feature.psi:.4f}",
            "" if feature.p_value is None else f"{feature.p_value:.2g}",
            f"[{colours[feature.status]}]{feature.status}[/]",
        )
    return table
