"""Point-in-time training snapshots, built inside MariaDB from the monthly features and labels.

Builds are immutable: a rebuild adds a build (unless its rows hash the same as the current
one), and every build's rows stay readable by its id until `prune_builds` deletes them.
Retention policy: the current build of each base date, every build a registered model
version names, and every build superseded less than SNAPSHOT_RETENTION_DAYS ago are kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, bindparam, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.dates import add_months
from mlops_platform.errors import NotFound, PlatformError
from mlops_platform.schema import FEATURE_NAMES, TARGET

SNAPSHOT_SQL = Path("features") / "training_snapshot.sql"
BASE_DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}", flags=re.ASCII)
# A snapshot row's content, in order; its build_id says which build holds it, not what it is.
SNAPSHOT_COLUMNS = ("base_dt", "customer_id", "month", *FEATURE_NAMES, TARGET, "label_observed_at")
BUILD_COLUMNS = (
    "base_dt, build_id, lookback_months, row_count, customer_count, content_hash, built_at,"
    " airflow_dag_id, airflow_run_id, pruned_at"
)
# Every lookup of one build starts here and adds only bound-parameter conditions.
SELECT_BUILD = "SELECT " + BUILD_COLUMNS + " FROM snapshot_builds"  # noqa: S608 - constants
# Order-independent hash of a build's rows: the XOR of each row's SHA-256, taken in four
# 64-bit slices (rows are unique by key, so none cancels another). QUOTE keeps NULL apart
# from the string 'NULL' and from an empty string. Identifiers are module constants only.
QUOTED_COLUMNS = ", ".join(f"QUOTE(`{name}`)" for name in SNAPSHOT_COLUMNS)
ROW_DIGEST = f"SHA2(CONCAT_WS(',', {QUOTED_COLUMNS}), 256)"
XOR_SLICES = ", ".join(
    f"LPAD(LOWER(HEX(BIT_XOR(CAST(CONV(SUBSTR(digest, {start}, 16), 16, 10) AS UNSIGNED)))),"
    " 16, '0')"
    for start in (1, 17, 33, 49)
)
# The LIMIT keeps MariaDB from merging the derived table into the outer query, which would
# compute each row's digest once per slice (measured: about 3x slower on 215k rows).
CONTENT_HASH = text(
    f"SELECT CONCAT({XOR_SLICES}) AS content_hash, COUNT(*) AS row_count"  # noqa: S608
    f" FROM (SELECT {ROW_DIGEST} AS digest FROM training_snapshots"
    " WHERE build_id = :build_id LIMIT 18446744073709551615) AS row_digests"
)


@dataclass(frozen=True)
class SnapshotBuild:
    """One build of the snapshot for a base date, as recorded in `snapshot_builds`."""

    base_dt: date
    build_id: int
    lookback_months: int
    row_count: int
    customer_count: int
    content_hash: str | None
    built_at: datetime
    airflow_dag_id: str | None
    airflow_run_id: str | None
    pruned_at: datetime | None


@dataclass(frozen=True)
class StoredRows:
    """What a build's rows are now: how many are present and their content hash."""

    row_count: int
    content_hash: str


class SnapshotUnavailable(NotFound):
    """The snapshot build asked for was never built, was pruned, or is of another base date."""


class PruneRefused(PlatformError):
    """A build asked to be pruned is current or named by a registered model version."""


def parse_date(value: str | date) -> date:
    """A calendar date from a `date` or a strict `YYYY-MM-DD` string; anything else raises."""
    expected = "expected a date as YYYY-MM-DD, e.g. 2025-01-01"
    # datetime is a date subclass; a time of day is not a date parameter.
    if isinstance(value, datetime) or not isinstance(value, str | date):
        raise ValueError(f"invalid date {value!r}: {expected}")
    if isinstance(value, date):
        return value
    if not BASE_DATE_FORMAT.fullmatch(value):
        raise ValueError(f"invalid date {value!r}: {expected}")
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"invalid date {value!r}: {error}; {expected}") from None


def parse_base_date(value: str | date) -> date:
    """The base date as a `date`; only `YYYY-MM-DD` on the first of a month is accepted."""
    try:
        day = parse_date(value)
    except ValueError as error:
        raise ValueError(f"invalid base date: {error}; it must be the first of a month") from None
    if day.day != 1:
        raise ValueError(
            f"invalid base date {day.isoformat()!r}: expected a first-of-month date as"
            " YYYY-MM-DD, e.g. 2025-01-01"
        )
    return day


def airflow_run() -> tuple[str | None, str | None]:
    """(dag_id, run_id) of the Airflow task this code runs in, else (None, None)."""
    # Read at call time, not through Settings: Airflow exports these to the task's process
    # just before it runs, after the DAG file (and so the cached settings) was loaded.
    return os.environ.get("AIRFLOW_CTX_DAG_ID"), os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")


def current_build(connection: Connection, base_dt: date) -> SnapshotBuild | None:
    """The current build of the snapshot for `base_dt` (its newest unpruned one), or None."""
    row = connection.execute(
        text(
            SELECT_BUILD
            + " WHERE base_dt = :base_dt AND pruned_at IS NULL ORDER BY build_id DESC LIMIT 1"
        ),
        {"base_dt": base_dt},
    ).first()
    return None if row is None else SnapshotBuild(*row)


def get_build(connection: Connection, build_id: int) -> SnapshotBuild | None:
    """The build with `build_id`, pruned or not, or None if there never was one."""
    row = connection.execute(
        text(SELECT_BUILD + " WHERE build_id = :build_id"),
        {"build_id": build_id},
    ).first()
    return None if row is None else SnapshotBuild(*row)


def describe_build(build_id: int, url: str | None = None) -> SnapshotBuild:
    """The build with `build_id`; raises SnapshotUnavailable if there never was one."""
    with db.transaction(url) as connection:
        build = get_build(connection, build_id)
    if build is None:
        raise SnapshotUnavailable(f"there is no snapshot build {build_id}")
    return build


def stored_rows(connection: Connection, build_id: int) -> StoredRows:
    """Count and hash the rows stored under `build_id` now (one scan of its key range)."""
    row = connection.execute(CONTENT_HASH, {"build_id": build_id}).one()
    return StoredRows(row.row_count, row.content_hash)


def build_snapshot(
    base_dt: str | date, lookback_months: int | None = None, url: str | None = None
) -> SnapshotBuild:
    """Build the snapshot for `base_dt` in one transaction: features of the months before it,
    labels observed by its midnight (inclusive). Returns the new build, or the current one
    when the new rows hash the same (so re-running a date stores nothing twice)."""
    day = parse_base_date(base_dt)
    months = get_settings().mlops_lookback_months if lookback_months is None else lookback_months
    if not 1 <= months <= 120:  # the bounds MLOPS_LOOKBACK_MONTHS has in config.py
        raise ValueError(f"lookback_months must be between 1 and 120, got {months!r}")
    dag_id, run_id = airflow_run()
    sql = (get_settings().mlops_sql_dir / SNAPSHOT_SQL).read_text(encoding="utf-8")
    with db.transaction(url) as connection:
        current = current_build(connection, day)
        attempt = connection.begin_nested()
        build_id = connection.execute(
            text(
                "INSERT INTO snapshot_builds (base_dt, lookback_months, row_count, customer_count,"
                " airflow_dag_id, airflow_run_id) VALUES (:base_dt, :lookback_months, 0, 0,"
                " :dag_id, :run_id)"
            ),
            {"base_dt": day, "lookback_months": months, "dag_id": dag_id, "run_id": run_id},
        ).lastrowid
        parameters = {
            "build_id": build_id,
            "base_dt": day,
            "window_start": add_months(day, -months),
            "label_cutoff": datetime.combine(day, time.min),
        }
        for statement in db.split_statements(sql):
            connection.execute(text(statement), parameters)
        rows = stored_rows(connection, build_id)
        if (
            current is not None
            and current.content_hash == rows.content_hash
            and current.lookback_months == months
        ):
            attempt.rollback()
            return current
        connection.execute(
            text("UPDATE snapshot_builds SET content_hash = :hash WHERE build_id = :build_id"),
            {"hash": rows.content_hash, "build_id": build_id},
        )
        attempt.commit()
        build = get_build(connection, build_id)
        if build is None or build.row_count != rows.row_count:  # raising rolls it all back
            raise RuntimeError(f"{SNAPSHOT_SQL} did not record the counts of build {build_id}")
    return build


def read_snapshot(
    base_dt: str | date, url: str | None = None, build_id: int | None = None
) -> pd.DataFrame:
    """The keys, features and label by customer and month of build `build_id` of the
    snapshot for `base_dt` (default: its current build); raises if it cannot be read."""
    day = parse_base_date(base_dt)
    columns = ", ".join(f"`{name}`" for name in ("customer_id", "month", *FEATURE_NAMES, TARGET))
    # Identifiers come from schema.py constants only; the build id is a bound parameter.
    query = text(
        f"SELECT {columns} FROM training_snapshots"  # noqa: S608
        " WHERE build_id = :build_id ORDER BY customer_id, month"
    )
    with db.transaction(url) as connection:
        build = (
            current_build(connection, day) if build_id is None else get_build(connection, build_id)
        )
        if build is None or build.base_dt != day or build.pruned_at is not None:
            wanted = "no build" if build_id is None else f"build {build_id}"
            why = (
                "it was never built" if build is None
                else f"it is of snapshot {build.base_dt}" if build.base_dt != day
                else f"its rows were pruned at {build.pruned_at}"
            )  # fmt: skip
            raise SnapshotUnavailable(f"snapshot {day}: {wanted} can be read; {why}")
        return pd.read_sql(query, connection, params={"build_id": build.build_id})


def prune_builds(
    keep: Collection[int],
    *,
    build_ids: Sequence[int] = (),
    retention_days: int | None = None,
    dry_run: bool = False,
    url: str | None = None,
) -> list[SnapshotBuild]:
    """Delete the rows of superseded builds not in `keep` and stamp them pruned; returns them.

    With `build_ids`, exactly those (the retention age aside), refusing any that is current
    or in `keep`. Otherwise every build superseded more than `retention_days` ago.
    """
    days = get_settings().snapshot_retention_days if retention_days is None else retention_days
    with db.transaction(url) as connection:
        # The builds that are superseded (not current) and not pruned yet, and whether the
        # build that superseded each is older than the retention.
        superseded = connection.execute(
            text(
                f"SELECT {BUILD_COLUMNS},"  # noqa: S608 - module constants only
                " superseded_at <= NOW() - INTERVAL :days DAY AS expired FROM ("
                f" SELECT {BUILD_COLUMNS}, LEAD(built_at) OVER ("
                "  PARTITION BY base_dt ORDER BY build_id) AS superseded_at"
                " FROM snapshot_builds WHERE pruned_at IS NULL) AS builds"
                " WHERE superseded_at IS NOT NULL ORDER BY build_id"
            ),
            {"days": days},
        ).all()
        if build_ids:
            refused = sorted(
                set(build_ids) - {row.build_id for row in superseded} | set(keep) & set(build_ids)
            )
            if refused:
                raise PruneRefused(
                    f"snapshot builds {refused} are kept: only a superseded, unpruned build"
                    " that no registered model version names can be pruned"
                )
            chosen = [row for row in superseded if row.build_id in build_ids]
        else:
            chosen = [row for row in superseded if row.expired and row.build_id not in keep]
        pruned = [SnapshotBuild(*row[:-1]) for row in chosen]
        if pruned and not dry_run:
            ids = {"build_ids": [build.build_id for build in pruned]}
            for statement in (
                "DELETE FROM training_snapshots WHERE build_id IN :build_ids",
                "UPDATE snapshot_builds SET pruned_at = NOW() WHERE build_id IN :build_ids",
            ):
                connection.execute(
                    text(statement).bindparams(bindparam("build_ids", expanding=True)), ids
                )
    return pruned
