"""Turn what runs into start/stop intervals: servers from the hub, Dask containers from the engine.

Each pass (the service's ``check_interval``):

- servers: the hub watcher's pass (``service.watcher``: ``GET /hub/api/users?state=active``); each
  server model's ``started`` is its true start.
  A (user, server, started) not yet recorded is a new run; a recorded open run no longer active
  stopped. Its stop time is this pass's time when the previous pass of this process saw it running,
  else (it stopped while the service was down) the last time it was seen: nothing is counted that
  was not seen. A run that is still active after a restart of the service is the same row.
- Dask: the gateway's containers (labels ``titan.dask.*``), with the cores and memory in their
  host config and the engine's ``StartedAt``; gone or exited containers stop the same way (an
  exited container's ``FinishedAt`` is its stop time).

When the hub does not answer, the watcher tells no one and nothing is recorded (no stop is made up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.timeutil import as_utc, utcnow
from service.db import Database
from service.usage.models import DaskSession, ServerSession
from service.watcher import ServerChange

log = logging.getLogger("titan.service.usage")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class DaskContainer:
    """One scheduler or worker container of a Dask cluster, as the engine reports it."""

    id: str
    user: str
    cluster: str
    role: str  # scheduler or worker
    server: str  # the server the cluster was made from
    cores: float
    memory: int  # bytes
    started: datetime | None  # None: created, not started
    running: bool
    finished: datetime | None = None  # an exited container's stop time


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from the hub or the engine (``Z`` or an offset; nanoseconds cut) → aware UTC."""
    if not value or not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Docker gives nanoseconds; Python takes at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return as_utc(parsed)


class UsageRecorder:
    """Records runs into the service's database; ``tick`` is one pass."""

    def __init__(self, db: Database, *, dask_source: Callable[[], list[DaskContainer]] | None = None,
                 profile_of: Callable[[str, str], str | None] | None = None,
                 default_profile: Callable[[], str] = lambda: "", clock: Clock = utcnow) -> None:
        self.db = db
        self.dask_source = dask_source
        self.profile_of = profile_of
        self.default_profile = default_profile
        self.clock = clock
        self._open_servers: set[int] = set()  # rows this process saw running at its last pass
        self._open_dask: set[int] = set()

    async def servers_changed(self, change: ServerChange) -> None:
        """The hub watcher's pass (service.watcher): the hub's active servers, recorded."""
        await asyncio.to_thread(self.record_servers, change.active, self.clock())

    async def dask_pass(self) -> None:
        """One pass over the Dask containers (the Docker engine, not the hub: its own schedule)."""
        if self.dask_source is None:
            return
        now = self.clock()
        try:
            found = await asyncio.to_thread(self.dask_source)
        except OSError as error:  # the engine does not answer: record nothing this pass
            log.warning("Usage: could not list the Dask containers: %s", error)
        else:
            await asyncio.to_thread(self.record_dask, found, now)

    # ---- servers ----------------------------------------------------------------------

    def _profile(self, user: str, server: str, model: Mapping[str, Any]) -> str:
        profile = str((model.get("user_options") or {}).get("profile") or "")
        if not profile and self.profile_of is not None:
            try:
                profile = self.profile_of(user, server) or ""
            except OSError:  # the engine does not answer: the default profile
                log.warning("Usage: could not read the profile of %s/%s", user, server, exc_info=True)
        return profile or self.default_profile() or "default"

    def record_servers(self, active: Mapping[str, Mapping[str, Mapping[str, Any]]], now: datetime) -> None:
        """One pass over the hub's active servers (user → server name → server model) at ``now``."""
        current: dict[tuple[str, str, datetime], Mapping[str, Any]] = {}
        for user, servers in active.items():
            for server, model in servers.items():
                started = parse_time(model.get("started"))
                if started is not None:
                    current[(user, server, started)] = model
        seen: set[int] = set()
        with self.db.session() as session:
            for (user, server, started), model in current.items():
                row = session.scalars(select(ServerSession).where(
                    ServerSession.user_name == user, ServerSession.server_name == server,
                    ServerSession.started == started)).first()
                if row is None:
                    row = ServerSession(user_name=user, server_name=server, started=started,
                                        profile=self._profile(user, server, model), last_seen=now)
                    session.add(row)
                    session.flush()
                    log.info("Usage: %s/%s started at %s (%s)", user, server or "default", started.isoformat(),
                             row.profile)
                row.stopped = None
                row.last_seen = now
                seen.add(row.id)
            for row in session.scalars(select(ServerSession).where(ServerSession.stopped.is_(None))):
                if row.id in seen:
                    continue
                row.stopped = now if row.id in self._open_servers else row.last_seen
                log.info("Usage: %s/%s stopped (%s)", row.user_name, row.server_name or "default",
                         row.stopped.isoformat())
        self._open_servers = seen

    # ---- Dask -------------------------------------------------------------------------

    def record_dask(self, containers: Iterable[DaskContainer], now: datetime) -> None:
        """One pass over the Dask containers the engine lists at ``now``."""
        live = {c.id: c for c in containers if c.started is not None and c.running}
        ended = {c.id: c for c in containers if c.started is not None and not c.running}
        seen: set[int] = set()
        with self.db.session() as session:
            for container in live.values():
                row = session.scalars(select(DaskSession).where(DaskSession.container_id == container.id)).first()
                if row is None:
                    assert container.started is not None
                    row = DaskSession(container_id=container.id, user_name=container.user,
                                      cluster=container.cluster, role=container.role, server_name=container.server,
                                      cores=container.cores, memory=container.memory,
                                      started=container.started, last_seen=now)
                    session.add(row)
                    session.flush()
                row.last_seen = now
                seen.add(row.id)
            for row in session.scalars(select(DaskSession).where(DaskSession.stopped.is_(None))):
                if row.id in seen:
                    continue
                gone = ended.get(row.container_id)
                if gone is not None and gone.finished is not None:
                    row.stopped = max(gone.finished, row.started)
                else:
                    row.stopped = now if row.id in self._open_dask else row.last_seen
            for container in ended.values():  # ran and exited between two passes: still counted
                if container.finished is None or container.started is None:
                    continue
                known = session.scalars(select(DaskSession.id).where(
                    DaskSession.container_id == container.id)).first()
                if known is None:
                    session.add(DaskSession(
                        container_id=container.id, user_name=container.user, cluster=container.cluster,
                        role=container.role, server_name=container.server, cores=container.cores,
                        memory=container.memory, started=container.started,
                        last_seen=container.finished, stopped=container.finished))
        self._open_dask = seen
