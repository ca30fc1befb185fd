from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_platform.data.generator import (
    DIRT,
    GeneratorConfig,
    csv_rows,
    customers_frame,
    generate_months,
)
from mlops_platform.schema import CREDIT_SCORES, FEATURE_NAMES, FEATURES

START = date(2025, 1, 1)


def frames(config: GeneratorConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    months = list(generate_months(config))
    return (
        pd.concat([m.features for m in months], ignore_index=True),
        pd.concat([m.labels for m in months], ignore_index=True),
    )


def test_same_config_gives_identical_data_and_another_seed_does_not() -> None:
    config = GeneratorConfig(customers=300, months=3, start=START, seed=7)
    first_features, first_labels = frames(config)
    second_features, second_labels = frames(config)
    pd.testing.assert_frame_equal(first_features, second_features)
    pd.testing.assert_frame_equal(first_labels, second_labels)
    other, _ = frames(GeneratorConfig(customers=300, months=3, start=START, seed=8))
    assert not other["annual_income"].equals(first_features["annual_income"])


def test_customers_persist_and_evolve_plausibly() -> None:
    features, _ = frames(GeneratorConfig(customers=500, months=6, start=START))
    per_customer = features.groupby("customer_id")
    assert per_customer.size().eq(6).all()
    history = per_customer["credit_history_age"].agg(lambda s: s.iloc[-1] - s.iloc[0])
    assert history.eq(5).all()
    income_change = per_customer["annual_income"].agg(lambda s: s.iloc[-1] / s.iloc[0] - 1)
    assert income_change.abs().max() < 0.1


def test_every_value_is_inside_the_schema_domain() -> None:
    features, labels = frames(GeneratorConfig(customers=2_000, months=2, start=START))
    assert list(features.columns) == ["customer_id", "month", *FEATURE_NAMES]
    for feature in FEATURES:
        values = features[feature.name].dropna()
        if not feature.nullable:
            assert values.size == len(features), feature.name
        if feature.kind == "numeric":
            assert values.between(feature.low, feature.high).all(), feature.name
        elif feature.kind == "categorical":
            assert set(values) <= set(feature.domain), feature.name
        else:
            loans = {loan for joined in values for loan in joined.split(",")}
            assert loans <= set(feature.domain)
    assert set(labels["credit_score"]) == set(CREDIT_SCORES)


def test_class_shares_are_realistic_with_standard_most_common() -> None:
    _, labels = frames(GeneratorConfig(customers=5_000, months=3, start=START))
    shares = labels["credit_score"].value_counts(normalize=True)
    assert shares.idxmax() == "Standard"
    assert 0.45 < shares["Standard"] < 0.62
    assert 0.22 < shares["Poor"] < 0.36
    assert 0.12 < shares["Good"] < 0.25


def test_labels_arrive_after_their_month_closes() -> None:
    _, labels = frames(GeneratorConfig(customers=1_000, months=2, start=START))
    month_end = pd.to_datetime(labels["month"]) + pd.offsets.MonthBegin(1)
    delay = labels["observed_at"] - month_end
    assert delay.min() >= pd.Timedelta(days=3)
    assert delay.max() <= pd.Timedelta(days=40)


def test_covariate_drift_moves_inputs_only_from_the_drift_month() -> None:
    base = dict(customers=3_000, months=6, start=START, seed=3)
    clean, _ = frames(GeneratorConfig(**base))
    drifted, _ = frames(GeneratorConfig(**base, drift="covariate", drift_from=date(2025, 4, 1)))
    before = clean["month"] < date(2025, 4, 1)
    pd.testing.assert_frame_equal(clean[before], drifted[before])
    late = clean["month"] == date(2025, 6, 1)
    for column in ("annual_income", "outstanding_debt", "delay_from_due_date"):
        assert drifted.loc[late, column].mean() > 1.15 * clean.loc[late, column].mean(), column


def test_concept_drift_changes_labels_but_not_inputs() -> None:
    base = dict(customers=3_000, months=6, start=START, seed=3)
    clean_features, clean_labels = frames(GeneratorConfig(**base))
    drift_features, drift_labels = frames(
        GeneratorConfig(**base, drift="concept", drift_from=date(2025, 4, 1))
    )
    pd.testing.assert_frame_equal(clean_features, drift_features)
    late = clean_labels["month"] == date(2025, 6, 1)
    agreement = (
        clean_labels.loc[late, "credit_score"] == drift_labels.loc[late, "credit_score"]
    ).mean()
    assert agreement < 0.75


def test_drift_needs_a_start_month_and_start_must_be_a_month() -> None:
    with pytest.raises(ValueError, match="drift_from"):
        GeneratorConfig(customers=1, months=1, start=START, drift="concept")
    with pytest.raises(ValueError, match="first day"):
        GeneratorConfig(customers=1, months=1, start=date(2025, 1, 2))


def test_dirty_csv_rows_carry_the_known_kinds_of_dirt() -> None:
    config = GeneratorConfig(customers=2_000, months=1, start=START, dirty_rate=0.2)
    month = next(generate_months(config))
    rows = csv_rows(config, month, customers_frame(config))
    clean = csv_rows(
        GeneratorConfig(customers=2_000, months=1, start=START), month, customers_frame(config)
    )
    changed = (rows != clean).any(axis=1)
    assert 0.15 < changed.mean() < 0.25
    dirt_values = {template.format(value="") for _, template, _ in DIRT}
    assert "!@9#%8" in set(rows["payment_behaviour"])
    assert rows["age"].astype(str).str.endswith("_").any()
    assert dirt_values & set(rows["monthly_balance"].astype(str))
    assert np.isin(["name", "ssn"], rows.columns).all()
