"""The service's hub client and hub watcher against a tiny real HTTP server that speaks the hub's
``GET /users?state=active`` (paginated JSON), ``GET /users/{name}`` and ``DELETE .../server``: one
request a pass, starts and stops told to every listener, nothing told while the hub does not answer,
and a busy listener told everything it missed once it is free."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from service.hub import HubClient, HubError, HubUnreachable
from service.watcher import HubWatcher, ServerChange

TOKEN = "service-token"  # noqa: S105  (a test value)


class TinyHub:
    """What the hub knows: user -> server -> model; the requests it got; a page size to paginate."""

    def __init__(self) -> None:
        self.servers: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.page_size = 1
        self.failing = False

    def start(self, user: str, server: str = "", ready: bool = True) -> None:
        self.servers.setdefault(user, {})[server] = {"name": server, "ready": ready, "pending": None if ready
                                                     else "spawn", "started": "2026-12-04T10:00:00.000000Z",
                                                     "user_options": {"profile": "small"}}

    def stop(self, user: str, server: str = "") -> None:
        self.servers.get(user, {}).pop(server, None)
        if not self.servers.get(user):
            self.servers.pop(user, None)


class _Handler(RequestHandler):
    @property
    def hub(self) -> TinyHub:
        return self.settings["hub"]

    def prepare(self) -> None:
        self.hub.requests.append((self.request.method or "", self.request.uri or ""))
        if self.request.headers.get("Authorization") != f"token {TOKEN}":
            self.send_error(403)
        elif self.hub.failing:
            self.send_error(503)


class Users(_Handler):
    def get(self) -> None:
        assert self.get_query_argument("state") == "active"
        assert self.request.headers.get("Accept") == "application/jupyterhub-pagination+json"
        offset = int(self.get_query_argument("offset", "0"))
        names = sorted(self.hub.servers)
        page = names[offset:offset + self.hub.page_size]
        following = offset + len(page)
        self.finish({"items": [{"name": name, "servers": self.hub.servers[name]} for name in page],
                     "_pagination": {"offset": offset, "limit": self.hub.page_size, "total": len(names),
                                     "next": {"offset": following} if following < len(names) else None}})


class User(_Handler):
    def get(self, name: str) -> None:
        if name not in self.hub.servers and name != "idle":
            self.send_error(404)
            return
        self.finish({"name": name, "servers": self.hub.servers.get(name, {}),
                     "auth_state": {"access_token": "gho_x", "github_user": {"login": name, "id": 7}}})


class Server(_Handler):
    def delete(self, name: str) -> None:
        self.hub.stop(name)
        self.set_status(202)
        self.finish(json.dumps({}))


@pytest_asyncio.fixture
async def hub() -> AsyncIterator[tuple[TinyHub, HubClient]]:
    tiny = TinyHub()
    app = Application([(r"/hub/api/users", Users), (r"/hub/api/users/([^/]+)", User),
                       (r"/hub/api/users/([^/]+)/server", Server)], hub=tiny)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server = HTTPServer(app)
    server.add_sockets([sock])
    port = sock.getsockname()[1]
    yield tiny, HubClient(api_url=f"http://127.0.0.1:{port}/hub/api", api_token=TOKEN, request_timeout=5)
    server.stop()


class Listener:
    def __init__(self) -> None:
        self.told: list[ServerChange] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, change: ServerChange) -> None:
        self.told.append(change)
        if self.gate is not None:
            await self.gate.wait()


@pytest.mark.asyncio
async def test_one_request_a_pass_tells_every_listener_what_started_and_stopped(
        hub: tuple[TinyHub, HubClient]) -> None:
    tiny, client = hub
    watcher = HubWatcher(client)
    autosave, usage = Listener(), Listener()
    watcher.watch("autosave", autosave)
    watcher.watch("usage", usage)
    tiny.start("alice")
    tiny.start("bob", "gpu", ready=False)  # starting: running, not ready (no clone yet)
    tiny.page_size = 200
    await watcher.run_pass()
    assert [r for r in tiny.requests if r[0] == "GET"] == [("GET", "/hub/api/users?state=active&offset=0&limit=200")]
    for listener in (autosave, usage):
        change = listener.told[-1]
        assert change.running == {("alice", ""), ("bob", "gpu")} and change.started == {("alice", "")}
        assert change.stopped == frozenset() and change.running_of("bob") == {"gpu"}
        assert change.active["alice"][""]["user_options"] == {"profile": "small"}

    tiny.requests.clear()
    tiny.page_size = 1  # three users: three pages, still one pass
    tiny.start("bob", "gpu")  # now ready
    tiny.start("carol")
    tiny.stop("alice")
    await watcher.run_pass()
    assert len(tiny.requests) == 2  # bob, carol: the pages follow _pagination.next
    change = autosave.told[-1]
    assert change.started == {("bob", "gpu"), ("carol", "")} and change.stopped == {("alice", "")}
    assert usage.told[-1] == change


@pytest.mark.asyncio
async def test_nothing_is_told_while_the_hub_does_not_answer(hub: tuple[TinyHub, HubClient]) -> None:
    tiny, client = hub
    watcher = HubWatcher(client)
    listener = Listener()
    watcher.watch("usage", listener)
    tiny.start("alice")
    await watcher.run_pass()
    tiny.failing = True
    tiny.stop("alice")
    await watcher.run_pass()
    assert len(listener.told) == 1  # no answer: no stop made up
    tiny.failing = False
    await watcher.run_pass()
    assert listener.told[-1].stopped == {("alice", "")}


@pytest.mark.asyncio
async def test_a_busy_listener_is_told_what_it_missed_and_does_not_hold_the_others(
        hub: tuple[TinyHub, HubClient]) -> None:
    tiny, client = hub
    watcher = HubWatcher(client)
    slow, quick = Listener(), Listener()
    slow.gate = asyncio.Event()
    watcher.watch("slow", slow)
    watcher.watch("quick", quick)
    tiny.start("alice")
    first = await watcher.poll()
    await asyncio.sleep(0)
    tiny.stop("alice")
    tiny.start("bob")
    await watcher.run_pass()  # slow is still busy: only quick is told
    assert len(slow.told) == 1 and len(quick.told) == 2
    assert quick.told[-1].stopped == {("alice", "")}
    slow.gate.set()
    await asyncio.gather(*first)
    slow.gate = None
    await watcher.run_pass()
    assert slow.told[-1].stopped == {("alice", "")} and slow.told[-1].started == {("bob", "")}
    assert quick.told[-1].stopped == frozenset() and quick.told[-1].started == frozenset()


@pytest.mark.asyncio
async def test_a_listener_that_fails_is_logged_and_told_again_next_pass(hub: tuple[TinyHub, HubClient],
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    tiny, client = hub
    watcher = HubWatcher(client)
    calls: list[ServerChange] = []

    async def broken(change: ServerChange) -> None:
        calls.append(change)
        raise KeyError("a bug")

    watcher.watch("broken", broken)
    tiny.start("alice")
    await watcher.run_pass()
    await watcher.run_pass()
    assert len(calls) == 2
    assert "broken failed on the hub watcher's pass" in caplog.text and "KeyError" in caplog.text


@pytest.mark.asyncio
async def test_the_hub_client_branches_on_status_codes(hub: tuple[TinyHub, HubClient]) -> None:
    tiny, client = hub
    tiny.start("alice")
    assert await client.user("nobody") is None  # 404
    credentials = await client.github_credentials("alice")
    assert credentials is not None and credentials.login == "alice" and "gho_x" not in repr(credentials)
    assert await client.stop_server("alice", "") == 202 and "alice" not in tiny.servers
    tiny.failing = True
    with pytest.raises(HubError) as refused:
        await client.active_servers()
    assert refused.value.status == 503 and not isinstance(refused.value, HubUnreachable)
    closed = HubClient(api_url="http://127.0.0.1:9/hub/api", api_token=TOKEN, request_timeout=5)
    with pytest.raises(HubUnreachable):
        await closed.active_servers()
