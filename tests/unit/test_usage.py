"""Usage accounting over a chosen clock: runs recorded from what the hub and the engine report,
restarts of the service never counting a run twice, ranges, and the CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.db import Database
from service.hub import HubUnreachable
from service.usage import DaskContainer, DaskSession, RangeError, ServerSession, UsageRecorder, parse_range
from service.usage.recorder import parse_time
from service.usage.report import usage_report
from service.watcher import HubWatcher

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GIB = 1024**3


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Hub:
    """What ``GET /hub/api/users?state=active`` answers: user → server → model."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, dict[str, Any]]] = {}
        self.down = False

    async def active_servers(self) -> dict[str, dict[str, dict[str, Any]]]:
        if self.down:
            raise HubUnreachable("the hub is restarting")
        return {user: dict(servers) for user, servers in self.active.items()}

    def start(self, user: str, server: str, started: datetime, profile: str | None = "small") -> None:
        options = {"profile": profile} if profile else {}
        self.active.setdefault(user, {})[server] = {
            "started": started.isoformat().replace("+00:00", "Z"), "ready": True, "user_options": options}

    def stop(self, user: str, server: str) -> None:
        self.active.get(user, {}).pop(server, None)
        if not self.active.get(user):
            self.active.pop(user, None)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'service.sqlite'}")


class Watched:
    """The recorder as the service runs it: told by a hub watcher's pass, and its own Dask pass."""

    def __init__(self, rec: UsageRecorder, hub: Hub) -> None:
        self.rec = rec
        self.watcher = HubWatcher(hub, clock=rec.clock)
        self.watcher.watch("Usage", rec.servers_changed)

    async def tick(self) -> None:
        await self.watcher.run_pass()
        await self.rec.dask_pass()


def recorder(db: Database, hub: Hub, clock: Clock, dask: list[DaskContainer] | None = None,
             profile_of: Any = None) -> Watched:
    return Watched(UsageRecorder(db, clock=clock, dask_source=(lambda: list(dask)) if dask is not None else None,
                                 profile_of=profile_of, default_profile=lambda: "small"), hub)


def tick(rec: Watched) -> None:
    asyncio.run(rec.tick())


def server_hours(db: Database, start: datetime, end: datetime, now: datetime, user: str | None = None
                 ) -> dict[tuple[str, str], float]:
    return {k: round(v, 6) for k, v in usage_report(db, start, end, now, user=user).servers.items()}


def test_a_server_run_counts_from_its_true_start_to_when_it_was_seen_gone(db: Database) -> None:
    hub, clock = Hub(), Clock(T0)
    rec = recorder(db, hub, clock)
    hub.start("alice", "", T0 - timedelta(minutes=30), profile="gpu")  # started before the first pass
    tick(rec)
    clock.advance(hours=1)
    tick(rec)
    clock.advance(minutes=30)
    hub.stop("alice", "")
    tick(rec)
    day = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert server_hours(db, *day, clock.now) == {("alice", "gpu"): 2.0}
    clock.advance(hours=5)  # stopped: no more hours accrue
    assert server_hours(db, *day, clock.now) == {("alice", "gpu"): 2.0}


def test_a_running_server_counts_up_to_now_and_is_clipped_to_the_range(db: Database) -> None:
    hub, clock = Hub(), Clock(T0)
    rec = recorder(db, hub, clock)
    hub.start("bob", "big", T0, profile="large")
    tick(rec)
    clock.advance(hours=3)
    tick(rec)
    assert server_hours(db, T0 - timedelta(hours=1), T0 + timedelta(days=1), clock.now) == {("bob", "large"): 3.0}
    assert server_hours(db, T0 + timedelta(hours=1), T0 + timedelta(hours=2), clock.now) == {("bob", "large"): 1.0}
    assert server_hours(db, T0 + timedelta(hours=5), T0 + timedelta(hours=6), clock.now) == {}


def test_a_server_running_across_a_service_restart_is_counted_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.sqlite'}"
    hub, clock = Hub(), Clock(T0)
    hub.start("alice", "", T0)
    tick(recorder(Database(url), hub, clock))
    clock.advance(hours=1)
    # the service restarts: a new process, the same database
    db = Database(url)
    rec = recorder(db, hub, clock)
    tick(rec)
    clock.advance(hours=1)
    tick(rec)
    hub.stop("alice", "")
    clock.advance(minutes=6)
    tick(rec)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ServerSession)) == 1
    assert server_hours(db, T0, T0 + timedelta(days=1), clock.now) == {("alice", "small"): 2.1}


def test_a_stop_while_the_service_was_down_counts_only_what_was_seen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.sqlite'}"
    hub, clock = Hub(), Clock(T0)
    hub.start("carol", "", T0)
    tick(recorder(Database(url), hub, clock))
    clock.advance(minutes=30)
    tick(recorder(Database(url), hub, clock))  # last seen at 30 min
    # the service is down; the server stops and a new one of hers starts
    hub.stop("carol", "")
    clock.advance(hours=2)
    hub.start("carol", "", clock.now - timedelta(minutes=10), profile="medium")
    db = Database(url)
    tick(recorder(db, hub, clock))
    hours = server_hours(db, T0, T0 + timedelta(days=1), clock.now)
    assert hours == {("carol", "small"): 0.5, ("carol", "medium"): round(10 / 60, 6)}


def test_no_stop_is_made_up_while_the_hub_does_not_answer(db: Database) -> None:
    hub, clock = Hub(), Clock(T0)
    rec = recorder(db, hub, clock)
    hub.start("dave", "", T0)
    tick(rec)
    hub.down = True
    clock.advance(hours=1)
    tick(rec)
    with db.session() as session:
        assert session.scalars(select(ServerSession.stopped)).one() is None
    hub.down = False
    clock.advance(hours=1)
    tick(rec)
    assert server_hours(db, T0, T0 + timedelta(days=1), clock.now) == {("dave", "small"): 2.0}


def test_the_profile_comes_from_the_options_else_the_container_else_the_default(db: Database) -> None:
    hub, clock = Hub(), Clock(T0)
    labels = {("erin", "a"): "medium"}
    rec = recorder(db, hub, clock, profile_of=lambda user, server: labels.get((user, server)))
    hub.start("erin", "a", T0, profile=None)
    hub.start("erin", "b", T0, profile=None)
    hub.start("erin", "c", T0, profile="gpu")
    tick(rec)
    with db.session() as session:
        found = {r.server_name: r.profile for r in session.scalars(select(ServerSession))}
    assert found == {"a": "medium", "b": "small", "c": "gpu"}


def worker(cid: str, user: str, cluster: str, started: datetime, cores: float = 2, memory: int = 4 * GIB,
           role: str = "worker", running: bool = True, finished: datetime | None = None) -> DaskContainer:
    return DaskContainer(id=cid, user=user, cluster=cluster, role=role, server="", cores=cores, memory=memory,
                         started=started, running=running, finished=finished)


def test_dask_core_and_memory_hours_by_user(db: Database) -> None:
    hub, clock = Hub(), Clock(T0)
    live = [worker("s1", "alice", "c1", T0, cores=1, memory=1 * GIB, role="scheduler"),
            worker("w1", "alice", "c1", T0), worker("w2", "alice", "c1", T0 + timedelta(minutes=30))]
    rec = recorder(db, hub, clock, dask=live)
    tick(rec)
    clock.advance(minutes=30)
    tick(rec)
    clock.advance(minutes=30)
    tick(rec)
    # w2 exits with the engine's FinishedAt 15 min after start; the others are removed 30 min later
    live[2] = worker("w2", "alice", "c1", T0 + timedelta(minutes=30), running=False,
                     finished=T0 + timedelta(minutes=45))
    tick(rec)
    clock.advance(minutes=30)
    live.clear()
    tick(rec)
    report = usage_report(db, T0, T0 + timedelta(days=1), clock.now)
    cores, memory = report.dask["alice"]
    # scheduler 1 core × 1.5 h + w1 2 cores × 1.5 h + w2 2 cores × 0.25 h
    assert round(cores, 6) == 1.5 + 3.0 + 0.5
    assert round(memory, 6) == 1.5 + 6.0 + 1.0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(DaskSession)) == 3


def test_a_container_that_ran_and_exited_between_two_passes_still_counts(db: Database) -> None:
    hub, clock = Hub(), Clock(T0)
    rec = recorder(db, hub, clock, dask=[worker("w9", "bob", "c9", T0 - timedelta(minutes=20), running=False,
                                                finished=T0 - timedelta(minutes=5), cores=4)])
    tick(rec)
    tick(rec)
    cores, _ = usage_report(db, T0 - timedelta(hours=1), T0 + timedelta(hours=1), clock.now).dask["bob"]
    assert round(cores, 6) == 1.0  # 4 cores × 15 min, once


def test_ranges_default_to_30_days_and_bad_dates_say_why() -> None:
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert parse_range(None, None, now) == (now - timedelta(days=30), now)
    start, end = parse_range("2026-03-01", "2026-03-02", now)
    assert (start, end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))  # both days in
    assert parse_range("2026-03-01T06:00:00Z", "2026-03-01T07:00:00+00:00", now)[0].hour == 6
    with pytest.raises(RangeError, match=r"start: '2026-13-01' is not a date; write YYYY-MM-DD"):
        parse_range("2026-13-01", None, now)
    with pytest.raises(RangeError, match="end: 'yesterday' is not a date"):
        parse_range(None, "yesterday", now)
    with pytest.raises(RangeError, match=r"start \(2026-03-05\) must be before end \(2026-03-01\)"):
        parse_range("2026-03-05", "2026-03-01", now)  # the days as typed, not the exclusive bound


def test_a_user_report_holds_only_that_user_and_the_csv_has_every_row(db: Database) -> None:
    hub, clock = Hub(), Clock(T0)
    rec = recorder(db, hub, clock, dask=[worker("w1", "alice", "c1", T0)])
    hub.start("alice", "", T0, profile="small")
    hub.start("alice", "gpu1", T0, profile="gpu")
    hub.start("=cmd", "", T0, profile="small")  # a name a spreadsheet would run as a formula
    tick(rec)
    clock.advance(hours=2)
    tick(rec)
    mine = usage_report(db, T0, T0 + timedelta(days=1), clock.now, user="alice")
    assert mine.users() == ["alice"]
    everyone = usage_report(db, T0, T0 + timedelta(days=1), clock.now)
    rows = list(csv.DictReader(io.StringIO(everyone.csv())))
    assert [(r["user"], r["kind"], r["profile"], float(r["server_hours"]), float(r["dask_core_hours"]))
            for r in rows] == [("'=cmd", "server", "small", 2.0, 0.0), ("alice", "server", "gpu", 2.0, 0.0),
                               ("alice", "server", "small", 2.0, 0.0), ("alice", "dask", "", 0.0, 4.0)]
    assert float(rows[-1]["dask_memory_gib_hours"]) == 8.0
    assert everyone.totals() == {"server_hours": 6.0, "dask_core_hours": 4.0, "dask_memory_gib_hours": 8.0}


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-02T09:00:00.123456789Z", datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)),
    ("2026-03-02T10:00:00+01:00", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", None), ("", None), (None, None), ("soon", None)])
def test_times_from_the_hub_and_the_engine_are_read(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_the_usage_and_overview_apis_are_in_the_openapi_document() -> None:
    from service.openapi import openapi_document

    doc = openapi_document("/services/titan/")
    usage = doc["paths"]["/users/{user}/usage"]["get"]
    assert set(usage["responses"]) == {"200", "400", "403"}
    assert set(usage["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert doc["paths"]["/admin/overview"]["get"]["responses"]["403"]["description"] == "Not a hub admin"
    assert doc["components"]["schemas"]["UsageRow"]["properties"]["kind"] == {"enum": ["server", "dask"]}
