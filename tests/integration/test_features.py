"""Training snapshots on a real MariaDB: point-in-time correctness, idempotency, atomicity."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.data.loader import upsert_frame
from mlops_platform.features import (
    SNAPSHOT_SQL,
    SnapshotRebuilt,
    build_snapshot,
    read_snapshot,
)
from mlops_platform.schema import FEATURE_NAMES, FEATURES, TARGET

BASE = date(2025, 1, 1)
INJECTION = "2025-01-01' OR 1=1 --"
# Every feature at a valid value: the low end of its range, or the first of its domain.
VALID = {f.name: f.domain[0] if f.domain else f.low for f in FEATURES}


def features(keys: list[tuple[str, date]]) -> pd.DataFrame:
    """Valid feature rows for (customer, month) keys; annual_income tells the rows apart."""
    return pd.DataFrame(
        [
            {"customer_id": customer, "month": month, **VALID,
             "annual_income": 1_000.5 + index, "source": "test"}
            for index, (customer, month) in enumerate(keys)
        ]
    )  # fmt: skip


def labels(keys: list[tuple[str, date, datetime]], score: str = "Standard") -> pd.DataFrame:
    """Labels for (customer, month) keys, each observed at the given time."""
    return pd.DataFrame(
        [
            {"customer_id": customer, "month": month, "credit_score": score, "observed_at": seen}
            for customer, month, seen in keys
        ]
    )


def load(url: str, table: str, frame: pd.DataFrame) -> None:
    with db.transaction(url) as connection:
        upsert_frame(connection, table, frame)


def keys_of(url: str, base_dt: date = BASE) -> list[tuple[str, date]]:
    with db.get_engine(url).connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT customer_id, month FROM training_snapshots"
                    " WHERE base_dt = :base_dt ORDER BY customer_id, month"
                ),
                {"base_dt": base_dt},
            )
        ]


def count(url: str, table: str) -> int:
    with db.get_engine(url).connect() as connection:
        return connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


@pytest.fixture
def setting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Override one environment setting for the test; the settings cache is reset around it."""

    def override(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield override
    get_settings.cache_clear()


@pytest.fixture
def history(store_url: str) -> str:
    """Two customers around base date 2025-01-01, with features and labels on both sides of it."""
    load(store_url, "customer_features_monthly", features([
        ("A", date(2024, 9, 1)),   # before a 3-month lookback
        ("A", date(2024, 10, 1)),
        ("A", date(2024, 11, 1)),
        ("A", date(2024, 12, 1)),  # its label is observed one second after the base date
        ("A", date(2025, 1, 1)),   # the base month itself: not yet complete at the base date
        ("B", date(2024, 10, 1)),  # never labelled
        ("B", date(2024, 11, 1)),
    ]))  # fmt: skip
    load(store_url, "credit_labels", labels([
        ("A", date(2024, 9, 1), datetime(2024, 10, 5)),
        ("A", date(2024, 10, 1), datetime(2024, 11, 5)),
        ("A", date(2024, 11, 1), datetime(2025, 1, 1, 0, 0, 0)),
        ("A", date(2024, 12, 1), datetime(2025, 1, 1, 0, 0, 1)),
        ("A", date(2025, 1, 1), datetime(2024, 12, 31)),
        ("B", date(2024, 11, 1), datetime(2024, 12, 15)),
        ("B", date(2024, 12, 1), datetime(2024, 12, 20)),  # a label without features
    ]))  # fmt: skip
    return store_url


def test_snapshot_is_point_in_time(history: str) -> None:
    build = build_snapshot("2025-01-01", lookback_months=3, url=history)

    expected = [("A", date(2024, 10, 1)), ("A", date(2024, 11, 1)), ("B", date(2024, 11, 1))]
    assert keys_of(history) == expected
    assert (build.base_dt, build.lookback_months) == (BASE, 3)
    assert (build.row_count, build.customer_count) == (3, 2)
    with db.get_engine(history).connect() as connection:
        boundary = connection.execute(
            text(
                "SELECT label_observed_at FROM training_snapshots"
                " WHERE base_dt = :base_dt AND customer_id = 'A' AND month = '2024-11-01'"
            ),
            {"base_dt": BASE},
        ).scalar_one()
    assert boundary == datetime(2025, 1, 1)


def test_snapshot_copies_every_feature_and_the_label(history: str) -> None:
    build_snapshot(BASE, lookback_months=3, url=history)

    snapshot = read_snapshot(BASE, url=history)
    assert list(snapshot.columns) == ["customer_id", "month", *FEATURE_NAMES, TARGET]
    with db.get_engine(history).connect() as connection:
        source = pd.read_sql(
            text(
                "SELECT * FROM customer_features_monthly"
                " WHERE (customer_id, month) IN (('A', '2024-10-01'), ('A', '2024-11-01'),"
                " ('B', '2024-11-01')) ORDER BY customer_id, month"
            ),
            connection,
        )
    pd.testing.assert_frame_equal(
        snapshot[["customer_id", "month", *FEATURE_NAMES]],
        source[["customer_id", "month", *FEATURE_NAMES]],
        check_dtype=False,
    )
    assert snapshot[TARGET].tolist() == ["Standard"] * 3


def test_lookback_window_and_default(history: str, setting: Callable[[str, str], None]) -> None:
    build_snapshot(BASE, lookback_months=4, url=history)
    assert ("A", date(2024, 9, 1)) in keys_of(history)

    setting("MLOPS_LOOKBACK_MONTHS", "1")
    build = build_snapshot(BASE, url=history)
    assert build.lookback_months == 1
    assert keys_of(history) == []  # the only month in the window, December, has no known label

    with pytest.raises(ValueError, match="lookback_months"):
        build_snapshot(BASE, lookback_months=0, url=history)


def test_rebuild_replaces_the_snapshot(history: str) -> None:
    first = build_snapshot(BASE, lookback_months=3, url=history)
    other = build_snapshot("2024-12-01", lookback_months=3, url=history)
    second = build_snapshot(BASE, lookback_months=3, url=history)

    assert (second.row_count, second.customer_count) == (first.row_count, first.customer_count)
    assert second.build_id > other.build_id > first.build_id
    assert len(keys_of(history)) == first.row_count  # no duplicates
    assert count(history, "snapshot_builds") == 2

    # Rebuilding reflects changed inputs, and rows that no longer qualify disappear.
    with db.transaction(history) as connection:
        connection.execute(text("DELETE FROM credit_labels WHERE customer_id = 'B'"))
    third = build_snapshot(BASE, lookback_months=3, url=history)
    assert keys_of(history) == [("A", date(2024, 10, 1)), ("A", date(2024, 11, 1))]
    assert third.row_count == 2
    assert third.build_id > second.build_id
    # The other base date's snapshot is untouched.
    earlier = [("A", date(2024, 9, 1)), ("A", date(2024, 10, 1))]
    assert keys_of(history, date(2024, 12, 1)) == earlier


def test_injection_is_rejected_before_any_sql(history: str) -> None:
    build_snapshot(BASE, lookback_months=3, url=history)
    before = (keys_of(history), count(history, "snapshot_builds"))

    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        build_snapshot(INJECTION, url=history)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        read_snapshot(INJECTION, url=history)

    assert (keys_of(history), count(history, "snapshot_builds")) == before
    assert count(history, "customer_features_monthly") == 7


def test_failure_midway_keeps_the_previous_snapshot(
    history: str, tmp_path: Path, setting: Callable[[str, str], None]
) -> None:
    first = build_snapshot(BASE, lookback_months=3, url=history)
    before = read_snapshot(BASE, url=history)
    # New data a successful rebuild would pick up, so a partial one would show.
    load(history, "credit_labels", labels([("B", date(2024, 10, 1), datetime(2024, 11, 2))]))
    # A copy of the real SQL whose last statement fails after the delete and insert ran.
    broken = tmp_path / SNAPSHOT_SQL
    broken.parent.mkdir(parents=True)
    real = get_settings().mlops_sql_dir / SNAPSHOT_SQL
    shutil.copy(real, broken)
    sql = broken.read_text()
    assert "REPLACE INTO snapshot_builds " in sql
    broken.write_text(sql.replace("REPLACE INTO snapshot_builds ", "REPLACE INTO no_such_table "))
    setting("MLOPS_SQL_DIR", str(tmp_path))

    with pytest.raises(DatabaseError, match="no_such_table"):
        build_snapshot(BASE, lookback_months=3, url=history)

    pd.testing.assert_frame_equal(read_snapshot(BASE, url=history), before)
    assert read_snapshot(BASE, url=history, build_id=first.build_id).shape == before.shape


def test_read_snapshot_checks_the_build(history: str) -> None:
    first = build_snapshot(BASE, lookback_months=3, url=history)
    snapshot = read_snapshot(BASE, url=history, build_id=first.build_id)
    assert len(snapshot) == first.row_count
    assert list(zip(snapshot.customer_id, snapshot.month, strict=True)) == keys_of(history)

    second = build_snapshot(BASE, lookback_months=3, url=history)
    with pytest.raises(SnapshotRebuilt, match=f"build {second.build_id}"):
        read_snapshot(BASE, url=history, build_id=first.build_id)
    with pytest.raises(SnapshotRebuilt, match="gone"):
        read_snapshot("2024-06-01", url=history, build_id=first.build_id)
    assert read_snapshot("2024-06-01", url=history).empty
