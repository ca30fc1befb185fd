"""Point-in-time training snapshots, built inside MariaDB from the monthly features and labels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.dates import add_months
from mlops_platform.schema import FEATURE_NAMES, TARGET

SNAPSHOT_SQL = Path("features") / "training_snapshot.sql"
BASE_DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}", flags=re.ASCII)


@dataclass(frozen=True)
class SnapshotBuild:
    """One build of the snapshot for a base date, as recorded in `snapshot_builds`."""

    base_dt: date
    build_id: int
    lookback_months: int
    row_count: int
    customer_count: int


class SnapshotRebuilt(RuntimeError):
    """The snapshot was rebuilt after the caller checked (validated) it."""


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


def current_build(connection: Connection, base_dt: date) -> SnapshotBuild | None:
    """The current build of the snapshot for `base_dt`, or None if it was never built."""
    row = connection.execute(
        text(
            "SELECT build_id, lookback_months, row_count, customer_count"
            " FROM snapshot_builds WHERE base_dt = :base_dt"
        ),
        {"base_dt": base_dt},
    ).first()
    return None if row is None else SnapshotBuild(base_dt, *row)


def build_snapshot(
    base_dt: str | date, lookback_months: int | None = None, url: str | None = None
) -> SnapshotBuild:
    """(Re)build the snapshot for `base_dt` in one transaction: features of the months before it,
    labels observed by its midnight (inclusive). Returns the new build."""
    day = parse_base_date(base_dt)
    months = get_settings().mlops_lookback_months if lookback_months is None else lookback_months
    if not 1 <= months <= 120:  # the bounds MLOPS_LOOKBACK_MONTHS has in config.py
        raise ValueError(f"lookback_months must be between 1 and 120, got {months!r}")
    parameters = {
        "base_dt": day,
        "window_start": add_months(day, -months),
        "label_cutoff": datetime.combine(day, time.min),
        "lookback_months": months,
    }
    sql = (get_settings().mlops_sql_dir / SNAPSHOT_SQL).read_text(encoding="utf-8")
    with db.transaction(url) as connection:
        for statement in db.split_statements(sql):
            connection.execute(text(statement), parameters)
        build = current_build(connection, day)
        if build is None:  # raising here rolls the snapshot rows back too
            raise RuntimeError(f"{SNAPSHOT_SQL} did not record a build in snapshot_builds")
    return build


def read_snapshot(
    base_dt: str | date, url: str | None = None, build_id: int | None = None
) -> pd.DataFrame:
    """The snapshot's keys, features and label by customer and month; checks `build_id` if given."""
    day = parse_base_date(base_dt)
    columns = ", ".join(f"`{name}`" for name in ("customer_id", "month", *FEATURE_NAMES, TARGET))
    # Identifiers come from schema.py constants only; the base date is a bound parameter.
    query = text(
        f"SELECT {columns} FROM training_snapshots"  # noqa: S608
        " WHERE base_dt = :base_dt ORDER BY customer_id, month"
    )
    # One transaction, so the build check and the rows come from the same consistent read.
    with db.transaction(url) as connection:
        if build_id is not None:
            build = current_build(connection, day)
            if build is None or build.build_id != build_id:
                now = "gone" if build is None else f"build {build.build_id}"
                raise SnapshotRebuilt(
                    f"snapshot {day} is {now}, not the expected build {build_id}; validate again"
                )
        return pd.read_sql(query, connection, params={"base_dt": day})
