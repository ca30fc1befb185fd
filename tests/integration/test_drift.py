"""Data drift on a real MariaDB: stored feature columns, SQL counts, verdicts, reports."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier
from mlflow import MlflowClient
from sqlalchemy import text

from mlops_platform import db, registry, traffic
from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, generate_months
from mlops_platform.model import (
    CATEGORICAL_POSITIONS,
    CreditScoreModel,
    classification_metrics,
    model_frame,
)
from mlops_platform.monitoring import drift
from mlops_platform.monitoring.estimate import fit_calibration
from mlops_platform.monitoring.reference import REFERENCE_PROFILE, Reference
from mlops_platform.monitoring.windows import Window
from mlops_platform.schema import (
    CATEGORICAL_FEATURES,
    CREDIT_SCORES,
    FEATURE_NAMES,
    TARGET,
)
from mlops_platform.training import reference_profile, split_by_customer
from tests.unit.test_drift_false_alarms import frame_counts

pytestmark = pytest.mark.usefixtures("private_data_dir")

CUSTOMERS = 1_500
START = date(2025, 1, 1)
MONTH = date(2026, 1, 1)
FULL_DRIFT_FROM = date(2025, 11, 1)  # the ramp reaches full strength in MONTH
LOGGED_AT = datetime(2026, 1, 10)
DAY = timedelta(days=1)


def train_reference(model_version: str = "1") -> tuple[CreditScoreModel, Reference]:
    """A small model on 12 months of the population, with its profile and test metrics."""
    months = generate_months(GeneratorConfig(customers=CUSTOMERS, months=12, start=START))
    frame = pd.concat(
        [m.features.merge(m.labels, on=["customer_id", "month"]) for m in months],
        ignore_index=True,
    )
    splits = split_by_customer(frame)
    classifier = CatBoostClassifier(
        iterations=80, depth=5, cat_features=list(CATEGORICAL_POSITIONS), thread_count=2,
        random_seed=0, allow_writing_files=False, verbose=False,
    )  # fmt: skip
    classifier.fit(model_frame(splits["train"]), splits["train"][TARGET])
    known = {
        c: splits["train"][c].dropna().astype(str).unique().tolist() for c in CATEGORICAL_FEATURES
    }
    model = CreditScoreModel.from_classifier(classifier, known)
    predicted = np.array(CREDIT_SCORES)[model.predict_proba(splits["train"]).argmax(axis=1)]
    profile = json.loads(json.dumps(reference_profile(splits["train"], predicted, MONTH)))
    # As training does: the accuracy estimate's calibration, fitted on the validation split.
    profile["calibration"] = fit_calibration(
        splits["validation"][TARGET], model.predict_proba(splits["validation"])
    )
    test_metrics = classification_metrics(
        splits["test"][TARGET], model.predict_proba(splits["test"])
    )
    return model, Reference(registry.model_name(), model_version, profile, test_metrics)


def log_traffic(
    url: str, model: CreditScoreModel, at: datetime, scenario: str = "none", **options: Any
) -> traffic.TrafficResult:
    """Simulated traffic of MONTH written straight into prediction_log, from `at` on."""
    options.setdefault("drift_from", FULL_DRIFT_FROM if scenario != "none" else None)
    options.setdefault("model_version", "1")
    return traffic.simulate(
        CUSTOMERS, MONTH, scenario, target="log", start=START, model=model, at=at, url=url,
        **options,
    )  # fmt: skip


def day_window(at: datetime = LOGGED_AT) -> Window:
    return Window(at, at + DAY)


def report_rows(url: str) -> list[Any]:
    with db.get_engine(url).connect() as connection:
        return connection.execute(
            text("SELECT report_id, kind, window_start, window_end, decision FROM drift_reports")
        ).all()


def test_sql_counts_equal_pandas_counts_for_the_window_and_version_only(
    store_url: str, trained
) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT)
    log_traffic(store_url, model, LOGGED_AT, model_version="2", count=100)
    log_traffic(store_url, model, LOGGED_AT + DAY, count=100)
    features = traffic.traffic_month(CUSTOMERS, MONTH, start=START).features
    predicted = np.array(CREDIT_SCORES)[model.predict_proba(features).argmax(axis=1)]

    specs = drift.bucket_specs(reference.profile)
    rows, counts = drift.count_window(specs, reference.model_name, "1", day_window(), store_url)
    expected = frame_counts(reference.profile, features, predicted)
    assert rows == CUSTOMERS
    for spec in specs:
        assert counts[spec.name].tolist() == expected[spec.name].tolist(), spec.name


@pytest.mark.parametrize("seed", [3, 4])
def test_clean_traffic_raises_no_alarm(store_url: str, trained, seed: int) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, seed=seed)
    report = drift.check_reference(reference, day_window(), store_url)
    assert (report.decision, report.alarm, report.verdict.drifted) == ("ok", False, ())
    assert report.rows == CUSTOMERS and report.prediction.status != "drift"


def test_covariate_drift_raises_an_alarm_naming_the_changed_features(
    store_url: str, trained
) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, "covariate")
    report = drift.check_reference(reference, day_window(), store_url)
    flagged = {f.name for f in report.features if f.status != "ok"}
    # Inflation, more debt, later and more frequent late payments, more inquiries.
    changed = {
        "annual_income", "monthly_inhand_salary", "outstanding_debt", "interest_rate",
        "delay_from_due_date", "num_of_delayed_payment", "num_credit_inquiries",
        "total_emi_per_month", "amount_invested_monthly", "monthly_balance",
    }  # fmt: skip
    assert report.decision == "drift" and report.alarm
    assert {"delay_from_due_date", "num_of_delayed_payment"} <= set(report.verdict.key_drifted)
    assert {"annual_income", "outstanding_debt"} <= flagged
    assert flagged <= changed


def test_a_small_window_is_insufficient_data(store_url: str, trained) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, "covariate", count=100)
    report = drift.check_reference(reference, day_window(), store_url)
    assert (report.rows, report.decision, report.alarm) == (100, "insufficient-data", False)


def test_rechecking_a_window_updates_its_report_and_writes_a_self_contained_page(
    store_url: str, trained
) -> None:
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, count=600)
    first = drift.check_reference(reference, day_window(), store_url)
    log_traffic(store_url, model, LOGGED_AT + timedelta(hours=1), count=600)
    again = drift.check_reference(reference, day_window(), store_url)
    assert again.report_id == first.report_id and again.rows == 1_200
    [(_, kind, start, end, decision)] = report_rows(store_url)
    assert (kind, start, end, decision) == ("drift", LOGGED_AT, LOGGED_AT + DAY, "ok")

    page = again.html_path.read_text()
    assert again.html_path.parent == get_settings().mlops_data_dir / "reports"
    assert page.count("src='data:image/png;base64,") == len(again.features) + 1
    assert "http" not in page  # nothing to fetch: one file is the whole report


def test_drift_must_persist_for_the_configured_windows(
    store_url: str, trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFT_PERSISTENCE_WINDOWS", "2")
    get_settings.cache_clear()
    model, reference = trained
    log_traffic(store_url, model, LOGGED_AT, "covariate")
    log_traffic(store_url, model, LOGGED_AT + DAY, "covariate")
    first = drift.check_reference(reference, day_window(), store_url)
    second = drift.check_reference(reference, day_window(LOGGED_AT + DAY), store_url)
    assert (first.decision, first.consecutive, first.alarm) == ("drift", 1, False)
    assert (second.decision, second.consecutive, second.alarm) == ("drift", 2, True)


def test_the_champion_reference_comes_from_mlflow_and_the_report_is_logged_beside_it(
    store_url: str, trained, use_mlflow: str
) -> None:
    model, reference = trained
    with mlflow.start_run() as run:
        mlflow.log_dict(dict(reference.profile), REFERENCE_PROFILE)
        mlflow.log_metrics({f"test_{k}": v for k, v in reference.test_metrics.items()})
        info = model.log_to_mlflow(traffic.traffic_month(50, MONTH).features[list(FEATURE_NAMES)])
    version = registry.register(info.model_uri, run.info.run_id, {})
    MlflowClient().set_registered_model_alias(registry.model_name(), registry.CHAMPION, version)

    sent = traffic.simulate(
        CUSTOMERS, MONTH, target="log", start=START, at=LOGGED_AT, url=store_url
    )
    report = drift.check(end=LOGGED_AT + DAY, url=store_url)
    again = drift.check(now=(LOGGED_AT + DAY).isoformat() + "+00:00", url=store_url)

    assert sent.model_version == version == report.model_version
    assert (report.rows, report.decision) == (CUSTOMERS, "ok")
    assert again.mlflow_run_id == report.mlflow_run_id
    monitoring_run = MlflowClient().get_run(report.mlflow_run_id)
    assert monitoring_run.info.experiment_id != run.info.experiment_id  # not among training's
    assert monitoring_run.data.tags["model_version"] == version
    assert monitoring_run.data.metrics["volume/rows"] == CUSTOMERS
    [window] = MlflowClient().list_artifacts(report.mlflow_run_id, "windows")
    artifacts = [a.path for a in MlflowClient().list_artifacts(report.mlflow_run_id, window.path)]
    assert artifacts == [f"{window.path}/{report.html_path.name}"]
