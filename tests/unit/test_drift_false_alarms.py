"""False-alarm rate: clean traffic from fresh populations against a training profile.

Counts are made in pandas with the profile's own bucket rule, the same buckets the SQL
scan counts (an integration test checks the two agree), so many seeds stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_platform.data.generator import risk_score, scores_from_risk
from mlops_platform.monitoring import drift
from mlops_platform.schema import CREDIT_SCORES
from mlops_platform.traffic import traffic_month
from mlops_platform.training import reference_profile, split_by_customer

START = date(2025, 1, 1)
TRAFFIC_MONTH = date(2026, 1, 1)
SEEDS = range(100, 125)
WINDOW_ROWS = 600


def frame_counts(
    profile: Mapping[str, Any], frame: pd.DataFrame, predicted: np.ndarray
) -> dict[str, np.ndarray]:
    """Bucket counts per feature as `drift.count_window` makes them, counted in pandas."""
    counts = {}
    for spec in drift.bucket_specs(profile):
        if spec.kind == "prediction":
            counts[spec.name] = np.array([(predicted == c).sum() for c in CREDIT_SCORES])
            continue
        values = frame[spec.name]
        present = values.dropna()
        if spec.kind == "numeric":
            edges = profile["numeric"][spec.name]["edges"]
            bins = np.searchsorted(edges, present.astype(float).to_numpy(), side="left")
            found = np.bincount(bins, minlength=len(edges) + 1)
        else:
            categories = list(spec.buckets[:-2])
            found = np.array(
                [(present == c).sum() for c in categories] + [(~present.isin(categories)).sum()]
            )
        counts[spec.name] = np.append(found, values.isna().sum())
    return counts


def rule_predictions(frame: pd.DataFrame) -> np.ndarray:
    """The generator's own noiseless rule stands in for a model's predicted classes."""
    return scores_from_risk(risk_score(frame))


def verdict_for(profile: Mapping[str, Any], frame: pd.DataFrame) -> tuple[drift.Verdict, float]:
    """The dataset verdict for a window holding `frame`, and its largest feature PSI."""
    counts = frame_counts(profile, frame, rule_predictions(frame))
    judged = [drift.judge_feature(s, counts[s.name]) for s in drift.bucket_specs(profile)]
    features = judged[:-1]
    return drift.judge_dataset(len(frame), features), max(f.psi for f in features)


@pytest.fixture(scope="module")
def profile() -> dict[str, Any]:
    """The reference of a model trained on 12 months of the seed-42 population."""
    from mlops_platform.data.generator import GeneratorConfig, generate_months

    months = generate_months(GeneratorConfig(customers=3_000, months=12, start=START))
    train = split_by_customer(pd.concat([m.features for m in months], ignore_index=True))["train"]
    return reference_profile(train, rule_predictions(train), TRAFFIC_MONTH)


def test_clean_traffic_of_new_populations_raises_no_alarm(profile) -> None:
    results = [
        verdict_for(
            profile, traffic_month(WINDOW_ROWS, TRAFFIC_MONTH, seed=seed, start=START).features
        )
        for seed in SEEDS
    ]
    alarms = sum(verdict.decision == "drift" for verdict, _ in results)
    worst = max(psi for _, psi in results)
    print(
        f"false alarms: {alarms}/{len(results)} windows of {WINDOW_ROWS} rows; max PSI {worst:.3f}"
    )
    assert alarms == 0
    assert all(verdict.drifted == () for verdict, _ in results)


def test_the_same_counting_flags_full_covariate_drift(profile) -> None:
    drifted = traffic_month(
        WINDOW_ROWS, TRAFFIC_MONTH, "covariate", seed=SEEDS[0], start=START,
        drift_from=date(2025, 11, 1),
    ).features  # fmt: skip
    verdict, _ = verdict_for(profile, drifted)
    assert verdict.decision == "drift"
    assert {"delay_from_due_date", "num_of_delayed_payment"} <= set(verdict.key_drifted)


def test_one_severe_shift_alarms_though_few_features_drifted(profile, monkeypatch) -> None:
    """Issue 13: two thirds into the covariate ramp one feature moved far, too few others."""
    from mlops_platform.config import get_settings

    # Without key features, only the severe shift can raise this alarm.
    monkeypatch.setenv("DRIFT_KEY_FEATURES", "")
    get_settings.cache_clear()
    try:
        ramping = traffic_month(
            WINDOW_ROWS, TRAFFIC_MONTH, "covariate", seed=SEEDS[0], start=START,
            drift_from=date(2025, 12, 1),
        ).features  # fmt: skip
        verdict, worst = verdict_for(profile, ramping)
    finally:
        get_settings.cache_clear()
    print(f"ramping drift: share {verdict.drift_share:.2f}, max PSI {worst:.3f}")
    assert verdict.drift_share < get_settings().drift_share_threshold
    assert verdict.severe and verdict.decision == "drift"
