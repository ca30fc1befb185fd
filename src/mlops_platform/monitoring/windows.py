"""Monitoring windows: which logged rows and arrived labels one check judges."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlops_platform.config import get_settings
from mlops_platform.errors import InvalidInput


@dataclass(frozen=True)
class Window:
    """A monitoring window [start, end) in naive UTC, as `prediction_log` stores times."""

    start: datetime
    end: datetime

    def slices(self, count: int) -> list[Window]:
        """`count` consecutive windows that cover this one exactly."""
        step = (self.end - self.start) / count
        bounds = [min(self.start + step * i, self.end) for i in range(count)] + [self.end]
        return [Window(a, b) for a, b in itertools.pairwise(bounds) if a < b]

    def label(self) -> str:
        """The window for people: minutes, UTC."""
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


def utc_naive(moment: datetime | str) -> datetime:
    """A datetime or ISO string as naive UTC; naive input is taken to be UTC already."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def this_hour() -> datetime:
    """The start of the current hour in naive UTC: what "now" is without a logical time, so
    repeated runs within the hour judge one window."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)


def resolve_window(
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    now: datetime | str | None = None,
) -> Window:
    """The window to judge: `end` defaults to `now` (or this hour), `start` to a window before.

    Callers with a logical time (Airflow) pass it, so a re-run judges the same window.
    """
    if end is None and now is None:
        now = this_hour()
    window_end = utc_naive(end if end is not None else now)
    window_start = (
        utc_naive(start)
        if start is not None
        else window_end - timedelta(hours=get_settings().drift_window_hours)
    )
    if window_start >= window_end:
        raise InvalidInput(f"the window must start before it ends: {window_start} >= {window_end}")
    return Window(window_start, window_end)
