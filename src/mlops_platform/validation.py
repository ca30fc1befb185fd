"""Data-quality gate for training snapshots: SQL aggregates in MariaDB, stored per build."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import Connection, bindparam, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.errors import PlatformError
from mlops_platform.features import (
    SNAPSHOT_COLUMNS,
    build_snapshot,
    current_build,
    parse_base_date,
)
from mlops_platform.schema import CREDIT_SCORES, FEATURES, TARGET, Feature

TABLE = "training_snapshots"
EXPECTED_COLUMNS = ("build_id", *SNAPSHOT_COLUMNS)
EXAMPLE_VALUES = 5
# Binary, no-pad comparison: 'pilot' or 'Doctor ' would be unseen categories to the model,
# although the table's case-insensitive, space-padding collation calls them equal.
EXACT = "COLLATE utf8mb4_nopad_bin"
# type_of_loan is VARCHAR(255), so one list holds at most 256 comma-separated items.
MAX_LOAN_ITEMS = 256
UNKNOWN_LOAN_TYPES = f"""
WITH RECURSIVE positions (n) AS (
    SELECT 1 UNION ALL SELECT n + 1 FROM positions WHERE n < :max_items
), lists AS (
    SELECT type_of_loan {EXACT} AS list, COUNT(*) AS row_count FROM {TABLE}
    WHERE build_id = :build_id AND type_of_loan IS NOT NULL
    GROUP BY list
), items AS (
    SELECT TRIM(SUBSTRING_INDEX(SUBSTRING_INDEX(list, ',', n), ',', -1)) {EXACT} AS value,
        row_count
    FROM lists JOIN positions ON n <= 1 + CHAR_LENGTH(list) - CHAR_LENGTH(REPLACE(list, ',', ''))
)
SELECT value, SUM(row_count) AS occurrences, COUNT(*) OVER () AS value_count,
    SUM(SUM(row_count)) OVER () AS total
FROM items WHERE value NOT IN :domain
GROUP BY value ORDER BY occurrences DESC, value LIMIT {EXAMPLE_VALUES}
"""  # noqa: S608 - only module constants are interpolated; values are bound


@dataclass(frozen=True)
class Failure:
    """One failed check: which column, which rule, what was seen and what was required."""

    column: str
    rule: str
    observed: str
    expected: str

    def __str__(self) -> str:
        return f"{self.column}: {self.rule} — observed {self.observed}, expected {self.expected}"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one build of a snapshot; `build_id` is None if none exists."""

    base_dt: date
    build_id: int | None
    passed: bool
    row_count: int
    failures: tuple[Failure, ...]


class SnapshotNotValidated(PlatformError):
    """The current build of a snapshot has no passing validation, so it must not be trained on."""


def validate_snapshot(
    base_dt: str | date,
    url: str | None = None,
    *,
    min_rows: int | None = None,
    max_null_rate: float | None = None,
) -> ValidationReport:
    """Check the snapshot for `base_dt` and store the result against its current build."""
    day = parse_base_date(base_dt)
    settings = get_settings()
    min_rows = settings.validation_min_rows if min_rows is None else min_rows
    max_null_rate = settings.validation_max_null_rate if max_null_rate is None else max_null_rate
    # One transaction: every check reads the same consistent state as the build id it records.
    with db.transaction(url) as connection:
        columns = _snapshot_columns(connection)
        failures = _schema_failures(columns)
        build = current_build(connection, day)
        if build is None:
            failures.append(Failure(TABLE, "exists", "no build", f"a snapshot built for {day}"))
            # Nothing is stored: a result is recorded against a build, and there is none.
            return ValidationReport(day, None, False, 0, tuple(failures))
        features = [feature for feature in FEATURES if feature.name in columns]
        row_count, profile_failures = _profile(connection, build.build_id, features, max_null_rate)
        if row_count < min_rows:
            failures.append(Failure(TABLE, "min_rows", f"{row_count} rows", f">= {min_rows} rows"))
        failures += profile_failures
        for feature in features:
            if feature.domain:
                failures += _domain_failures(connection, build.build_id, feature)
        if TARGET in columns:
            failures += _class_failures(connection, build.build_id)
        report = ValidationReport(day, build.build_id, not failures, row_count, tuple(failures))
        connection.execute(
            text(
                "INSERT INTO snapshot_validations (base_dt, build_id, passed, row_count, failures)"
                " VALUES (:base_dt, :build_id, :passed, :row_count, :failures)"
            ),
            {
                "base_dt": day,
                "build_id": report.build_id,
                "passed": report.passed,
                "row_count": row_count,
                "failures": json.dumps([asdict(failure) for failure in failures]),
            },
        )
    return report


def require_validated_snapshot(base_dt: str | date, url: str | None = None) -> int:
    """The current build id of the snapshot if its latest validation passed; else raises."""
    day = parse_base_date(base_dt)
    with db.transaction(url) as connection:
        build = current_build(connection, day)
        if build is None:
            raise SnapshotNotValidated(f"no snapshot is built for {day}; build and validate it")
        latest = connection.execute(
            text(
                "SELECT passed, failures FROM snapshot_validations"
                " WHERE base_dt = :base_dt AND build_id = :build_id"
                " ORDER BY validation_id DESC LIMIT 1"
            ),
            {"base_dt": day, "build_id": build.build_id},
        ).first()
        if latest is None:
            validated = connection.execute(
                text("SELECT MAX(build_id) FROM snapshot_validations WHERE base_dt = :base_dt"),
                {"base_dt": day},
            ).scalar()
            if validated is None:
                raise SnapshotNotValidated(
                    f"snapshot {day} (build {build.build_id}) was never validated;"
                    " validate it first"
                )
            raise SnapshotNotValidated(
                f"snapshot {day} was rebuilt (now build {build.build_id}) since its last"
                f" validation (build {validated}); validate it again"
            )
    if not latest.passed:
        failures = "; ".join(str(Failure(**failure)) for failure in json.loads(latest.failures))
        raise SnapshotNotValidated(
            f"snapshot {day} (build {build.build_id}) failed validation: {failures}"
        )
    return build.build_id


def ensure_validated_snapshot(
    base_dt: str | date, *, rebuild: bool = False, url: str | None = None
) -> int:
    """The build id of a validated snapshot for `base_dt`, building and validating as needed.

    An existing, passed snapshot is reused unless `rebuild` asks for one that includes
    the labels observed since; a snapshot that fails validation raises.
    """
    day = parse_base_date(base_dt)
    with db.transaction(url) as connection:
        missing = current_build(connection, day) is None
    if rebuild or missing:
        build_snapshot(day, url=url)
    else:
        try:
            return require_validated_snapshot(day, url)
        except SnapshotNotValidated:
            pass  # never validated, or rebuilt since: validate the current build below
    report = validate_snapshot(day, url)
    if not report.passed:
        failures = "; ".join(str(failure) for failure in report.failures)
        raise SnapshotNotValidated(f"snapshot {day} failed validation: {failures}")
    return report.build_id


def _snapshot_columns(connection: Connection) -> set[str]:
    return set(
        connection.execute(
            text(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table"
            ),
            {"table": TABLE},
        ).scalars()
    )


def _schema_failures(columns: set[str]) -> list[Failure]:
    missing = [Failure(name, "schema", "column missing", f"a column of {TABLE}")
               for name in EXPECTED_COLUMNS if name not in columns]  # fmt: skip
    unexpected = [Failure(name, "schema", "unexpected column", "only the snapshot columns")
                  for name in sorted(columns - set(EXPECTED_COLUMNS))]  # fmt: skip
    return missing + unexpected


def _profile(
    connection: Connection, build_id: int, features: list[Feature], max_null_rate: float
) -> tuple[int, list[Failure]]:
    """Row count, then null-rate and range failures, from one aggregate scan."""
    expressions = ["COUNT(*) AS row_count"]
    for feature in features:
        name = feature.name
        expressions.append(f"SUM(`{name}` IS NULL) AS `{name}__nulls`")
        if feature.kind == "numeric":
            expressions += [f"MIN(`{name}`) AS `{name}__min`", f"MAX(`{name}`) AS `{name}__max`"]
    # Identifiers cannot be bound; these come from schema.py constants only.
    query = f"SELECT {', '.join(expressions)} FROM {TABLE} WHERE build_id = :build_id"  # noqa: S608
    row = connection.execute(text(query), {"build_id": build_id}).mappings().one()
    row_count = row["row_count"]
    failures: list[Failure] = []
    if row_count == 0:
        return 0, failures
    for feature in features:
        name = feature.name
        nulls = int(row[f"{name}__nulls"])
        allowed = max_null_rate if feature.nullable else 0.0
        if nulls / row_count > allowed:
            failures.append(
                Failure(
                    name,
                    "null_rate",
                    f"{nulls / row_count:.1%} ({nulls} of {row_count} rows)",
                    f"<= {allowed:.1%}" + ("" if feature.nullable else " (not nullable)"),
                )
            )
        if feature.kind != "numeric" or nulls == row_count:
            continue
        low, high = row[f"{name}__min"], row[f"{name}__max"]
        if feature.low is not None and low < feature.low:
            failures.append(Failure(name, "range", f"min {low}", f">= {feature.low}"))
        if feature.high is not None and high > feature.high:
            failures.append(Failure(name, "range", f"max {high}", f"<= {feature.high}"))
    return row_count, failures


def _domain_failures(connection: Connection, build_id: int, feature: Feature) -> list[Failure]:
    """Values of a categorical feature, or items of the loan-type lists, outside its domain."""
    if feature.kind == "loan_list":
        query, parameters = UNKNOWN_LOAN_TYPES, {"max_items": MAX_LOAN_ITEMS}
    else:
        value = f"`{feature.name}` {EXACT}"
        # Identifiers cannot be bound; the column comes from schema.py constants only.
        query = (
            f"SELECT {value} AS value, COUNT(*) AS occurrences,"  # noqa: S608
            " COUNT(*) OVER () AS value_count, SUM(COUNT(*)) OVER () AS total"
            f" FROM {TABLE} WHERE build_id = :build_id AND {value} NOT IN :domain"
            f" GROUP BY {value} ORDER BY occurrences DESC, value LIMIT {EXAMPLE_VALUES}"
        )
        parameters = {}
    statement = text(query).bindparams(bindparam("domain", expanding=True))
    rows = connection.execute(
        statement, {**parameters, "build_id": build_id, "domain": list(feature.domain)}
    ).all()
    if not rows:
        return []
    examples = ", ".join(f"{row.value!r} ({row.occurrences})" for row in rows)
    return [
        Failure(
            feature.name,
            "domain",
            f"{rows[0].value_count} unknown value(s) in {rows[0].total} occurrences: {examples}",
            f"one of {', '.join(feature.domain)}",
        )
    ]


def _class_failures(connection: Connection, build_id: int) -> list[Failure]:
    counts = dict(
        connection.execute(
            text(
                f"SELECT {TARGET}, COUNT(*) FROM {TABLE}"  # noqa: S608 - module constants only
                f" WHERE build_id = :build_id GROUP BY {TARGET}"
            ),
            {"build_id": build_id},
        ).all()
    )
    missing = [score for score in CREDIT_SCORES if score not in counts]
    if not missing:
        return []
    present = ", ".join(f"{score} {count}" for score, count in counts.items()) or "no rows"
    return [
        Failure(
            TARGET,
            "classes",
            f"no {', '.join(missing)} rows (present: {present})",
            f"every class of {', '.join(CREDIT_SCORES)}",
        )
    ]
