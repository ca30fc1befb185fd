"""Training snapshots on a real MariaDB: point-in-time correctness, immutable builds,
idempotency, atomicity, and pruning under the retention policy."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DatabaseError

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.data.loader import upsert_frame
from mlops_platform.features import (
    SNAPSHOT_SQL,
    PruneRefused,
    SnapshotUnavailable,
    build_snapshot,
    describe_build,
    prune_builds,
    read_snapshot,
    stored_rows,
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
    """The (customer, month) keys of the current build of `base_dt`."""
    snapshot = read_snapshot(base_dt, url=url)
    return list(zip(snapshot.customer_id, snapshot.month, strict=True))


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
                " WHERE build_id = :build_id AND customer_id = 'A' AND month = '2024-11-01'"
            ),
            {"build_id": build.build_id},
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


def test_rebuild_adds_a_build_and_keeps_the_earlier_one(history: str) -> None:
    first = build_snapshot(BASE, lookback_months=3, url=history)
    other = build_snapshot("2024-12-01", lookback_months=3, url=history)
    # New labels, so the rebuild's rows differ from the first build's.
    load(history, "credit_labels", labels([("B", date(2024, 10, 1), datetime(2024, 11, 2))]))
    second = build_snapshot(BASE, lookback_months=3, url=history)

    assert second.build_id > other.build_id > first.build_id
    assert (first.row_count, second.row_count) == (3, 4)
    assert first.content_hash != second.content_hash
    assert len(keys_of(history)) == second.row_count  # the current build, no duplicates
    # The earlier build's rows stay readable by its id, unchanged and still hashing the same.
    assert len(read_snapshot(BASE, url=history, build_id=first.build_id)) == first.row_count
    with db.transaction(history) as connection:
        assert stored_rows(connection, first.build_id).content_hash == first.content_hash
    assert count(history, "snapshot_builds") == 3
    assert count(history, "training_snapshots") == 3 + 4 + len(keys_of(history, other.base_dt))

    # Rows that no longer qualify are absent from the next build only.
    with db.transaction(history) as connection:
        connection.execute(text("DELETE FROM credit_labels WHERE customer_id = 'B'"))
    third = build_snapshot(BASE, lookback_months=3, url=history)
    assert keys_of(history) == [("A", date(2024, 10, 1)), ("A", date(2024, 11, 1))]
    assert third.build_id > second.build_id
    assert len(read_snapshot(BASE, url=history, build_id=second.build_id)) == 4
    earlier = [("A", date(2024, 9, 1)), ("A", date(2024, 10, 1))]
    assert keys_of(history, date(2024, 12, 1)) == earlier


def test_rebuilding_the_same_content_reuses_the_build(history: str) -> None:
    first = build_snapshot(BASE, lookback_months=3, url=history)
    again = build_snapshot(BASE, lookback_months=3, url=history)

    assert again == first
    assert len(first.content_hash) == 64
    assert count(history, "snapshot_builds") == 1
    assert count(history, "training_snapshots") == first.row_count
    # The same rows under another lookback are another build: its parameters differ.
    wider = build_snapshot(BASE, lookback_months=4, url=history)
    assert wider.build_id > first.build_id and wider.row_count == 4


def test_a_build_records_the_airflow_run_it_ran_in(
    history: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = build_snapshot("2024-12-01", lookback_months=3, url=history)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "feature_pipeline")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2025-01-01T00:00:00+00:00")
    inside = build_snapshot(BASE, lookback_months=3, url=history)

    assert (outside.airflow_dag_id, outside.airflow_run_id) == (None, None)
    assert (inside.airflow_dag_id, inside.airflow_run_id) == (
        "feature_pipeline",
        "scheduled__2025-01-01T00:00:00+00:00",
    )


def test_prune_keeps_current_referenced_and_recent_builds(history: str) -> None:
    builds = []
    for customer in ("B", "C", "D"):  # each new label makes the next build differ
        load(history, "customer_features_monthly", features([(customer, date(2024, 10, 1))]))
        load(
            history, "credit_labels", labels([(customer, date(2024, 10, 1), datetime(2024, 11, 2))])
        )
        builds.append(build_snapshot(BASE, lookback_months=3, url=history))
    oldest, referenced, current = builds

    assert prune_builds(set(), url=history) == []  # superseded less than 30 days ago
    with pytest.raises(PruneRefused, match=rf"\[{referenced.build_id}, {current.build_id}\]"):
        prune_builds({referenced.build_id}, build_ids=[referenced.build_id, current.build_id],
                     url=history)  # fmt: skip
    planned = prune_builds({referenced.build_id}, retention_days=0, dry_run=True, url=history)
    assert [build.build_id for build in planned] == [oldest.build_id]
    assert describe_build(oldest.build_id, history).pruned_at is None

    pruned = prune_builds({referenced.build_id}, retention_days=0, url=history)
    assert [build.build_id for build in pruned] == [oldest.build_id]
    gone = describe_build(oldest.build_id, history)
    assert gone.pruned_at is not None and gone.row_count == oldest.row_count
    with pytest.raises(SnapshotUnavailable, match="pruned"):
        read_snapshot(BASE, url=history, build_id=oldest.build_id)
    with db.transaction(history) as connection:
        assert stored_rows(connection, oldest.build_id).row_count == 0
    assert len(read_snapshot(BASE, url=history, build_id=referenced.build_id)) > 0
    assert len(keys_of(history)) == current.row_count
    assert count(history, "training_snapshots") == referenced.row_count + current.row_count


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
    # A copy of the real SQL whose last statement fails after the build's rows were inserted.
    broken = tmp_path / SNAPSHOT_SQL
    broken.parent.mkdir(parents=True)
    real = get_settings().mlops_sql_dir / SNAPSHOT_SQL
    shutil.copy(real, broken)
    sql = broken.read_text()
    assert "UPDATE snapshot_builds " in sql
    broken.write_text(sql.replace("UPDATE snapshot_builds ", "UPDATE no_such_table "))
    setting("MLOPS_SQL_DIR", str(tmp_path))

    with pytest.raises(DatabaseError, match="no_such_table"):
        build_snapshot(BASE, lookback_months=3, url=history)

    pd.testing.assert_frame_equal(read_snapshot(BASE, url=history), before)
    assert read_snapshot(BASE, url=history, build_id=first.build_id).shape == before.shape
    assert (count(history, "snapshot_builds"), count(history, "training_snapshots")) == (1, 3)


def test_read_snapshot_checks_the_build(history: str) -> None:
    first = build_snapshot(BASE, lookback_months=3, url=history)
    snapshot = read_snapshot(BASE, url=history, build_id=first.build_id)
    assert len(snapshot) == first.row_count
    assert list(zip(snapshot.customer_id, snapshot.month, strict=True)) == keys_of(history)

    with pytest.raises(SnapshotUnavailable, match="of snapshot 2025-01-01"):
        read_snapshot("2024-06-01", url=history, build_id=first.build_id)
    with pytest.raises(SnapshotUnavailable, match="never built"):
        read_snapshot(BASE, url=history, build_id=first.build_id + 1_000)
    with pytest.raises(SnapshotUnavailable, match="no build"):
        read_snapshot("2024-06-01", url=history)


def test_migration_009_keys_existing_snapshot_rows_by_their_build(
    mariadb_server: str, tmp_path: Path
) -> None:
    for migration in sorted(get_settings().mlops_sql_dir.glob("00[1-8]_*.sql")):
        shutil.copy(migration, tmp_path)
    url = make_url(mariadb_server).set(database=f"mlops_t_{uuid.uuid4().hex[:10]}")
    url = url.render_as_string(hide_password=False)
    try:
        db.upgrade(url, sql_dir=tmp_path)  # a store as it was before snapshots were immutable
        with db.transaction(url) as connection:
            connection.execute(
                text(
                    "INSERT INTO snapshot_builds (base_dt, build_id, lookback_months, row_count,"
                    " customer_count) VALUES (:base_dt, 7, 3, 1, 1)"
                ),
                {"base_dt": BASE},
            )
        load(url, "customer_features_monthly", features([("A", date(2024, 12, 1))]))
        load(url, "credit_labels", labels([("A", date(2024, 12, 1), datetime(2024, 12, 20))]))
        columns = ", ".join(f"f.{name}" for name in FEATURE_NAMES)
        with db.transaction(url) as connection:
            connection.execute(
                text(
                    f"INSERT INTO training_snapshots SELECT :base_dt, f.customer_id, f.month,"
                    f" {columns}, l.credit_score, l.observed_at FROM customer_features_monthly"
                    " AS f JOIN credit_labels AS l USING (customer_id, month)"
                ),
                {"base_dt": BASE},
            )

        assert min(m.version for m in db.upgrade(url)) == 9  # 001-008 were applied before

        build = describe_build(7, url)
        assert (build.base_dt, build.row_count, build.content_hash) == (BASE, 1, None)
        assert read_snapshot(BASE, url=url, build_id=7)["customer_id"].tolist() == ["A"]
    finally:
        db.drop_database(url)
