"""Drift statistics and verdicts on hand-made counts: buckets, PSI, chi-square, windows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from mlops_platform.config import get_settings
from mlops_platform.errors import InvalidInput
from mlops_platform.monitoring import drift, statistics, windows
from mlops_platform.monitoring.drift import FeatureDrift
from mlops_platform.monitoring.windows import Window

PROFILE = {
    "base_dt": "2026-01-01",
    "numeric": {"age": {"edges": [20.0, 30.0, 40.0], "shares": [0.1, 0.4, 0.3, 0.2],
                        "missing_share": 0.0},
                "monthly_balance": {"edges": [], "shares": [1.0], "missing_share": 0.5}},
    "categorical": {"credit_mix": {"shares": {"Good": 0.5, "Bad": 0.25, "Standard": 0.25},
                                   "missing_share": 0.2}},
    "predictions": {"shares": {"Good": 0.2, "Standard": 0.5, "Poor": 0.3}},
}  # fmt: skip


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch):
    """Set monitoring settings for one test; the cached settings are reloaded."""

    def apply(**values: object) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key.upper(), str(value))
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


def specs_by_name() -> dict[str, drift.BucketSpec]:
    return {spec.name: spec for spec in drift.bucket_specs(PROFILE)}


def feature(name: str, psi: float, kind: str = "numeric") -> FeatureDrift:
    status = "drift" if psi >= 0.2 else "warn" if psi >= 0.1 else "ok"
    return FeatureDrift(name, kind, ("a", "b"), (0.5, 0.5), (1, 1), {"psi": psi}, status)


def test_numeric_buckets_follow_the_profile_rule_and_add_a_missing_bucket() -> None:
    age = specs_by_name()["age"]
    assert age.buckets == ("≤ 20", "(20, 30]", "(30, 40]", "> 40", "missing")
    assert age.reference == pytest.approx((0.1, 0.4, 0.3, 0.2, 0.0))
    assert age.aggregates == (
        "COUNT(f_age)", "SUM(f_age <= :age_0)", "SUM(f_age <= :age_1)", "SUM(f_age <= :age_2)",
    )  # fmt: skip
    assert age.parameters == {"age_0": 20.0, "age_1": 30.0, "age_2": 40.0}
    # 100 rows, 90 present; cumulative counts at the edges 10, 40, 70.
    assert age.counts([90, 10, 40, 70], rows=100).tolist() == [10, 30, 30, 20, 10]


def test_a_feature_without_edges_has_one_bin_and_missing_shares_scale_the_reference() -> None:
    balance = specs_by_name()["monthly_balance"]
    assert balance.buckets == ("all", "missing")
    assert balance.reference == pytest.approx((0.5, 0.5))
    assert balance.counts([7], rows=10).tolist() == [7, 3]


def test_categorical_buckets_add_unseen_and_missing() -> None:
    mix = specs_by_name()["credit_mix"]
    assert mix.buckets == ("Bad", "Good", "Standard", "unseen", "missing")
    assert mix.reference == pytest.approx((0.2, 0.4, 0.2, 0.0, 0.2))
    # 50 present of 60 rows: 10 Bad, 20 Good, 15 Standard, so 5 unseen.
    assert mix.counts([50, 10, 20, 15], rows=60).tolist() == [10, 20, 15, 5, 10]


def test_predicted_classes_are_counted_per_class() -> None:
    predicted = specs_by_name()["predicted_class"]
    assert predicted.buckets == ("Good", "Standard", "Poor")
    assert predicted.counts([3, 4, 5], rows=12).tolist() == [3, 4, 5]


def test_psi_is_zero_for_equal_shares_and_finite_for_an_empty_bucket() -> None:
    assert statistics.psi([0.25] * 4, [0.25] * 4) == pytest.approx(0.0)
    moved = statistics.psi([0.5, 0.5, 0.0], [0.3, 0.5, 0.2])
    assert 0.5 < moved < 5 and np.isfinite(moved)
    # Counts are shares of their total.
    assert statistics.psi([0.5, 0.5, 0.0], [30, 50, 20]) == pytest.approx(moved)
    # Symmetric in its arguments.
    assert statistics.psi([0.6, 0.4], [0.4, 0.6]) == pytest.approx(
        statistics.psi([0.4, 0.6], [0.6, 0.4])
    )


def test_chi_square_accepts_a_sample_of_the_reference_and_rejects_a_shifted_one() -> None:
    reference = [0.2, 0.5, 0.3]
    assert statistics.chi_square_p(reference, [200, 500, 300]) > 0.9
    assert statistics.chi_square_p(reference, [300, 400, 300]) < 1e-6
    assert statistics.chi_square_p(reference, [0, 0, 0]) is None


def test_jensen_shannon_distance_is_zero_for_equal_shares_and_one_for_disjoint() -> None:
    assert statistics.js_distance([0.25] * 4, [25] * 4) == pytest.approx(0.0, abs=1e-9)
    assert statistics.js_distance([1.0, 0.0], [0, 7]) == pytest.approx(1.0)
    assert statistics.js_distance([0.5, 0.5], [0, 0]) is None
    # Numeric features get it in their report entry; categoricals do not.
    age = drift.judge_feature(specs_by_name()["age"], np.array([0, 100, 300, 600, 0]))
    mix = drift.judge_feature(specs_by_name()["credit_mix"], np.array([0, 600, 200, 0, 200]))
    assert 0 < age.as_dict()["js_distance"] < 1 and "js_distance" not in mix.scores


def test_numeric_status_comes_from_the_psi_thresholds() -> None:
    age = specs_by_name()["age"]
    same = drift.judge_feature(age, np.array([100, 400, 300, 200, 0]))
    moved = drift.judge_feature(age, np.array([0, 100, 300, 600, 0]))
    assert (same.status, same.p_value) == ("ok", None)
    assert moved.status == "drift" and moved.psi >= get_settings().drift_psi_alert


def test_a_categorical_needs_a_significant_chi_square_to_drift() -> None:
    mix = specs_by_name()["credit_mix"]
    # The same large shift in shares, seen in 10 rows and in 1,000 rows.
    few = drift.judge_feature(mix, np.array([0, 6, 2, 0, 2]))
    many = drift.judge_feature(mix, np.array([0, 600, 200, 0, 200]))
    assert few.psi == pytest.approx(many.psi) and few.psi >= get_settings().drift_psi_alert
    assert few.p_value > get_settings().drift_chi2_p_value and few.status == "warn"
    assert many.status == "drift"


def test_too_few_rows_is_insufficient_data_not_drift() -> None:
    features = [feature("age", 0.9), feature("annual_income", 0.9)]
    verdict = drift.judge_dataset(get_settings().drift_min_rows - 1, features)
    assert verdict.decision == "insufficient-data"
    assert verdict.drifted == ("age", "annual_income")


def test_dataset_drift_needs_the_drift_share_or_a_key_feature(settings_env) -> None:
    settings_env(drift_share_threshold=0.5, drift_key_features="outstanding_debt")
    rows = 10_000
    calm = [feature(f"f{i}", 0.01) for i in range(8)]
    half = drift.judge_dataset(rows, [feature("age", 0.3), feature("annual_income", 0.0)])
    assert half.decision == "drift"  # 1 of 2 features is a 50% share
    assert drift.judge_dataset(rows, [feature("age", 0.3), *calm]).decision == "ok"
    key = drift.judge_dataset(rows, [feature("outstanding_debt", 0.3), *calm])
    assert (key.decision, key.key_drifted) == ("drift", ("outstanding_debt",))
    warned = drift.judge_dataset(rows, [feature("outstanding_debt", 0.15), *calm])
    assert warned.decision == "ok" and warned.drift_share == 0


def test_one_severe_shift_is_drift_on_its_own(settings_env) -> None:
    """Issue 13: one feature at PSI 0.79 among calm ones was reported "ok"."""
    settings_env(drift_key_features="outstanding_debt")
    calm = [feature(f"f{i}", 0.01) for i in range(15)]
    severe = drift.judge_dataset(10_000, [feature("annual_income", 0.79), *calm])
    assert severe.drift_share < get_settings().drift_share_threshold
    assert (severe.decision, severe.severe) == ("drift", ("annual_income",))
    below = get_settings().drift_psi_severe - 0.01
    assert drift.judge_dataset(10_000, [feature("annual_income", below), *calm]).decision == "ok"
    # A severe PSI that the chi-square does not back (status warn) is no alarm.
    capped = FeatureDrift("credit_mix", "categorical", ("a",), (1.0,), (9,), {"psi": 0.9}, "warn")
    assert drift.judge_dataset(10_000, [capped, *calm]).decision == "ok"


def test_the_drift_share_is_weighted_by_feature_importance() -> None:
    rows = 10_000
    features = [feature("age", 0.3), *(feature(f"f{i}", 0.01) for i in range(3))]
    plain = drift.judge_dataset(rows, features)
    assert (plain.drift_share, plain.weighted, plain.decision) == (0.25, False, "ok")
    important = drift.judge_dataset(rows, features, {"age": 60, "f0": 20, "f1": 10, "f2": 10})
    assert important.drift_share == pytest.approx(0.6) and important.weighted
    assert important.decision == "drift"
    minor = drift.judge_dataset(rows, features, {"age": 5, "f0": 45, "f1": 25, "f2": 25})
    assert minor.drift_share == pytest.approx(0.05) and minor.decision == "ok"


def test_a_misspelt_key_feature_fails_loudly(settings_env) -> None:
    settings_env(drift_key_features="outstanding_debt, delay_from_due")
    with pytest.raises(InvalidInput, match="delay_from_due"):
        drift.key_features()


def test_window_defaults_end_at_the_logical_time_and_span_the_configured_hours(
    settings_env,
) -> None:
    settings_env(drift_window_hours=6)
    window = windows.resolve_window(now="2026-03-01T12:00:00+02:00")
    assert window == Window(datetime(2026, 3, 1, 4), datetime(2026, 3, 1, 10))
    given = windows.resolve_window("2026-03-01", datetime(2026, 3, 2, tzinfo=UTC))
    assert given == Window(datetime(2026, 3, 1), datetime(2026, 3, 2))
    with pytest.raises(InvalidInput, match="start before it ends"):
        windows.resolve_window(start="2026-03-02", end="2026-03-01")


def test_without_a_logical_time_the_window_ends_at_the_current_hour() -> None:
    window = windows.resolve_window()
    assert window.end.minute == window.end.second == window.end.microsecond == 0
    assert timedelta(0) <= datetime.now(UTC).replace(tzinfo=None) - window.end < timedelta(hours=1)
    assert windows.utc_naive(datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))) == (
        datetime(2026, 1, 1)
    )


def test_window_slices_cover_the_window_exactly() -> None:
    window = Window(datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 0, 7))
    parts = window.slices(4)
    assert parts[0].start == window.start and parts[-1].end == window.end
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert len(Window(datetime(2026, 1, 1), datetime(2026, 1, 2)).slices(8)) == 8
