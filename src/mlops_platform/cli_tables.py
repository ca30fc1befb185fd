"""Rich tables for the `mlops` command line: how results look, kept out of domain logic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from mlops_platform.config import get_settings
from mlops_platform.schema import CREDIT_SCORES

if TYPE_CHECKING:
    from mlops_platform.monitoring.decision import Decision
    from mlops_platform.monitoring.drift import DriftReport
    from mlops_platform.monitoring.performance import PerformanceReport
    from mlops_platform.monitoring.reports import StoredReport
    from mlops_platform.monitoring.runs import VersionSeries
    from mlops_platform.monitoring.shadow import PairedComparison
    from mlops_platform.registry import Deployment, GateDecision, ModelStatus

STATUS_COLOURS = {"ok": "green", "warn": "yellow", "drift": "red"}


def facts_table(title: str, rows: Sequence[tuple[str, object]]) -> Table:
    """Label and value pairs; integers with thousands separators."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    return table


# -- the registry ------------------------------------------------------------------------


def gate_table(decision: GateDecision) -> Table:
    """Champion versus candidate metrics, the checks, and the verdict."""
    verdict = (
        "PROMOTED to champion" if decision.promoted
        else "PASSED, in shadow (challenger)" if decision.in_shadow
        else "REJECTED (challenger)"
    )  # fmt: skip
    champion_label = (
        f"champion v{decision.previous_champion}" if decision.previous_champion else "champion"
    )
    table = Table(
        title=f"Gate: version {decision.version} {verdict}",
        caption="; ".join(decision.reasons),
        title_justify="left",
    )
    table.add_column("metric", style="bold")
    table.add_column(champion_label, justify="right")
    table.add_column(f"candidate v{decision.version}", justify="right")
    table.add_column("change", justify="right")
    champion = decision.champion_metrics or {}
    for metric, value in decision.candidate_metrics.items():
        old = champion.get(metric)
        table.add_row(
            metric,
            "—" if old is None else f"{old:.4g}",
            f"{value:.4g}",
            "—" if old is None else f"{value - old:+.4g}",
        )
    for check, passed in decision.checks.items():
        table.add_row(check, "", "[green]pass[/]" if passed else "[red]fail[/]", "")
    return table


def status_table(model: ModelStatus) -> Table:
    """One row per version: aliases, age, lineage and test metrics."""
    metric = f"test_{get_settings().gate_metric}"
    table = Table(title=f"Registered model {model.name}", title_justify="left")
    for column in ("version", "aliases", "created (UTC)", "base_dt", "trigger", metric, "gate"):
        table.add_column(column, justify="right" if column in ("version", metric) else "left")
    for version in model.versions:
        score = version.metrics.get(metric)
        table.add_row(
            version.version,
            ", ".join(version.aliases),
            version.created_at.strftime("%Y-%m-%d %H:%M"),
            version.lineage.get("base_dt", ""),
            version.lineage.get("trigger_reason", ""),
            "" if score is None else f"{score:.4f}",
            version.gate.get("gate.decision", ""),
        )
    return table


def history_table(history: Sequence[Deployment]) -> Table:
    """The deployments history, newest first."""
    table = Table(title="Deployments", title_justify="left")
    for column in ("when", "action", "version", "previous", "actor", "reason"):
        table.add_column(column)
    for row in history:
        table.add_row(
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.action,
            row.version,
            row.previous_version or "",
            escape(row.actor),  # free text: "[/]" in a reason must print, not parse
            escape(row.reason),
        )
    return table


# -- monitoring --------------------------------------------------------------------------


def drift_table(report: DriftReport) -> Table:
    """Every checked feature with its statistics and status; the verdict in the title."""
    from mlops_platform.monitoring.statistics import STATISTICS, formatted

    verdict = report.verdict
    share = f"{verdict.drift_share:.0%} of features{' by importance' * verdict.weighted}"
    title = (
        f"Drift {report.model_name} v{report.model_version}, {report.window.label()}:"
        f" {report.decision.upper()}{' (alarm)' if report.alarm else ''}"
        f" — {report.rows:,} rows, {share} drifted"
    )
    caption = f"report {report.report_id}; drifted: {', '.join(verdict.drifted) or 'none'}"
    if verdict.severe:
        caption += f"; severe: {', '.join(verdict.severe)}"
    if report.html_path:
        caption += f"; HTML: {report.html_path}"
    table = Table(title=title, caption=caption, title_justify="left")
    table.add_column("feature")
    table.add_column("kind")
    for statistic in STATISTICS:
        table.add_column(statistic.title, justify="right")
    table.add_column("status")
    for feature in (*report.features, report.prediction):
        table.add_row(
            feature.name,
            feature.kind,
            *(formatted(feature.scores, statistic) for statistic in STATISTICS),
            f"[{STATUS_COLOURS[feature.status]}]{feature.status}[/]",
        )
    return table


def performance_table(report: PerformanceReport) -> Table:
    """One row per model version: labelled rows, live metrics, test macro-F1, verdict."""
    from mlops_platform.monitoring.performance import MATCHING_RULE

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


def shadow_table(comparison: PairedComparison) -> Table:
    """Champion and challenger side by side on the same labelled requests, and the verdict."""
    table = Table(
        title=f"Shadow: champion v{comparison.champion_version} against challenger"
        f" v{comparison.challenger_version}, {comparison.labelled:,} labelled requests"
        f" {comparison.window.label()}",
        caption=escape(comparison.note),
        title_justify="left",
    )
    for column in ("metric", f"champion v{comparison.champion_version}",
                   f"challenger v{comparison.challenger_version}", "change"):  # fmt: skip
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in ("accuracy", "macro_f1", *(f"recall_{score}" for score in CREDIT_SCORES)):
        old, new = comparison.champion[key], comparison.challenger[key]
        table.add_row(key, f"{old:.4f}", f"{new:.4f}", f"{new - old:+.4f}")
    table.add_row("right only by this model", f"{comparison.champion_only:,}",
                  f"{comparison.challenger_only:,}", "")  # fmt: skip
    table.add_row("McNemar p-value", "", f"{comparison.p_value:.3g}", "")
    checks = ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in comparison.checks.items())
    table.add_row("checks", "", checks, "")
    table.add_row("decision", "", comparison.decision, f"report {comparison.report_id}")
    return table


def estimate_table(estimates: Sequence[StoredReport]) -> Table:
    """Per window and version: estimated and realised accuracy and macro-F1 side by side."""
    table = Table(
        title="Accuracy estimated from calibrated probabilities (CBPE), and realised",
        caption="realised: the same predictions' labels, once they landed; concept drift"
        " shows only there",
        title_justify="left",
    )
    columns = ("window", "version", "predictions", "accuracy est.", "accuracy realised",
               "macro-F1 est.", "macro-F1 realised", "test macro-F1", "labelled",
               "decision", "report")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("window", "decision") else "right")
    for report in estimates:
        estimated, realised = report.stats["metrics"], report.stats["realised"]
        actual = realised["metrics"] or {}
        baseline = report.stats["baseline_test_macro_f1"]
        table.add_row(
            report.window.label(),
            report.model_version,
            f"{report.row_count:,}",
            f"{estimated['accuracy']:.4f}",
            f"{actual['accuracy']:.4f}" if actual else "—",
            f"{estimated['macro_f1']:.4f}",
            f"{actual['macro_f1']:.4f}" if actual else "—",
            "—" if baseline is None else f"{baseline:.4f}",
            f"{realised['labelled']:,}",
            report.decision,
            str(report.report_id),
        )
    return table


def decision_table(decision: Decision) -> Table:
    """The decision, its reason and the reports it rests on."""
    colour = {"retrain": "red", "ok": "green", "insufficient-data": "yellow"}[decision.action]
    table = facts_table(
        f"Monitoring decision for {decision.model_name} v{decision.model_version},"
        f" {decision.window.label()}",
        [
            ("action", f"[{colour}]{decision.action}[/]"),
            ("reason", decision.reason or ""),
            ("report", "" if decision.report_id is None else str(decision.report_id)),
            ("note", decision.note),
            ("drift report", str(decision.drift_report_id)),
            ("performance report", str(decision.performance_report_id or "")),
            ("triggered run", decision.triggered_run or ""),
        ],
    )
    table.columns[1].justify = "left"
    return table


def series_table(experiment: str, link: str, versions: Sequence[VersionSeries]) -> Table:
    """Each version's monitoring run in MLflow, one row per window: the charted values."""
    keys = sorted({key for version in versions for key in version.series})
    table = Table(
        title=f"Quality over time in MLflow: experiment {experiment}, one run per version",
        caption=f"charts: {link}",
        title_justify="left",
    )
    for column in ("version", "run", "window end (UTC)", *keys):
        table.add_column(column, justify="right" if column in keys else "left")
    for version in versions:
        ends = sorted({end for points in version.series.values() for end in points})
        for end in ends:
            table.add_row(
                f"v{version.model_version}",
                version.run_id,
                f"{end:%Y-%m-%d %H:%M:%S}",
                *(
                    f"{version.series[key][end]:.4g}" if end in version.series[key] else "—"
                    for key in keys
                ),
            )
    return table
