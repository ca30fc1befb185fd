"""Snapshot validation on a real MariaDB: each rule fails on purpose, results gate training."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime

import pandas as pd
import pytest
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.data.loader import upsert_frame
from mlops_platform.features import build_snapshot
from mlops_platform.schema import CREDIT_SCORES, FEATURES
from mlops_platform.validation import (
    Failure,
    SnapshotNotValidated,
    ValidationReport,
    require_validated_snapshot,
    validate_snapshot,
)

BASE = date(2025, 1, 1)
ROWS = 30
# Every feature at a valid value: the low end of its range, or the first of its domain.
VALID = {f.name: f.domain[0] if f.domain else f.low for f in FEATURES}

Edit = Callable[[pd.DataFrame, pd.DataFrame], None]


def build(url: str, edit: Edit | None = None) -> int:
    """Load ROWS valid customers for December 2024 (after `edit`), snapshot them; the build id."""
    customers = [f"C{index:03d}" for index in range(ROWS)]
    features = pd.DataFrame(
        [{"customer_id": c, "month": date(2024, 12, 1), **VALID, "source": "test"}
         for c in customers]
    )  # fmt: skip
    labels = pd.DataFrame(
        {
            "customer_id": customers,
            "month": date(2024, 12, 1),
            "credit_score": [CREDIT_SCORES[i % 3] for i in range(ROWS)],
            "observed_at": datetime(2024, 12, 20),
        }
    )
    if edit:
        edit(features, labels)
    with db.transaction(url) as connection:
        upsert_frame(connection, "customer_features_monthly", features)
        upsert_frame(connection, "credit_labels", labels)
    return build_snapshot(BASE, lookback_months=1, url=url).build_id


def execute(url: str, statement: str) -> None:
    with db.transaction(url) as connection:
        connection.execute(text(statement))


def only(report: ValidationReport, rule: str) -> Failure:
    """The one failure of the report, checked to be of `rule`."""
    assert not report.passed
    assert [failure.rule for failure in report.failures] == [rule], report.failures
    return report.failures[0]


def stored(url: str) -> list[tuple[int, bool, int, list[dict[str, str]]]]:
    with db.get_engine(url).connect() as connection:
        rows = connection.execute(
            text(
                "SELECT build_id, passed, row_count, failures FROM snapshot_validations"
                " ORDER BY validation_id"
            )
        ).all()
    return [(build_id, bool(passed), count, json.loads(f)) for build_id, passed, count, f in rows]


def test_clean_snapshot_passes_and_is_stored(store_url: str) -> None:
    build_id = build(store_url)

    report = validate_snapshot("2025-01-01", store_url, min_rows=ROWS)

    assert report == ValidationReport(BASE, build_id, True, ROWS, ())
    assert stored(store_url) == [(build_id, True, ROWS, [])]
    assert require_validated_snapshot(BASE, store_url) == build_id


def test_missing_snapshot(store_url: str) -> None:
    report = validate_snapshot(BASE, store_url)

    failure = only(report, "exists")
    assert failure.column == "training_snapshots"
    assert "2025-01-01" in failure.expected
    assert report.build_id is None
    assert stored(store_url) == []  # there is no build to record it against


def test_empty_snapshot(store_url: str) -> None:
    build_snapshot(BASE, url=store_url)  # nothing loaded, so nothing qualifies

    report = validate_snapshot(BASE, store_url, min_rows=1)

    assert [(f.rule, f.observed) for f in report.failures] == [
        ("min_rows", "0 rows"), ("classes", "no Good, Standard, Poor rows (present: no rows)")
    ]  # fmt: skip
    assert stored(store_url)[0][:3] == (report.build_id, False, 0)


def test_injection_is_rejected(store_url: str) -> None:
    build(store_url)
    injection = "2025-01-01' OR 1=1 --"

    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        validate_snapshot(injection, store_url)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        require_validated_snapshot(injection, store_url)
    assert stored(store_url) == []


def test_min_rows_from_settings_or_argument(store_url: str) -> None:
    build_id = build(store_url)

    failure = only(validate_snapshot(BASE, store_url), "min_rows")  # the default is 1000

    assert str(failure) == "training_snapshots: min_rows — observed 30 rows, expected >= 1000 rows"
    assert not validate_snapshot(BASE, store_url, min_rows=ROWS + 1).passed
    assert validate_snapshot(BASE, store_url, min_rows=ROWS).passed
    assert [(b, passed) for b, passed, _, _ in stored(store_url)] == [
        (build_id, False), (build_id, False), (build_id, True)
    ]  # fmt: skip


def test_null_rate(store_url: str) -> None:
    def nulls(features: pd.DataFrame, _: pd.DataFrame) -> None:
        features.loc[:9, "occupation"] = None  # 10 of 30
        features.loc[:2, "monthly_balance"] = None  # 3 of 30

    build(store_url, nulls)

    failure = only(validate_snapshot(BASE, store_url, min_rows=1), "null_rate")
    assert (failure.column, failure.observed) == ("occupation", "33.3% (10 of 30 rows)")
    assert failure.expected == "<= 20.0%"
    strict = validate_snapshot(BASE, store_url, min_rows=1, max_null_rate=0.05)
    assert {(f.column, f.rule) for f in strict.failures} == {
        ("occupation", "null_rate"), ("monthly_balance", "null_rate")
    }  # fmt: skip


def test_null_in_a_non_nullable_feature(store_url: str) -> None:
    build(store_url)
    execute(store_url, "ALTER TABLE training_snapshots MODIFY age SMALLINT NULL")
    execute(store_url, "UPDATE training_snapshots SET age = NULL WHERE customer_id = 'C000'")

    failure = only(validate_snapshot(BASE, store_url, min_rows=1, max_null_rate=1), "null_rate")
    assert (failure.column, failure.expected) == ("age", "<= 0.0% (not nullable)")


def test_range(store_url: str) -> None:
    def out_of_range(features: pd.DataFrame, _: pd.DataFrame) -> None:
        features.loc[4, "annual_income"] = -5.0
        features.loc[5, "age"] = 150

    build(store_url, out_of_range)

    report = validate_snapshot(BASE, store_url, min_rows=1)
    assert [str(failure) for failure in report.failures] == [
        "age: range — observed max 150, expected <= 100",
        "annual_income: range — observed min -5.0, expected >= 1000",
    ]


def test_category_and_loan_type_domains(store_url: str) -> None:
    def unknown(features: pd.DataFrame, _: pd.DataFrame) -> None:
        features.loc[:2, "occupation"] = "Pilot"
        features.loc[3, "occupation"] = "doctor"  # a near miss is still unseen by the model
        features.loc[4:6, "type_of_loan"] = "Auto Loan, Space Loan"
        features.loc[7, "type_of_loan"] = "Payday Loan,Mortgage Loan, Not Specified"

    build(store_url, unknown)

    report = validate_snapshot(BASE, store_url, min_rows=1)
    assert [(f.column, f.rule) for f in report.failures] == [
        ("occupation", "domain"), ("type_of_loan", "domain")
    ]  # fmt: skip
    occupation, loans = report.failures
    assert occupation.observed == "2 unknown value(s) in 4 occurrences: 'Pilot' (3), 'doctor' (1)"
    assert occupation.expected.startswith("one of Accountant, Architect")
    assert loans.observed == "1 unknown value(s) in 3 occurrences: 'Space Loan' (3)"


def test_every_class_present(store_url: str) -> None:
    def only_good(_: pd.DataFrame, labels: pd.DataFrame) -> None:
        labels["credit_score"] = "Good"

    build(store_url, only_good)

    failure = only(validate_snapshot(BASE, store_url, min_rows=1), "classes")
    assert failure.column == "credit_score"
    assert failure.observed == "no Standard, Poor rows (present: Good 30)"


def test_schema_drift(store_url: str) -> None:
    build(store_url)
    execute(store_url, "ALTER TABLE training_snapshots ADD COLUMN extra INT")

    failure = only(validate_snapshot(BASE, store_url, min_rows=1), "schema")
    assert (failure.column, failure.observed) == ("extra", "unexpected column")

    execute(store_url, "ALTER TABLE training_snapshots DROP COLUMN extra, DROP COLUMN credit_mix")
    failure = only(validate_snapshot(BASE, store_url, min_rows=1), "schema")
    assert (failure.column, failure.observed) == ("credit_mix", "column missing")


def test_failures_are_stored_as_json(store_url: str) -> None:
    def bad(features: pd.DataFrame, _: pd.DataFrame) -> None:
        features.loc[0, "annual_income"] = -5.0

    build_id = build(store_url, bad)
    report = validate_snapshot(BASE, store_url, min_rows=1)

    assert stored(store_url) == [
        (build_id, False, ROWS, [{"column": "annual_income", "rule": "range",
                                  "observed": "min -5.0", "expected": ">= 1000"}])
    ]  # fmt: skip
    assert report.failures == (Failure("annual_income", "range", "min -5.0", ">= 1000"),)


def test_require_validated_snapshot(store_url: str) -> None:
    with pytest.raises(SnapshotNotValidated, match="no snapshot is built"):
        require_validated_snapshot(BASE, store_url)

    build_id = build(store_url)
    with pytest.raises(SnapshotNotValidated, match="never validated"):
        require_validated_snapshot(BASE, store_url)

    validate_snapshot(BASE, store_url)  # fails: fewer than 1000 rows
    failed = "failed validation: training_snapshots: min_rows — observed 30 rows"
    with pytest.raises(SnapshotNotValidated, match=failed):
        require_validated_snapshot(BASE, store_url)

    validate_snapshot(BASE, store_url, min_rows=1)  # the latest validation decides
    assert require_validated_snapshot("2025-01-01", store_url) == build_id

    # Rebuilding the same rows keeps the validated build; changed rows make a new one.
    assert build_snapshot(BASE, lookback_months=1, url=store_url).build_id == build_id
    assert require_validated_snapshot(BASE, store_url) == build_id
    execute(store_url, "UPDATE credit_labels SET credit_score = 'Good' WHERE customer_id = 'C001'")
    rebuilt = build_snapshot(BASE, lookback_months=1, url=store_url).build_id
    with pytest.raises(SnapshotNotValidated, match=f"rebuilt \\(now build {rebuilt}\\)"):
        require_validated_snapshot(BASE, store_url)

    validate_snapshot(BASE, store_url, min_rows=1)
    assert require_validated_snapshot(BASE, store_url) == rebuilt > build_id


def test_ensure_validated_snapshot_builds_validates_and_reuses(store_url: str) -> None:
    from mlops_platform.data.generator import GeneratorConfig, load_into_store
    from mlops_platform.validation import ensure_validated_snapshot

    load_into_store(GeneratorConfig(customers=400, months=4, start=date(2025, 1, 1)), store_url)
    built = ensure_validated_snapshot("2025-05-01", url=store_url)
    assert require_validated_snapshot("2025-05-01", store_url) == built
    assert ensure_validated_snapshot("2025-05-01", url=store_url) == built
    # Nothing changed since, so the rebuild hashes the same and reuses the validated build.
    assert ensure_validated_snapshot("2025-05-01", rebuild=True, url=store_url) == built


def test_ensure_validated_snapshot_raises_when_the_snapshot_fails(store_url: str) -> None:
    from mlops_platform.validation import ensure_validated_snapshot

    with pytest.raises(SnapshotNotValidated, match="min_rows"):
        ensure_validated_snapshot("2025-05-01", url=store_url)
