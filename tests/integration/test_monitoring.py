"""Live accuracy from late labels and the retrain decision, on a real MariaDB."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sqlalchemy import text

from mlops_platform import db, registry, traffic
from mlops_platform.cli_tables import series_table
from mlops_platform.config import get_settings
from mlops_platform.errors import NotFound
from mlops_platform.monitoring import drift, estimate, performance, reports, runs
from mlops_platform.monitoring.decision import Decision, decide
from mlops_platform.monitoring.reference import REFERENCE_PROFILE, Reference
from mlops_platform.monitoring.windows import Window
from mlops_platform.schema import CREDIT_SCORES, FEATURE_NAMES
from tests.integration.test_drift import (
    CUSTOMERS,
    DAY,
    FULL_DRIFT_FROM,
    LOGGED_AT,
    MONTH,
    START,
    log_traffic,
)
from tests.unit.test_monitoring import classification_summary_of

pytestmark = pytest.mark.usefixtures("private_data_dir")

HOUR = timedelta(hours=1)
# Labels of MONTH arrive 3 to 40 days after it ends; this window sees all of them.
LABEL_WINDOW = Window(datetime(2026, 2, 1), datetime(2026, 3, 15))


def deliver(url: str, scenario: str = "none") -> pd.DataFrame:
    """Labels of MONTH arrive in credit_labels; returns them."""
    drift_from = FULL_DRIFT_FROM if scenario != "none" else None
    traffic.deliver_labels(CUSTOMERS, MONTH, scenario, start=START, drift_from=drift_from, url=url)
    return traffic.traffic_month(
        CUSTOMERS, MONTH, scenario, start=START, drift_from=drift_from
    ).labels


def check_and_decide(url: str, reference: Reference, start: datetime, end: datetime) -> Decision:
    """What the monitoring DAG does: both checks store reports, the decision reads them."""
    drift_report = drift.check_reference(reference, Window(start, end), url)
    version = reference.model_version
    live = performance.performance(
        start, end, url, baselines={version: reference.test_metrics["macro_f1"]}
    )
    return decide(drift_report.report_id, live.report_ids, url)


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

    report = performance.performance(
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
    assert report.report_ids == [live.report_id]


def test_concept_drift_moves_no_feature_but_degrades_accuracy_once_labels_arrive(
    store_url: str, trained
) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, "concept")
    traffic_window = Window(LOGGED_AT, LOGGED_AT + timedelta(days=1))
    covariates = drift.check_reference(reference, traffic_window, store_url)
    assert (covariates.decision, covariates.verdict.drifted) == ("ok", ())

    before = check_and_decide(store_url, reference, LABEL_WINDOW.start, LABEL_WINDOW.end)
    assert before.action == "insufficient-data" and before.performance_report_id is None
    deliver(store_url, "concept")
    after = check_and_decide(store_url, reference, LABEL_WINDOW.start, LABEL_WINDOW.end)

    assert (after.action, after.reason) == ("retrain", "performance")
    assert after.report_id == after.performance_report_id
    live = performance.performance(
        LABEL_WINDOW.start, LABEL_WINDOW.end, store_url,
        baselines={"1": reference.test_metrics["macro_f1"]},
    ).version("1")  # fmt: skip
    assert live.decision == "degraded" and live.drop > get_settings().performance_tolerance


def test_decide_is_idempotent_for_a_window(store_url: str, trained) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, "covariate", count=600)
    window = (LOGGED_AT, LOGGED_AT + HOUR)
    first = check_and_decide(store_url, reference, *window)
    stored = report_count(store_url)
    reports.record_trigger(first.report_id, "retrain__run_1", store_url)
    again = check_and_decide(store_url, reference, *window)

    assert (first.action, first.reason, first.already_triggered) == ("retrain", "drift", False)
    assert (again.action, again.reason, again.report_id) == ("retrain", "drift", first.report_id)
    assert again.triggered_run == "retrain__run_1" and again.already_triggered
    assert report_count(store_url) == stored == 1  # a drift report; no labels, no accuracy


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

    first = check_and_decide(store_url, reference, *windows[0])
    reports.record_trigger(first.report_id, "retrain__run_1", store_url)
    held = check_and_decide(store_url, reference, *windows[1])
    later = check_and_decide(store_url, reference, *windows[2])

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

    reports.record_trigger(report.report_id, "run_a", store_url)
    first = triggered()
    reports.record_trigger(report.report_id, "run_a", store_url)
    assert triggered() == first and first[0] == "run_a"
    with pytest.raises(NotFound, match="no drift report 999999"):
        reports.record_trigger(999_999, "run_b", store_url)


def test_the_decision_reads_the_stored_reports_and_computes_nothing_again(
    store_url: str, trained
) -> None:
    model, reference = trained
    deliver(store_url, "concept")
    log_traffic(store_url, model, LOGGED_AT)
    log_traffic(store_url, model, LOGGED_AT, model_version="2", count=600)
    window = Window(LOGGED_AT, LABEL_WINDOW.end)
    drift_report = drift.check_reference(reference, window, store_url)
    live = performance.performance(
        window.start, window.end, store_url,
        baselines={"1": reference.test_metrics["macro_f1"], "2": 0.0},
    )  # fmt: skip
    # With the log and the labels gone, only the stored reports can give the answer.
    with db.transaction(store_url) as connection:
        connection.execute(text("DELETE FROM prediction_log"))
        connection.execute(text("DELETE FROM credit_labels"))
    decision = decide(drift_report.report_id, live.report_ids, store_url)

    assert [v.model_version for v in live.versions] == ["1", "2"]
    assert (decision.action, decision.reason) == ("retrain", "performance")
    assert decision.performance_report_id == live.version("1").report_id  # not v2's
    assert decision.drift_report_id == drift_report.report_id
    with pytest.raises(NotFound, match="no report 999999"):
        decide(999_999, (), store_url)


def registered(model, reference: Reference) -> Reference:
    """The reference as training leaves it in MLflow: a run with profile and metrics, a version."""
    with mlflow.start_run() as run:
        mlflow.log_dict(dict(reference.profile), REFERENCE_PROFILE)
        mlflow.log_metrics({f"test_{k}": v for k, v in reference.test_metrics.items()})
        info = model.log_to_mlflow(traffic.traffic_month(50, MONTH).features[list(FEATURE_NAMES)])
    version = registry.register(info.model_uri, run.info.run_id, {})
    return replace(
        reference, model_name=registry.model_name(), model_version=version,
        run_id=run.info.run_id, experiment_id=run.info.experiment_id,
    )  # fmt: skip


def step_of(window: Window) -> int:
    return int(window.end.replace(tzinfo=UTC).timestamp())


def test_each_window_is_a_point_in_time_of_the_versions_monitoring_run(
    store_url: str, trained, use_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_MONITORING_EXPERIMENT", f"monitoring_{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    model, reference = trained
    reference = registered(model, reference)
    client = MlflowClient()
    days = [Window(LOGGED_AT + DAY * i, LOGGED_AT + DAY * (i + 1)) for i in range(3)]
    for window, scenario in zip(days, ["none", "covariate", "none"], strict=True):
        log_traffic(store_url, model, window.start, scenario, model_version="1")
    # A label-free estimate stored for the drifted window is logged with its numbers.
    with db.transaction(store_url) as connection:
        reports.store_report(
            connection, "estimate", reference.model_name, "1", days[1], CUSTOMERS,
            {"metrics": {"accuracy": 0.61, "macro_f1": 0.55}}, None, "ok",
        )  # fmt: skip

    checked = [drift.check_reference(reference, window, store_url) for window in days]
    again = drift.check_reference(reference, days[1], store_url)  # a re-run: same numbers
    deliver(store_url)
    live = performance.performance(LABEL_WINDOW.start, LABEL_WINDOW.end, store_url).version("1")

    assert [r.decision for r in checked] == ["ok", "drift", "ok"]
    run_id = checked[0].mlflow_run_id
    assert {r.mlflow_run_id for r in (*checked, again)} == {run_id}
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == get_settings().mlflow_monitoring_experiment
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.run_name == "monitoring v1"
    # Drift runs no longer share the training experiment.
    assert [r.info.run_id for r in client.search_runs([reference.experiment_id])] == [
        reference.run_id
    ]

    def history(key: str, run: str = run_id) -> dict[int, float]:
        points = client.get_metric_history(run, key)
        assert all(p.timestamp == p.step * 1_000 for p in points), key
        return {p.step: p.value for p in points}

    steps = [step_of(window) for window in days]
    share = history("drift/share")
    assert list(share) == steps  # one point per window: the re-run added none
    assert share[steps[1]] > max(share[steps[0]], share[steps[2]])  # drift, then recovery
    assert share[steps[1]] == checked[1].verdict.drift_share
    assert history("volume/rows") == dict.fromkeys(steps, CUSTOMERS)
    assert history("psi/delay_from_due_date")[steps[1]] > get_settings().drift_psi_alert
    for step in steps:
        mix = [history(f"prediction_share/{score}")[step] for score in CREDIT_SCORES]
        assert sum(mix) == pytest.approx(1.0)
    assert history("estimated/accuracy") == {steps[1]: 0.61}
    assert history("live/macro_f1") == {step_of(LABEL_WINDOW): live.metrics["macro_f1"]}
    assert history("live/labelled") == {step_of(LABEL_WINDOW): live.labelled}
    artifacts = client.list_artifacts(run_id, "windows")
    assert len(artifacts) == 3

    # More rows arrive late in the first window: its re-run replaces its points.
    log_traffic(store_url, model, days[0].start, model_version="1", count=100)
    rerun = drift.check_reference(reference, days[0], store_url)
    assert rerun.mlflow_run_id != run_id
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert history("volume/rows", rerun.mlflow_run_id) == {
        steps[0]: CUSTOMERS + 100,
        steps[1]: CUSTOMERS,
        steps[2]: CUSTOMERS,
    }
    assert list(history("drift/share", rerun.mlflow_run_id)) == steps
    assert history("live/macro_f1", rerun.mlflow_run_id) == {
        step_of(LABEL_WINDOW): live.metrics["macro_f1"]
    }
    assert len(client.list_artifacts(rerun.mlflow_run_id, "windows")) == 3
    # The estimate check logs its own point too (it may finish after the drift check).
    current, _ = estimate.check(days[2].start, days[2].end, "1", store_url)
    assert history("estimated/macro_f1", rerun.mlflow_run_id) == {
        steps[1]: 0.55,
        steps[2]: pytest.approx(current.metrics["macro_f1"]),
    }
    # What the demo prints: each version's run and its values per window.
    [series] = runs.version_series(["1", "2"])
    assert (series.model_version, series.run_id) == ("1", rerun.mlflow_run_id)
    ends = [window.end.replace(tzinfo=UTC) for window in days]
    assert series.series["drift/share"] == dict(zip(ends, share.values(), strict=True)) | {
        ends[0]: rerun.verdict.drift_share
    }
    table = series_table("monitoring", runs.over_time_link(), [series])
    assert table.row_count == 4  # three traffic windows and the label window
    assert runs.over_time_link().endswith("runs?viewStateShareKey=over-time")
