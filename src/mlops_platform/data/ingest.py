"""Ingest a credit-score CSV (our layout or Kaggle's raw layout) into the feature store.

Values are cleaned only where the intent is unambiguous; every other row goes to
`ingest_quarantine` with a reason. When clean rows repeat a (customer_id, month), the
last one in the file wins and the earlier ones count as superseded, so
rows loaded + rows quarantined + rows superseded = rows read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.data.loader import upsert_frame
from mlops_platform.errors import InvalidInput
from mlops_platform.schema import (
    CREDIT_SCORES,
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    LOAN_TYPES,
    TARGET,
    Feature,
)

Layout = Literal["ours", "kaggle"]

KAGGLE_COLUMNS = (
    "ID", "Customer_ID", "Month", "Name", "Age", "SSN", "Occupation", "Annual_Income",
    "Monthly_Inhand_Salary", "Num_Bank_Accounts", "Num_Credit_Card", "Interest_Rate",
    "Num_of_Loan", "Type_of_Loan", "Delay_from_due_date", "Num_of_Delayed_Payment",
    "Changed_Credit_Limit", "Num_Credit_Inquiries", "Credit_Mix", "Outstanding_Debt",
    "Credit_Utilization_Ratio", "Credit_History_Age", "Payment_of_Min_Amount",
    "Total_EMI_per_month", "Amount_invested_monthly", "Payment_Behaviour", "Monthly_Balance",
    "Credit_Score",
)  # fmt: skip
# Kaggle's names are ours capitalised; ID has no counterpart and is not kept.
KAGGLE_TO_OURS = {name: name.lower() for name in KAGGLE_COLUMNS if name != "ID"}
KEY_AND_FEATURES = frozenset({"customer_id", "month", *FEATURE_NAMES})
# What a quarantined row keeps of its cells: never name, SSN or columns we do not know.
QUARANTINED_COLUMNS = ("customer_id", "month", *FEATURE_NAMES, TARGET, "label_observed_at")
REQUIRED_COLUMNS: dict[Layout, frozenset[str]] = {
    "ours": KEY_AND_FEATURES,
    "kaggle": frozenset(k for k, v in KAGGLE_TO_OURS.items() if v in KEY_AND_FEATURES),
}
MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip

PLACEHOLDER = r"_*|NA|nan|NaN"
NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?_*"
DURATION = r"(\d+) Years? and (\d+) Months?"
LOAN_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
SSN = r"\d{3}-\d{2}-\d{4}"
ISO_MONTH = r"\d{4}-\d{2}(?:-\d{2})?"
ISO_DATETIME = r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
# Months outside this window are data errors, and beyond it pandas and MariaDB dates end.
MIN_YEAR, MAX_YEAR = 1900, 2200
MAX_SHOWN_CHARS = 40
MAX_REASON_CHARS = 1000
COLUMN_LIMITS = {"customer_id": 24, "name": 100, "type_of_loan": 255}
CREDIT_SCORE_FEATURE = Feature(TARGET, "categorical", domain=CREDIT_SCORES, nullable=True)


@dataclass(frozen=True)
class IngestResult:
    """What one `ingest_csv` call did; loaded + quarantined + superseded always equals read."""

    file_name: str
    rows_read: int
    rows_loaded: int  # one per (customer_id, month): the last clean row in the file
    rows_quarantined: int
    rows_superseded: int  # clean rows whose (customer_id, month) a later row replaces
    labels_loaded: int  # label rows written: one per (customer_id, month)
    quarantine_reasons: dict[str, int]

    def __post_init__(self) -> None:
        accounted = self.rows_loaded + self.rows_quarantined + self.rows_superseded
        if accounted != self.rows_read:
            raise AssertionError(
                f"{self.file_name}: {self.rows_loaded} loaded + {self.rows_quarantined}"
                f" quarantined + {self.rows_superseded} superseded != {self.rows_read} read"
            )


def new_rows_announcement(result: IngestResult) -> dict[str, object]:
    """What the asset event for an ingested file carries: its name and its counts."""
    return {
        "file": result.file_name,
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_quarantined": result.rows_quarantined,
        "rows_superseded": result.rows_superseded,
    }


@dataclass(frozen=True)
class CleanColumn:
    """One column's cleaned values (missing or bad → NA) and its problems, one per bad row."""

    values: pd.Series
    problems: pd.DataFrame  # index: row label; columns: category, message


@dataclass(frozen=True)
class CleanFrame:
    """Cleaned columns for every row, and every problem found (several per row possible)."""

    rows: pd.DataFrame
    problems: pd.DataFrame  # index: row label; columns: category, message

    @property
    def bad_rows(self) -> pd.Index:
        return self.problems.index.unique()

    def reasons(self) -> pd.Series:
        """The `; `-joined messages per bad row, in column order."""
        joined: dict[object, list[str]] = {}
        for row, message in zip(self.problems.index, self.problems["message"], strict=True):
            joined.setdefault(row, []).append(message)
        return pd.Series({row: "; ".join(parts) for row, parts in joined.items()}, dtype=object)


def _cells(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Cells as stripped strings, and where they are placeholders for a missing value."""
    cells = raw.astype("str").fillna("").str.strip()
    return cells, cells.str.fullmatch(PLACEHOLDER)


def is_missing(raw: pd.Series) -> pd.Series:
    """True where a cell is empty, NA/nan or a run of underscores only."""
    return _cells(raw)[1]


def _cut(values: pd.Series, limit: int) -> pd.Series:
    return values.where(values.str.len() <= limit, values.str.slice(0, limit - 1) + "…")


def _problem(
    column: str, rule: str, mask: pd.Series, message: str, values: pd.Series | None = None
) -> pd.DataFrame:
    """Problems for the rows in `mask`; `{}` in `message` shows each row's value, cut short."""
    rows = mask.index[mask.to_numpy(dtype=bool)]
    if rows.empty:
        return _no_problems()
    if values is None:
        messages = pd.Series(f"{column}: {message}", index=rows, dtype=object)
    else:
        prefix, suffix = f"{column}: {message}".split("{}")
        shown = _cut(values.loc[rows].astype("str"), MAX_SHOWN_CHARS)
        messages = (prefix + shown + suffix).astype(object)
    return pd.DataFrame({"category": f"{column}: {rule}", "message": messages}, index=rows)


def _no_problems() -> pd.DataFrame:
    return pd.DataFrame({"category": pd.Series(dtype=object), "message": pd.Series(dtype=object)})


def _combine(problems: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """All problems ordered by row; within a row they keep the order given."""
    frames = [p for p in problems if not p.empty]
    return pd.concat(frames).sort_index(kind="stable") if frames else _no_problems()


def _bound(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def _checked_numbers(
    feature: Feature,
    number: pd.Series,
    shown: pd.Series,
    missing: pd.Series,
    problems: list[pd.DataFrame],
) -> CleanColumn:
    """Apply the missing, whole-number and range rules to already parsed numbers."""
    name = feature.name
    if not feature.nullable:
        problems.append(_problem(name, "missing required value", missing, "missing required value"))
    fractional = pd.Series(False, index=number.index)
    if feature.integer:
        fractional = np.isfinite(number) & (number != np.floor(number))
    low = -np.inf if feature.low is None else feature.low
    high = np.inf if feature.high is None else feature.high
    out_of_range = number.notna() & ~fractional & ((number < low) | (number > high))
    bounds = f"[{_bound(feature.low)}, {_bound(feature.high)}]"
    problems.append(
        _problem(name, "not a whole number", fractional, "not a whole number '{}'", shown)
    )
    problems.append(_problem(name, "out of range", out_of_range, "{} outside " + bounds, shown))
    values = number.where(~(fractional | out_of_range))
    if feature.integer:
        values = values.astype("Int64")
    return CleanColumn(values, _combine(problems))


def clean_numeric(raw: pd.Series, feature: Feature) -> CleanColumn:
    """Strip trailing underscores, treat placeholders as missing, refuse garbage and outliers."""
    cells, missing = _cells(raw)
    well_formed = cells.str.fullmatch(NUMBER)
    stripped = cells.str.rstrip("_")
    number = pd.to_numeric(stripped.where(well_formed), errors="coerce").astype(float)
    garbage = ~missing & ~well_formed
    problems = [_problem(feature.name, "not a number", garbage, "not a number '{}'", cells)]
    return _checked_numbers(feature, number, stripped, missing, problems)


def clean_credit_history_age(raw: pd.Series) -> CleanColumn:
    """Kaggle's "22 Years and 1 Months" as a whole number of months (265)."""
    feature = FEATURES_BY_NAME["credit_history_age"]
    cells, missing = _cells(raw)
    parts = cells.str.extract(f"^{DURATION}$").apply(pd.to_numeric)
    parsed = parts[0].notna() & (parts[1] < 12)
    number = (parts[0] * 12 + parts[1]).where(parsed).astype(float)
    problems = [
        _problem(feature.name, "not a duration", ~missing & ~parsed, "not a duration '{}'", cells)
    ]
    months = number.astype("Int64").astype("str") + " months"
    return _checked_numbers(feature, number, months, missing, problems)


def clean_categorical(raw: pd.Series, feature: Feature) -> CleanColumn:
    """Keep values of the feature's domain; placeholders are missing; anything else is refused."""
    cells, missing = _cells(raw)
    unknown = ~missing & ~cells.isin(feature.domain)
    problems = [_problem(feature.name, "not in domain", unknown, "'{}' not in domain", cells)]
    if not feature.nullable:
        problems.append(
            _problem(feature.name, "missing required value", missing, "missing required value")
        )
    return CleanColumn(cells.where(~missing & ~unknown), _combine(problems))


def normalise_loan_list(value: str) -> tuple[str, tuple[str, ...]]:
    """`"A, B, and C"` → `"A,B,C"`, plus the items that are not known loan types."""
    items = LOAN_SEPARATOR.split(value.strip())
    return ",".join(items), tuple(item for item in items if item not in LOAN_TYPES)


def clean_loan_list(raw: pd.Series) -> CleanColumn:
    """Normalise loan lists to our comma-separated form; unknown loan types are refused."""
    feature = FEATURES_BY_NAME["type_of_loan"]
    cells, missing = _cells(raw)
    # Loan lists repeat a lot, so normalising each distinct value once keeps this fast.
    normalised, unknown = {}, {}
    for value in cells[~missing].unique():
        normalised[value], bad_items = normalise_loan_list(value)
        if bad_items:
            unknown[value] = ", ".join(f"'{item}'" for item in bad_items)
    values = cells.map(normalised).where(~missing)
    has_unknown = cells.isin(list(unknown))
    limit = COLUMN_LIMITS["type_of_loan"]
    too_long = ~has_unknown & (values.str.len() > limit)
    problems = [
        _problem(
            feature.name,
            "unknown loan type",
            has_unknown,
            "unknown loan type {}",
            cells.map(unknown),
        ),
        _problem(feature.name, "too long", too_long, f"longer than {limit} characters"),
    ]
    return CleanColumn(values.where(~has_unknown & ~too_long), _combine(problems))


def _required_text(raw: pd.Series, column: str) -> CleanColumn:
    cells, missing = _cells(raw)
    limit = COLUMN_LIMITS[column]
    too_long = cells.str.len() > limit
    problems = [
        _problem(column, "missing required value", missing, "missing required value"),
        _problem(column, "too long", too_long, f"longer than {limit} characters"),
    ]
    return CleanColumn(cells.where(~missing & ~too_long), _combine(problems))


def clean_month_names(raw: pd.Series, year: int) -> CleanColumn:
    """Kaggle's English month names ("January") as the first day of that month in `year`."""
    cells, missing = _cells(raw)
    firsts = {name: pd.Timestamp(year, number, 1) for number, name in enumerate(MONTH_NAMES, 1)}
    months = pd.to_datetime(cells.str.lower().map(firsts))
    problems = [
        _problem("month", "missing required value", missing, "missing required value"),
        _problem("month", "unparseable", ~missing & months.isna(), "unparseable '{}'", cells),
    ]
    return CleanColumn(months, _combine(problems))


def clean_iso_months(raw: pd.Series) -> CleanColumn:
    """`YYYY-MM` or `YYYY-MM-01` as a month; other days of the month are refused."""
    cells, missing = _cells(raw)
    full = cells.where(cells.str.len() != 7, cells + "-01")
    dates = pd.to_datetime(
        full.where(cells.str.fullmatch(ISO_MONTH)), format="%Y-%m-%d", errors="coerce"
    )
    not_first = dates.notna() & (dates.dt.day != 1)
    out_of_range = dates.notna() & ~dates.dt.year.between(MIN_YEAR, MAX_YEAR)
    problems = [
        _problem("month", "missing required value", missing, "missing required value"),
        _problem("month", "unparseable", ~missing & dates.isna(), "unparseable '{}'", cells),
        _problem(
            "month", "not the first of a month", not_first, "not the first of a month '{}'", cells
        ),
    ]
    problems.append(
        _problem(
            "month", "out of range", out_of_range, f"'{{}}' outside {MIN_YEAR}..{MAX_YEAR}", cells
        )
    )
    return CleanColumn(dates.where(~not_first & ~out_of_range), _combine(problems))


def clean_observed_at(raw: pd.Series | None, months: pd.Series, delay_days: int) -> CleanColumn:
    """When labels became known: as given, or else month + 1 month + `delay_days`."""
    default = months + pd.offsets.MonthBegin(1) + pd.Timedelta(days=delay_days)
    if raw is None:
        return CleanColumn(default, _no_problems())
    cells, missing = _cells(raw)
    given = pd.to_datetime(
        cells.where(cells.str.fullmatch(ISO_DATETIME)), format="ISO8601", errors="coerce"
    )
    bad = ~missing & given.isna()
    early = given.notna() & (given < months)
    problems = [
        _problem("label_observed_at", "unparseable", bad, "unparseable '{}'", cells),
        _problem(
            "label_observed_at",
            "before its month",
            early,
            "'{}' is before the month it labels",
            cells,
        ),
    ]
    return CleanColumn(given.where(~missing, default).where(~early), _combine(problems))


def detect_layout(columns: Iterable[str]) -> Layout:
    """Tell our layout from Kaggle's by the header; raise naming what is missing otherwise."""
    present = set(columns)
    missing = {layout: sorted(required - present) for layout, required in REQUIRED_COLUMNS.items()}
    for layout, absent in missing.items():
        if not absent:
            return layout
    closest = min(missing, key=lambda layout: len(missing[layout]))
    raise InvalidInput(
        f"unrecognised CSV header; for the {closest} layout it lacks {missing[closest]}"
    )


def clean_frame(raw: pd.DataFrame, *, year: int = 2025, label_delay_days: int = 20) -> CleanFrame:
    """Clean a CSV read as strings; rows with any problem are listed in `problems`."""
    layout = detect_layout(raw.columns)
    frame = raw.rename(columns=KAGGLE_TO_OURS) if layout == "kaggle" else raw
    columns = {"customer_id": _required_text(frame["customer_id"], "customer_id")}
    if layout == "kaggle":
        columns["month"] = clean_month_names(frame["month"], year)
    else:
        columns["month"] = clean_iso_months(frame["month"])
    for feature in FEATURES:
        cells = frame[feature.name]
        if feature.kind == "loan_list":
            columns[feature.name] = clean_loan_list(cells)
        elif feature.kind == "categorical":
            columns[feature.name] = clean_categorical(cells, feature)
        elif feature.name == "credit_history_age" and layout == "kaggle":
            columns[feature.name] = clean_credit_history_age(cells)
        else:
            columns[feature.name] = clean_numeric(cells, feature)
    if TARGET in frame:
        columns[TARGET] = clean_categorical(frame[TARGET], CREDIT_SCORE_FEATURE)
    columns["observed_at"] = clean_observed_at(
        frame.get("label_observed_at"), columns["month"].values, label_delay_days
    )
    rows = pd.DataFrame({name: column.values for name, column in columns.items()})
    if TARGET not in rows:
        rows[TARGET] = pd.Series(np.nan, index=rows.index, dtype="str")
    rows["name"] = _optional_text(frame.get("name"), rows.index).str.slice(0, COLUMN_LIMITS["name"])
    ssn = _optional_text(frame.get("ssn"), rows.index)
    # SSN is PII, not a feature: a malformed one is forgotten instead of refusing the row.
    rows["ssn"] = ssn.where(ssn.str.fullmatch(SSN))
    problems = _combine(column.problems for column in columns.values())
    # Only rows without a customer can be empty, so only those are checked cell by cell.
    suspects = raw.loc[rows["customer_id"].isna()]
    empty = suspects.apply(is_missing).all(axis=1)
    if empty.any():
        problems = _combine(
            [
                problems.loc[~problems.index.isin(empty.index[empty])],
                _problem("row", "empty", empty, "no values"),
            ]
        )
    return CleanFrame(rows, problems)


def _optional_text(raw: pd.Series | None, index: pd.Index) -> pd.Series:
    if raw is None:
        return pd.Series(np.nan, index=index, dtype="str")
    cells, missing = _cells(raw)
    return cells.where(~missing)


def read_raw_csv(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The CSV as strings, and each row's line number in the file (header = line 1)."""
    try:
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError as error:
        raise InvalidInput(f"{path}: no CSV header") from error
    raw.columns = [str(c).strip() for c in raw.columns]
    # Quoted cells may span lines; count them so line numbers point at the real line.
    newlines = sum(
        (raw[c].fillna("").str.count("\n") for c in raw.columns),
        start=pd.Series(0, index=raw.index),
    )
    lines = 2 + pd.Series(np.arange(len(raw)), index=raw.index) + newlines.cumsum() - newlines
    return raw, lines


def _upsert(connection: Connection, table: str, frame: pd.DataFrame) -> None:
    batch = get_settings().mlops_load_batch_rows
    for start in range(0, len(frame), batch):
        upsert_frame(connection, table, frame.iloc[start : start + batch])


def _quarantine_frame(
    file_name: str, raw: pd.DataFrame, lines: pd.Series, reasons: pd.Series
) -> pd.DataFrame:
    """Line, reason and the key and feature cells as read; PII stays out of the quarantine."""
    named = raw.loc[reasons.index].rename(columns=KAGGLE_TO_OURS)
    bad = named[[c for c in QUARANTINED_COLUMNS if c in named.columns]]
    header = [str(c) for c in bad.columns]
    cells = bad.astype(object).where(bad.notna(), None).itertuples(index=False, name=None)
    records = [json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False) for row in cells]
    return pd.DataFrame(
        {
            "file_name": file_name,
            "line_number": lines.loc[reasons.index].to_numpy(),
            "feature_values": records,
            "reason": _cut(reasons.astype("str"), MAX_REASON_CHARS).to_numpy(),
        }
    )


def ingest_csv(
    path: Path, url: str | None = None, *, year: int = 2025, label_delay_days: int = 20
) -> IngestResult:
    """Clean one CSV and load it, with its quarantined rows, in a single transaction.

    Of clean rows repeating a (customer_id, month), the last in the file wins (superseded).
    """
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidInput(f"year must be in {MIN_YEAR}..{MAX_YEAR}, got {year}")
    if label_delay_days < 0:
        raise InvalidInput(f"label_delay_days must be >= 0, got {label_delay_days}")
    path = Path(path)
    file_name = path.name
    raw, lines = read_raw_csv(path)
    cleaned = clean_frame(raw, year=year, label_delay_days=label_delay_days)
    reasons = cleaned.reasons()
    good = cleaned.rows.drop(index=cleaned.bad_rows)
    latest = good.drop_duplicates(["customer_id", "month"], keep="last")

    # Per customer, the last name and SSN the file gives (groupby.last skips missing ones).
    customers = good.groupby("customer_id", sort=False)[["name", "ssn"]].last().reset_index()
    features = latest[["customer_id", "month", *FEATURE_NAMES]].assign(
        month=latest["month"].dt.strftime("%Y-%m-%d"), source=file_name
    )
    labelled = latest[latest[TARGET].notna()]
    labels = pd.DataFrame(
        {
            "customer_id": labelled["customer_id"],
            "month": labelled["month"].dt.strftime("%Y-%m-%d"),
            "credit_score": labelled[TARGET],
            "observed_at": labelled["observed_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    quarantine = _quarantine_frame(file_name, raw, lines, reasons)

    with db.transaction(url) as connection:
        # The file's quarantine reflects its latest ingest; rows fixed since then drop out.
        connection.execute(
            text("DELETE FROM ingest_quarantine WHERE file_name = :file_name"),
            {"file_name": file_name},
        )
        _upsert(connection, "customers", customers)
        _upsert(connection, "customer_features_monthly", features)
        _upsert(connection, "credit_labels", labels)
        _upsert(connection, "ingest_quarantine", quarantine)

    counts = cleaned.problems["category"].value_counts()
    return IngestResult(
        file_name=file_name,
        rows_read=len(raw),
        rows_loaded=len(latest),
        rows_quarantined=len(quarantine),
        rows_superseded=len(good) - len(latest),
        labels_loaded=len(labels),
        quarantine_reasons={str(k): int(v) for k, v in counts.items()},
    )
