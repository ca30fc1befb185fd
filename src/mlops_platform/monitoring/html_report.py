"""A drift report as one self-contained HTML page: verdict, statistics and bar charts."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlops_platform.config import get_settings
from mlops_platform.monitoring.statistics import STATISTICS, formatted

if TYPE_CHECKING:
    from mlops_platform.monitoring.drift import DriftReport, FeatureDrift
    from mlops_platform.monitoring.reference import Reference

SAFE_FILE_PART = re.compile(r"[^A-Za-z0-9_.-]")


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
    headers = "".join(f"<th>{html.escape(s.title)}</th>" for s in STATISTICS)
    rows = "".join(
        f"<tr class='{f.status}'><td>{html.escape(f.name)}</td><td>{f.kind}</td>"
        + "".join(f"<td>{formatted(f.scores, s)}</td>" for s in STATISTICS)
        + f"<td>{f.status}</td></tr>"
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
        "drift share": f"{verdict.drift_share:.0%}{' by importance' * verdict.weighted}"
        f" (threshold {settings.drift_share_threshold:.0%})",
        "drifted": ", ".join(verdict.drifted) or "none",
        "key features drifted": ", ".join(verdict.key_drifted) or "none",
        "severe shifts": ", ".join(verdict.severe) or "none",
        "thresholds": f"PSI warn {settings.drift_psi_warn}, alert {settings.drift_psi_alert},"
        f" severe {settings.drift_psi_severe}; chi-square p < {settings.drift_chi2_p_value};"
        f" at least {settings.drift_min_rows} rows",
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
        f"{headers}<th>status</th></tr>{rows}</table>"
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
