"""Live accuracy from late labels and the retrain decision, on a real MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from mlops_platform import db, drift, monitoring, traffic
from mlops_platform.config import get_settings
from mlops_platform.drift import Window
from mlops_platform.schema import CREDIT_SCORES
from tests.integration.test_drift import (
    CUSTOMERS,
    FULL_DRIFT_FROM,
    LOGGED_AT,
    MONTH,
    START,
    log_traffic,
    train_reference,
)
from tests.unit.test_monitoring import classification_summary_of

HOUR = timedelta(hours=1)
# Labels of MONTH arrive 3 to 40 days after it ends; this window sees all of them.
LABEL_WINDOW = Window(datetime(2026, 2, 1), datetime(2026, 3, 15))


@pytest.fixture(scope="module")
def trained():
    return train_reference()


@pytest.fixture(autouse=True)
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def deliver(url: str, scenario: str = "none") -> pd.DataFrame:
    """Labels of MONTH arrive in credit_labels; returns them."""
    drift_from = FULL_DRIFT_FROM if scenario != "none" else None
    traffic.deliver_labels(CUSTOMERS, MONTH, scenario, start=START, drift_from=drift_from, url=url)
    return traffic.traffic_month(
        CUSTOMERS, MONTH, scenario, start=START, drift_from=drift_from
    ).labels


def report_count(url: str) -> int:
    with db.get_engine(url).connect() as connection:
        return connection.execute(text("SELECT COUNT(*) FROM drift_reports")).scalar()


def test_live_accuracy_matches_labels_by_customer_and_month(store_url: str, trained) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT)
    # Keyless predictions in the window can never be matched; they are only counted.
    keyless = log_traffic(store_url, model, LABEL_WINDOW.start, count=40)
    with db.transaction(store_url) as connection:
        connection.execute(
            text("UPDATE prediction_log SET customer_id = NULL WHERE created_at >= :start"),
            {"start": LABEL_WINDOW.start},
        )
    # Predictions made after the window ended are not judged in it.
    log_traffic(store_url, model, LABEL_WINDOW.end, model_version="2", count=200)
    labels = deliver(store_url)
    cut = datetime(2026, 2, 20)

    report = monitoring.performance(
        LABEL_WINDOW.start, cut, store_url, baselines={"1": reference.test_metrics["macro_f1"]}
    )

    features = traffic.traffic_month(CUSTOMERS, MONTH, start=START).features
    predicted = np.array(CREDIT_SCORES)[model.predict_proba(features).argmax(axis=1)]
    arrived = labels["observed_at"] < cut
    expected = classification_summary_of(labels["credit_score"][arrived], predicted[arrived])
    [live] = report.versions
    assert (live.model_version, live.labelled) == ("1", int(arrived.sum()))
    assert live.unmatchable == keyless.records
    for name, value in expected.items():
        assert live.metrics[name] == pytest.approx(value), name
    assert sum(day["labelled"] for day in live.daily.values()) == live.labelled
    assert report.report_id == live.report_id


def test_concept_drift_moves_no_feature_but_degrades_accuracy_once_labels_arrive(
    store_url: str, trained
) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, "concept")
    traffic_window = Window(LOGGED_AT, LOGGED_AT + timedelta(days=1))
    covariates = drift.check_reference(reference, traffic_window, store_url)
    assert (covariates.decision, covariates.verdict.drifted) == ("ok", ())

    before = monitoring.decide(LABEL_WINDOW.start, LABEL_WINDOW.end, store_url, reference=reference)
    assert before.action == "insufficient-data"
    deliver(store_url, "concept")
    after = monitoring.decide(LABEL_WINDOW.start, LABEL_WINDOW.end, store_url, reference=reference)

    assert (after.action, after.reason) == ("retrain", "performance")
    assert after.report_id == after.performance_report_id
    live = monitoring.performance(
        LABEL_WINDOW.start, LABEL_WINDOW.end, store_url,
        baselines={"1": reference.test_metrics["macro_f1"]},
    ).version("1")  # fmt: skip
    assert live.decision == "degraded" and live.drop > get_settings().performance_tolerance


def test_decide_is_idempotent_for_a_window(store_url: str, trained) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, "covariate", count=600)
    window = (LOGGED_AT, LOGGED_AT + HOUR)
    first = monitoring.decide(*window, store_url, reference=reference)
    reports = report_count(store_url)
    monitoring.record_trigger(first.report_id, "retrain__run_1", store_url)
    again = monitoring.decide(*window, store_url, reference=reference)

    assert (first.action, first.reason, first.already_triggered) == ("retrain", "drift", False)
    assert (again.action, again.reason, again.report_id) == ("retrain", "drift", first.report_id)
    assert again.triggered_run == "retrain__run_1" and again.already_triggered
    assert report_count(store_url) == reports == 2  # one drift and one performance report


def test_a_retrain_trigger_holds_off_others_for_the_cooldown(store_url: str, trained) -> None:
    model, reference = trained
    cooldown = timedelta(hours=get_settings().retrain_cooldown_hours)
    windows = [
        (LOGGED_AT, LOGGED_AT + HOUR),
        (LOGGED_AT + cooldown / 2, LOGGED_AT + cooldown / 2 + HOUR),
        (LOGGED_AT + cooldown, LOGGED_AT + cooldown + HOUR),
    ]
    for start, _ in windows:
        log_traffic(store_url, model, start, "covariate", count=600)

    first = monitoring.decide(*windows[0], store_url, reference=reference)
    monitoring.record_trigger(first.report_id, "retrain__run_1", store_url)
    held = monitoring.decide(*windows[1], store_url, reference=reference)
    later = monitoring.decide(*windows[2], store_url, reference=reference)

    assert first.action == "retrain"
    assert held.action == "ok" and "cooldown" in held.note and "retrain__run_1" in held.note
    assert (later.action, later.reason) == ("retrain", "drift")


def test_recording_a_trigger_twice_keeps_the_first_time_and_unknown_reports_fail(
    store_url: str, trained
) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, count=600)
    report = drift.check_reference(reference, Window(LOGGED_AT, LOGGED_AT + HOUR), store_url)

    def triggered() -> tuple:
        with db.get_engine(store_url).connect() as connection:
            return connection.execute(
                text("SELECT triggered_run, triggered_at FROM drift_reports WHERE report_id = :i"),
                {"i": report.report_id},
            ).one()

    monitoring.record_trigger(report.report_id, "run_a", store_url)
    first = triggered()
    monitoring.record_trigger(report.report_id, "run_a", store_url)
    assert triggered() == first and first[0] == "run_a"
    with pytest.raises(LookupError, match="no drift report 999999"):
        monitoring.record_trigger(999_999, "run_b", store_url)
