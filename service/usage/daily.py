"""Usage by UTC day: a run's hours split at midnights, and the days a range covers (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

MAX_DAYS = 366  # the longest range drawn day by day


def days_of(start: datetime, end: datetime) -> list[date]:
    """The UTC days that [start, end) touches, in order; [] when longer than ``MAX_DAYS``."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    count = (last - first).days + 1
    if count <= 0 or count > MAX_DAYS:
        return []
    return [first + timedelta(days=n) for n in range(count)]


def hours_by_day(started: datetime, stopped: datetime, lower: datetime,
                 upper: datetime) -> Iterator[tuple[date, float]]:
    """The hours of [started, stopped) inside [lower, upper), day by UTC day (days with none left out)."""
    begin, finish = max(started, lower).astimezone(UTC), min(stopped, upper).astimezone(UTC)
    while begin < finish:
        midnight = datetime.combine(begin.date() + timedelta(days=1), time(), UTC)
        step = min(midnight, finish)
        yield begin.date(), (step - begin).total_seconds() / 3600
        begin = step
