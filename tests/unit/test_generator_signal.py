from datetime import date

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier

from mlops_platform.data.generator import GeneratorConfig, generate_months
from mlops_platform.schema import CATEGORICAL_FEATURES, FEATURE_NAMES

TEXT_LIKE = [*CATEGORICAL_FEATURES, "type_of_loan"]


def labelled(config: GeneratorConfig) -> pd.DataFrame:
    months = list(generate_months(config))
    features = pd.concat([m.features for m in months])
    labels = pd.concat([m.labels for m in months])
    return features.merge(labels, on=["customer_id", "month"])


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    inputs = frame[list(FEATURE_NAMES)].copy()
    inputs[TEXT_LIKE] = inputs[TEXT_LIKE].fillna("missing").astype(str)
    return inputs.astype({"num_of_delayed_payment": float, "num_credit_inquiries": float})


def test_a_quick_model_beats_the_majority_class_but_is_not_perfect() -> None:
    frame = labelled(GeneratorConfig(customers=2_000, months=3, start=date(2025, 1, 1), seed=11))
    customers = frame["customer_id"].unique()
    held_out = np.random.default_rng(0).choice(customers, len(customers) // 4, replace=False)
    is_test = frame["customer_id"].isin(held_out)
    model = CatBoostClassifier(
        iterations=150,
        depth=6,
        random_seed=0,
        verbose=0,
        thread_count=2,
        cat_features=TEXT_LIKE,
        allow_writing_files=False,
    )
    model.fit(model_inputs(frame[~is_test]), frame.loc[~is_test, "credit_score"])
    predicted = model.predict(model_inputs(frame[is_test])).ravel()
    actual = frame.loc[is_test, "credit_score"].to_numpy()
    accuracy = (predicted == actual).mean()
    majority = pd.Series(actual).value_counts(normalize=True).max()
    assert accuracy > majority + 0.2
    assert 0.72 < accuracy < 0.93
