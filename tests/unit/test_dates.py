"""Base dates: only a first-of-month `YYYY-MM-DD` (or `date`) reaches the snapshot SQL."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest

from mlops_platform.dates import add_months, month_of, months_between
from mlops_platform.features import parse_base_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-01", date(2025, 1, 1)),
        ("2024-02-01", date(2024, 2, 1)),
        (date(2025, 12, 1), date(2025, 12, 1)),
    ],
)
def test_accepts_first_of_month(value: str | date, expected: date) -> None:
    assert parse_base_date(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-01' OR 1=1 --",
        "2025-01-01; DROP TABLE training_snapshots",
        "2025-13-01",
        "2025-02-30",
        "2025-01-15",
        "2025-1-1",
        "20250101",
        "2025-01-01T00:00:00",
        "2025-01-01 00:00:00",
        "2025-01-01\n",
        " 2025-01-01",
        "٢٠٢٥-٠١-٠١",  # Arabic-Indic digits match \d without re.ASCII
        "",
        date(2025, 1, 15),
        datetime(2025, 1, 1),
        20250101,
        None,
    ],
)
def test_rejects_anything_else(value: object) -> None:
    with pytest.raises(ValueError, match="invalid base date") as raised:
        parse_base_date(value)  # type: ignore[arg-type]
    assert "YYYY-MM-DD" in str(raised.value)


def test_error_names_the_value() -> None:
    injection = "2025-01-01' OR 1=1 --"
    with pytest.raises(ValueError, match=re.escape(repr(injection))):
        parse_base_date(injection)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 1, 1), 12, date(2024, 1, 1)),
        (date(2025, 3, 1), 2, date(2025, 1, 1)),
        (date(2025, 3, 1), 3, date(2024, 12, 1)),
        (date(2025, 1, 1), 1, date(2024, 12, 1)),
        (date(2025, 6, 1), 120, date(2015, 6, 1)),
    ],
)
def test_months_before(day: date, months: int, expected: date) -> None:
    assert add_months(day, -months) == expected
    assert months_between(expected, day) == months
    assert add_months(expected, months) == day


def test_the_month_of_a_moment_is_its_first_day() -> None:
    assert month_of(datetime(2025, 12, 31, 23, 59)) == date(2025, 12, 1)
    assert month_of(date(2024, 2, 29)) == date(2024, 2, 1)
