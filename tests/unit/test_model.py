from datetime import date

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier
from sklearn.metrics import log_loss

from mlops_platform.data.generator import GeneratorConfig, generate_months
from mlops_platform.model import (
    CATEGORICAL_POSITIONS,
    MODEL_COLUMNS,
    CreditScoreModel,
    classification_metrics,
    model_frame,
    model_row,
)
from mlops_platform.schema import CATEGORICAL_FEATURES, CREDIT_SCORES, FEATURE_NAMES


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    month = next(
        generate_months(GeneratorConfig(customers=1_500, months=1, start=date(2025, 1, 1)))
    )
    return month.features.merge(month.labels, on=["customer_id", "month"])


@pytest.fixture(scope="module")
def fitted(labelled: pd.DataFrame) -> CreditScoreModel:
    classifier = CatBoostClassifier(
        iterations=40, verbose=0, thread_count=2, allow_writing_files=False,
        cat_features=list(CATEGORICAL_POSITIONS), random_seed=0,
    )  # fmt: skip
    classifier.fit(model_frame(labelled), labelled["credit_score"])
    known = {c: labelled[c].dropna().unique().tolist() for c in CATEGORICAL_FEATURES}
    return CreditScoreModel.from_classifier(classifier, known)


def records(frame: pd.DataFrame) -> list[dict]:
    features = frame[list(FEATURE_NAMES)]
    return features.astype(object).where(features.notna(), None).to_dict("records")


def test_record_path_and_frame_path_give_the_same_probabilities(labelled, fitted) -> None:
    sample = labelled.head(300)
    np.testing.assert_allclose(
        fitted.predict_records(records(sample)), fitted.predict_proba(sample)
    )


def test_loan_list_becomes_counts_and_missing_categories_a_marker() -> None:
    record = dict.fromkeys(FEATURE_NAMES)
    record.update(type_of_loan="Auto Loan,Payday Loan,Auto Loan", age=30)
    row = dict(zip(MODEL_COLUMNS, model_row(record), strict=True))
    assert row["loans_auto_loan"] == 2 and row["loans_payday_loan"] == 1
    assert row["occupation"] == "missing"
    assert np.isnan(row["annual_income"])
    assert model_frame(pd.DataFrame([record])).iloc[0].to_dict().keys() == row.keys()


def test_probabilities_follow_the_schema_class_order(labelled, fitted) -> None:
    probabilities = fitted.predict_proba(labelled)
    predicted = np.array(CREDIT_SCORES)[probabilities.argmax(axis=1)]
    native = fitted.classifier.predict(model_frame(labelled)).ravel()
    assert (predicted == native).all()


def test_unseen_categories_are_named_per_record(fitted) -> None:
    known = dict.fromkeys(FEATURE_NAMES) | {"occupation": "Engineer", "credit_mix": "Good"}
    astronaut = known | {"occupation": "Astronaut"}
    stranger = astronaut | {"credit_mix": "Excellent", "payment_of_min_amount": "Maybe"}

    assert fitted.unseen_categories([known, astronaut, stranger, known]) == [
        [], ["occupation"], ["occupation", "credit_mix", "payment_of_min_amount"], [],
    ]  # fmt: skip


def test_metrics_agree_with_sklearn_on_label_order(labelled, fitted) -> None:
    probabilities = fitted.predict_proba(labelled)
    metrics = classification_metrics(labelled["credit_score"], probabilities)
    expected = log_loss(
        labelled["credit_score"], fitted.classifier.predict_proba(model_frame(labelled))
    )
    assert metrics["log_loss"] == pytest.approx(expected)
    assert metrics["log_loss"] < 0.6
    assert set(metrics) == {"accuracy", "macro_f1", "log_loss", "f1_Good", "f1_Standard", "f1_Poor"}
