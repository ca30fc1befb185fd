"""The label-free accuracy estimate on a real MariaDB and a real trained model.

Each simulated month's traffic is logged into its own one-day window; the estimate is
stored before its labels arrive, and again with the realised accuracy once they have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from mlops_platform import db, traffic
from mlops_platform.config import get_settings
from mlops_platform.monitoring import estimate, reports
from mlops_platform.monitoring.performance import classification_summary
from mlops_platform.monitoring.windows import Window
from mlops_platform.schema import CREDIT_SCORES
from tests.integration.test_drift import CUSTOMERS, START, log_traffic
from tests.unit.test_monitoring import classification_summary_of

pytestmark = pytest.mark.usefixtures("private_data_dir")

# The drift ramps up from DRIFT_FROM and is at full strength three months later.
DRIFT_FROM = date(2025, 11, 1)
MONTHS = (date(2025, 10, 1), date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1))
# Largest |estimated - realised| measured on these windows: 0.023 (accuracy), 0.029
# (macro-F1), at 1,500 predictions a window (see the README); allowed per window:
TOLERANCE = 0.035
DAY = timedelta(days=1)
LABELS_LANDED = datetime(2027, 1, 1)  # after every simulated label arrived


def window_of(month: date) -> Window:
    start = datetime.combine(month, datetime.min.time()) + timedelta(days=9)
    return Window(start, start + DAY)


def log_month(url: str, model, month: date, scenario: str, model_version: str = "1") -> None:
    """The month's simulated traffic, predicted by the model, logged from its window's start."""
    traffic.simulate(
        CUSTOMERS, month, scenario, target="log", start=START, drift_from=DRIFT_FROM,
        model=model, model_version=model_version, at=window_of(month).start, url=url,
    )  # fmt: skip


@dataclass(frozen=True)
class Pair:
    """One window's stored estimate and the realised value settled on it."""

    window: Window
    estimated: dict[str, float]
    realised: dict[str, float]
    labelled: int

    def error(self, metric: str) -> float:
        return self.estimated[metric] - self.realised[metric]


def run_scenario(url: str, model, reference, scenario: str) -> list[Pair]:
    """Log each month in its window, estimate it, deliver its labels, then settle it."""
    pairs = []
    for month in MONTHS:
        window = window_of(month)
        log_month(url, model, month, scenario)
        before = estimate.estimate_reference(reference, window, url)
        assert before.labelled == 0 and before.realised is None
        traffic.deliver_labels(
            CUSTOMERS, month, scenario, start=START, drift_from=DRIFT_FROM, url=url
        )
        assert estimate.settle(window, LABELS_LANDED, url) == [before.report_id]
        stored = reports.load_reports([before.report_id], url)[before.report_id]
        assert stored.stats["metrics"] == before.metrics  # the estimate itself is kept
        realised = stored.stats["realised"]
        pairs.append(Pair(window, before.metrics, realised["metrics"], realised["labelled"]))
    for pair in pairs:
        print(
            f"{scenario} {pair.window.start:%Y-%m-%d}: accuracy estimated"
            f" {pair.estimated['accuracy']:.4f} realised {pair.realised['accuracy']:.4f};"
            f" macro-F1 estimated {pair.estimated['macro_f1']:.4f} realised"
            f" {pair.realised['macro_f1']:.4f} ({pair.labelled} labelled)"
        )
    return pairs


def test_the_sql_aggregates_equal_the_estimate_on_the_rows(store_url: str, trained) -> None:
    model, reference = trained
    month = MONTHS[-1]
    window = window_of(month)
    log_month(store_url, model, month, "covariate")
    log_traffic(store_url, model, window.start, model_version="2", count=100)  # not judged
    log_traffic(store_url, model, window.end, count=100)  # after the window

    result = estimate.estimate_reference(reference, window, store_url)

    features = traffic.traffic_month(
        CUSTOMERS, month, "covariate", start=START, drift_from=DRIFT_FROM
    ).features
    temperature = reference.profile["calibration"]["temperature"]
    probabilities = estimate.calibrated(model.predict_proba(features), temperature)
    expected = classification_summary(estimate.expected_confusion(probabilities))
    assert result.rows == CUSTOMERS and result.temperature == temperature
    assert result.metrics == pytest.approx(expected, abs=1e-9)
    [stored] = reports.load_reports([result.report_id], store_url).values()
    assert (stored.kind, stored.model_version, stored.row_count) == ("estimate", "1", CUSTOMERS)
    assert stored.stats["metrics"] == pytest.approx(expected, abs=1e-9)
    assert stored.stats["baseline_test_macro_f1"] == reference.test_metrics["macro_f1"]
    assert stored.decision == result.decision
    assert result.labelled == 0 and stored.stats["realised"]["metrics"] is None

    # Once labels land, the same report gets the realised accuracy of these predictions:
    # only labels seen before `labels_until` count.
    traffic.deliver_labels(
        CUSTOMERS, month, "covariate", start=START, drift_from=DRIFT_FROM, url=store_url
    )
    labels = traffic.traffic_month(
        CUSTOMERS, month, "covariate", start=START, drift_from=DRIFT_FROM
    ).labels
    cut = labels["observed_at"].sort_values().iloc[len(labels) // 2]
    settled = estimate.estimate_reference(reference, window, store_url, labels_until=cut)
    arrived = (labels["observed_at"] < cut).to_numpy()
    predicted = probabilities.argmax(axis=1)
    rows = features[["customer_id"]].assign(predicted=np.array(CREDIT_SCORES)[predicted])
    rows = rows.merge(labels[["customer_id", "credit_score"]][arrived], on="customer_id")
    assert settled.report_id == result.report_id and settled.labelled == len(rows)
    assert settled.realised == pytest.approx(
        classification_summary_of(rows["credit_score"], rows["predicted"])
    )


def test_under_covariate_drift_the_estimate_tracks_realised_accuracy(
    store_url: str, trained
) -> None:
    model, reference = trained
    results = run_scenario(store_url, model, reference, "covariate")

    errors = np.array([[r.error("accuracy"), r.error("macro_f1")] for r in results])
    print(f"covariate: largest |estimated - realised| {np.abs(errors).max(axis=0)}")
    assert all(r.labelled == CUSTOMERS for r in results)
    assert np.abs(errors).max() <= TOLERANCE
    # The drift lowers macro-F1, and the estimate moves the same way without any label.
    realised = [r.realised["macro_f1"] for r in results]
    estimated = [r.estimated["macro_f1"] for r in results]
    assert realised[0] - realised[-1] > 0.05 and estimated[0] - estimated[-1] > 0.02


def test_concept_drift_is_invisible_to_the_estimate(store_url: str, trained) -> None:
    model, reference = trained
    results = run_scenario(store_url, model, reference, "concept")

    first, last = results[0], results[-1]
    # P(x) does not move, so the estimate stays put while the realised accuracy falls.
    assert abs(last.estimated["accuracy"] - first.estimated["accuracy"]) < 0.02
    assert first.realised["accuracy"] - last.realised["accuracy"] > 0.1
    assert last.error("accuracy") > 0.1


def test_the_migration_adds_the_estimate_kind(store_url: str) -> None:
    with db.get_engine(store_url).connect() as connection:
        column = connection.execute(
            text(
                "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
                " DATABASE() AND TABLE_NAME = 'drift_reports' AND COLUMN_NAME = 'kind'"
            )
        ).scalar_one()
    assert "'estimate'" in column


def test_the_cli_estimates_a_window_and_settles_the_one_whose_labels_landed(
    use_store: str, trained, use_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from mlops_platform import cli
    from tests.integration.test_monitoring import registered

    model, reference = trained
    reference = registered(model, reference)  # in MLflow, as training leaves it
    early, current = window_of(MONTHS[0]), window_of(MONTHS[-1])
    monkeypatch.setenv("ESTIMATE_SETTLE_DAYS", str((current.end - early.end).days))
    get_settings.cache_clear()
    log_month(use_store, model, MONTHS[0], "covariate", model_version=reference.model_version)
    first = estimate.estimate_reference(reference, early, use_store)
    traffic.deliver_labels(
        CUSTOMERS, MONTHS[0], "covariate", start=START, drift_from=DRIFT_FROM, url=use_store
    )
    log_month(use_store, model, MONTHS[-1], "covariate", model_version=reference.model_version)

    monkeypatch.setattr(cli.console, "width", 250)  # one table row a line
    result = CliRunner().invoke(
        cli.main,
        ["monitor", "estimate", "--start", current.start.isoformat(),
         "--end", current.end.isoformat(), "--model-version", reference.model_version],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    with db.get_engine(use_store).connect() as connection:
        stored = connection.execute(
            text(
                "SELECT report_id, window_end, JSON_VALUE(stats, '$.realised.labelled')"
                " FROM drift_reports WHERE kind = 'estimate' ORDER BY window_end"
            )
        ).all()
    (early_id, _, early_labelled), (current_id, end, current_labelled) = stored
    assert early_id == first.report_id and int(early_labelled) == CUSTOMERS
    assert end == current.end and int(current_labelled) == 0
    settled = reports.load_reports([early_id], use_store)[early_id].stats["realised"]
    assert settled["labels_until"] == current.end.isoformat()
    # Both windows in the table, the settled one with its realised accuracy beside the estimate.
    rows = [line for line in result.output.splitlines() if "UTC" in line]
    assert len(rows) == 2 and str(current_id) in rows[0] and str(early_id) in rows[1]
    assert f"{settled['metrics']['accuracy']:.4f}" in rows[1] and "1,500" in rows[1]
