"""Usage over a date range: server hours by user and profile, Dask core-hours and memory-hours
(GiB × hours) by user, and both per UTC day by profile (the charts). A run still going counts up
to ``now``; runs are clipped to the range. A Dask container's profile is that of the server its
cluster came from (the user's server of that name running when the container started)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import or_, select

from core.timeutil import as_utc
from service.db import Database
from service.usage.daily import hours_by_day
from service.usage.models import DaskSession, ServerSession

GIB = 1024**3
DEFAULT_DAYS = 30
NO_SERVER = "(no server)"  # the profile of Dask use whose server is not on record
CSV_COLUMNS = ("user", "kind", "profile", "server_hours", "dask_core_hours", "dask_memory_gib_hours")


class RangeError(ValueError):
    """The date range asked for is unusable; the message says why."""


def _parse_bound(value: str, name: str, end: bool) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:  # a date: the start of that day, or the end of it for ``end``
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
        else:
            moment = as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise RangeError(f"{name}: {value!r} is not a date; write YYYY-MM-DD (or an ISO 8601 time)") from None
    return moment.astimezone(UTC)


def parse_range(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``start`` and ``end`` (``YYYY-MM-DD``, both days included, or ISO times) → [from, to).
    Missing: the last 30 days up to ``now``. Raises :class:`RangeError`."""
    upper = _parse_bound(end, "end", end=True) if end else now
    lower = _parse_bound(start, "start", end=False) if start else upper - timedelta(days=DEFAULT_DAYS)
    if lower >= upper:
        shown_start = start.strip() if start else lower.date().isoformat()
        shown_end = end.strip() if end else upper.date().isoformat()  # as typed: the end day is included
        raise RangeError(f"start ({shown_start}) must be before end ({shown_end})")
    return lower, upper


def overlap_hours(started: datetime, stopped: datetime, lower: datetime, upper: datetime) -> float:
    """Hours of [started, stopped) inside [lower, upper)."""
    seconds = (min(stopped, upper) - max(started, lower)).total_seconds()
    return max(0.0, seconds) / 3600


@dataclass
class Report:
    start: datetime
    end: datetime
    servers: dict[tuple[str, str], float] = field(default_factory=dict)  # (user, profile) → hours
    dask: dict[str, tuple[float, float]] = field(default_factory=dict)  # user → (core-hours, GiB-hours)
    server_days: dict[tuple[date, str], float] = field(default_factory=dict)  # (UTC day, profile) → hours
    dask_days: dict[tuple[date, str], float] = field(default_factory=dict)  # (UTC day, profile) → core-hours

    def users(self) -> list[str]:
        return sorted({user for user, _ in self.servers} | set(self.dask))

    def rows(self) -> list[dict[str, Any]]:
        """One row per (user, profile) of server hours and one per user of Dask use, by user."""
        rows: list[dict[str, Any]] = []
        for user in self.users():
            for (owner, profile), hours in sorted(self.servers.items()):
                if owner == user:
                    rows.append({"user": user, "kind": "server", "profile": profile, "server_hours": round(hours, 6),
                                 "dask_core_hours": 0.0, "dask_memory_gib_hours": 0.0})
            if user in self.dask:
                cores, memory = self.dask[user]
                rows.append({"user": user, "kind": "dask", "profile": "", "server_hours": 0.0,
                             "dask_core_hours": round(cores, 6), "dask_memory_gib_hours": round(memory, 6)})
        return rows

    def totals(self) -> dict[str, float]:
        return {"server_hours": round(sum(self.servers.values()), 6),
                "dask_core_hours": round(sum(c for c, _ in self.dask.values()), 6),
                "dask_memory_gib_hours": round(sum(m for _, m in self.dask.values()), 6)}

    def as_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "rows": self.rows(),
                "totals": self.totals()}

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({key: _csv_safe(row[key]) for key in CSV_COLUMNS})
        return out.getvalue()


def _csv_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def usage_report(db: Database, start: datetime, end: datetime, now: datetime, user: str | None = None) -> Report:
    """Usage in [start, end) for everyone, or for ``user`` only."""
    report = Report(start=start, end=end)
    runs: dict[tuple[str, str], list[tuple[datetime, datetime, str]]] = {}  # (user, server) → its runs
    with db.session() as session:
        query = select(ServerSession).where(ServerSession.started < end,
                                            or_(ServerSession.stopped.is_(None), ServerSession.stopped > start))
        if user is not None:
            query = query.where(ServerSession.user_name == user)
        for run in session.scalars(query):
            stop = run.stopped if run.stopped is not None else now
            runs.setdefault((run.user_name, run.server_name), []).append((run.started, stop, run.profile))
            hours = overlap_hours(run.started, stop, start, end)
            if hours <= 0:
                continue
            key = (run.user_name, run.profile)
            report.servers[key] = report.servers.get(key, 0.0) + hours
            _add_days(report.server_days, run.profile, run.started, stop, start, end, 1.0)
        dask_query = select(DaskSession).where(DaskSession.started < end,
                                               or_(DaskSession.stopped.is_(None), DaskSession.stopped > start))
        if user is not None:
            dask_query = dask_query.where(DaskSession.user_name == user)
        for container in session.scalars(dask_query):
            stop = container.stopped if container.stopped is not None else now
            hours = overlap_hours(container.started, stop, start, end)
            if hours <= 0:
                continue
            cores, memory = report.dask.get(container.user_name, (0.0, 0.0))
            report.dask[container.user_name] = (cores + hours * container.cores,
                                                 memory + hours * container.memory / GIB)
            profile = _profile_at(runs.get((container.user_name, container.server_name), []), container.started)
            _add_days(report.dask_days, profile, container.started, stop, start, end, container.cores)
    return report


def _add_days(into: dict[tuple[date, str], float], profile: str, started: datetime, stopped: datetime,
              lower: datetime, upper: datetime, weight: float) -> None:
    for day, hours in hours_by_day(started, stopped, lower, upper):
        into[(day, profile)] = into.get((day, profile), 0.0) + hours * weight


def _profile_at(runs: list[tuple[datetime, datetime, str]], moment: datetime) -> str:
    """The profile of the run going at ``moment``, else of the last one started before it."""
    before = sorted((run for run in runs if run[0] <= moment), key=lambda run: run[0])
    going = [run for run in before if moment <= run[1]]
    chosen = going or before
    return chosen[-1][2] if chosen else NO_SERVER
