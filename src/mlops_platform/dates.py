"""Calendar months, the unit of features, snapshots and labels: the one home of their arithmetic."""

from __future__ import annotations

from datetime import date, datetime


def month_of(moment: datetime | date) -> date:
    """The first day of the moment's month: the base date a monthly run works on."""
    return date(moment.year, moment.month, 1)


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month (before it when negative)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from `earlier`'s month to `later`'s (negative when reversed)."""
    return (later.year - earlier.year) * 12 + later.month - earlier.month
