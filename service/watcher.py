"""``HubWatcher``: the service's one watch on the hub. Once a pass it lists the active servers (one
paginated ``GET /users?state=active``) and tells each listener (autosave, clones at server start,
usage) what started and stopped since it was last told.

Each listener runs in its own task: a slow one (an autosave push can take minutes) delays neither
the others nor the next pass. A listener still busy when a pass comes is skipped; the next pass
it takes tells it everything that changed since the last one it saw, so no start or stop is lost.
When the hub does not answer, the pass tells no one (nothing is made up from a missing answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tornado.ioloop import PeriodicCallback
from traitlets import Float
from traitlets.config import LoggingConfigurable

from core.timeutil import utcnow
from service.hub import ActiveServers, HubError

Server = tuple[str, str]  # (user, server name; "" the default server)


class ActiveServersSource(Protocol):
    async def active_servers(self) -> ActiveServers: ...


@dataclass(frozen=True)
class ServerChange:
    """What a listener is told: the hub's view now, and what changed since it was last told."""

    now: datetime
    active: Mapping[str, Mapping[str, Mapping[str, Any]]]  # user -> server -> the hub's server model
    running: frozenset[Server]  # ready, or started and not yet gone (starting or stopping)
    ready: frozenset[Server]
    started: frozenset[Server]  # ready now, not ready when last told (all ready ones at the first pass)
    stopped: frozenset[Server]  # running when last told, gone now

    def running_of(self, user: str) -> set[str]:
        return {server for owner, server in self.running if owner == user}


Listener = Callable[[ServerChange], Awaitable[None]]


@dataclass
class _Subscription:
    name: str
    listener: Listener
    running: frozenset[Server] = frozenset()
    ready: frozenset[Server] = frozenset()
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def running_and_ready(active: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> tuple[frozenset[Server],
                                                                                        frozenset[Server]]:
    """The servers that run (the hub says ready, or started: still starting or stopping), and the ready ones."""
    running = frozenset((user, server) for user, servers in active.items() for server, model in servers.items()
                        if model.get("ready") or model.get("started"))
    ready = frozenset((user, server) for user, servers in active.items() for server, model in servers.items()
                      if model.get("ready"))
    return running, ready


class HubWatcher(LoggingConfigurable):
    """Lists the hub's active servers once a pass and tells the listeners (``watch``) what changed."""

    interval = Float(
        10.0, help="""Seconds between passes: a server's start or stop is noticed within this (then its
        clones, its final autosave snapshot, its usage record). titan.yaml service.check_interval. Default 10.""",
    ).tag(config=True)

    def __init__(self, hub: ActiveServersSource, clock: Callable[[], datetime] = utcnow,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hub = hub
        self.clock = clock
        self._subscriptions: list[_Subscription] = []
        self._periodic: PeriodicCallback | None = None

    def watch(self, name: str, listener: Listener) -> None:
        """Tell ``listener`` (``name`` in the log) of each pass it is free for."""
        self._subscriptions.append(_Subscription(name, listener))

    async def poll(self) -> list[asyncio.Task[None]]:
        """One pass: one request to the hub; a task for each free listener (returned, not awaited)."""
        try:
            active = await self.hub.active_servers()
        except HubError as error:  # the hub is restarting: the next pass tells what changed meanwhile
            self.log.warning("Could not ask the hub about active servers: %s", error)
            return []
        now = self.clock()
        running, ready = running_and_ready(active)
        tasks = []
        for sub in self._subscriptions:
            if sub.task is not None and not sub.task.done():
                self.log.debug("%s is still busy with an earlier pass: told next time", sub.name)
                continue
            change = ServerChange(now=now, active=active, running=running, ready=ready,
                                  started=ready - sub.ready, stopped=sub.running - running)
            sub.running, sub.ready = running, ready
            sub.task = asyncio.ensure_future(self._tell(sub, change))
            tasks.append(sub.task)
        return tasks

    async def run_pass(self) -> None:
        """One pass, waiting for every listener it told."""
        await asyncio.gather(*await self.poll())

    async def _tell(self, sub: _Subscription, change: ServerChange) -> None:
        try:
            await sub.listener(change)
        except Exception:  # a listener's bug must not end the watch: logged with its traceback, next pass
            self.log.exception("%s failed on the hub watcher's pass", sub.name)

    async def start(self) -> None:
        """The first pass at once (waited for), then one every ``interval`` seconds."""
        await self.run_pass()
        self._periodic = PeriodicCallback(self.poll, self.interval * 1000)
        self._periodic.start()

    def stop(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
