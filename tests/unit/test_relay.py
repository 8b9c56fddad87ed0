"""core.relay between real servers: an aiohttp upstream, and the two kinds of front that use the
relay (aiohttp, as the Dask dashboard gate; tornado, as the public dashboards' origin)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from tornado import httpserver, netutil
from tornado import web as tornado_web
from tornado import websocket as tornado_websocket

from core.relay import (
    AiohttpChannel,
    AiohttpSink,
    Relay,
    TornadoChannel,
    TornadoSink,
    UpstreamUnavailable,
    forward_headers,
    pump,
)

BIG = bytes(range(256)) * 1024  # 256 KiB: several chunks
PRIVATE = frozenset({"authorization", "cookie", "set-cookie"})


async def _echo(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    response = web.StreamResponse(status=200, headers={"X-Upstream": "yes", "Set-Cookie": "session=upstream"})
    response.content_type = "application/json"
    await response.prepare(request)
    await response.write(json.dumps({"method": request.method, "headers": dict(request.headers),
                                     "body": body.decode()}).encode())
    return response


async def _big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for start in range(0, len(BIG), 10_000):
        await response.write(BIG[start:start + 10_000])
    return response


async def _gzipped(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(b"compressed words " * 100), headers={"Content-Encoding": "gzip"})


async def _empty(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("v1.kernel",))
    await ws.prepare(request)
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"up:{message.data}:{request.headers.get('Authorization', '-')}")
        elif message.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(b"up:" + message.data)
    return ws


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/big", _big)
    app.router.add_get("/gzipped", _gzipped)
    app.router.add_get("/empty", _empty)
    app.router.add_get("/ws", _ws)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@contextlib.asynccontextmanager
async def aiohttp_front(upstream: str) -> AsyncIterator[str]:
    """Like the Dask dashboard gate: the caller's credentials stay, no cookie comes back."""
    relay = Relay()

    async def front(request: web.Request) -> web.StreamResponse:
        target = f"{upstream}/{request.match_info['tail']}"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            client = web.WebSocketResponse()
            await client.prepare(request)
            up = await relay.websocket(target.replace("http", "ws", 1), [("X-Added", "by-front")])
            await pump(AiohttpChannel(client), AiohttpChannel(up))
            return client
        sink = AiohttpSink(request)
        body = await request.read() if request.can_read_body else None
        await relay.http(request.method, target, forward_headers(request.headers.items(), PRIVATE), body, sink,
                         drop=PRIVATE)
        return sink.response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", front)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()
    await relay.close()


class _TornadoFront(tornado_websocket.WebSocketHandler):
    """Like the public origin: the front's own token goes up instead of the visitor's."""

    def initialize(self, upstream: str, relay: Relay) -> None:
        self.upstream = upstream
        self.relay = relay
        self.channel: TornadoChannel | None = None

    def _up_headers(self) -> list[tuple[str, str]]:
        return [*forward_headers(self.request.headers.get_all(), PRIVATE, ("sec-websocket",)),
                ("Authorization", "token front")]

    async def get(self, *args: Any, **kwargs: Any) -> None:
        url = f"{self.upstream}/{args[0]}"
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            offered = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
            self.up = await self.relay.websocket(url.replace("http", "ws", 1), self._up_headers(), offered)
            await super().get(*args, **kwargs)
            return
        await self.relay.http("GET", url, self._up_headers(), None, TornadoSink(self), drop=PRIVATE)

    async def post(self, *args: Any) -> None:
        await self.relay.http("POST", f"{self.upstream}/{args[0]}", self._up_headers(), self.request.body,
                              TornadoSink(self), drop=PRIVATE)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self.up.protocol

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.channel = TornadoChannel(self)
        self.pumping = asyncio.ensure_future(pump(self.channel, AiohttpChannel(self.up)))

    async def on_message(self, message: str | bytes) -> None:
        assert self.channel is not None
        await self.channel.put(message)

    def on_close(self) -> None:
        if self.channel is not None:
            self.channel.closed()


@contextlib.asynccontextmanager
async def tornado_front(upstream: str) -> AsyncIterator[str]:
    relay = Relay(request_timeout=30)
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(tornado_web.Application([(r"/(.*)", _TornadoFront,
                                                             {"upstream": upstream, "relay": relay})]))
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    await relay.close()


@pytest.fixture(params=["aiohttp", "tornado"])
def front_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def front(front_name: str, upstream: str) -> AsyncIterator[str]:
    make = aiohttp_front if front_name == "aiohttp" else tornado_front
    async with make(upstream) as url:
        yield url


@pytest.mark.asyncio
async def test_a_request_goes_up_without_the_callers_credentials_and_no_cookie_comes_back(front: str) -> None:
    async with aiohttp.ClientSession() as client, client.post(
            f"{front}/echo", data=b"hello", headers={"Authorization": "token secret", "Cookie": "hub=secret",
                                                     "X-Custom": "kept"}) as response:
        assert response.status == 200
        assert response.headers["X-Upstream"] == "yes" and "Set-Cookie" not in response.headers
        seen = await response.json()
    assert seen["method"] == "POST" and seen["body"] == "hello"
    assert seen["headers"]["X-Custom"] == "kept" and "Cookie" not in seen["headers"]
    assert seen["headers"].get("Authorization") in (None, "token front")  # the front's own, never the caller's


@pytest.mark.asyncio
async def test_a_big_answer_streams_through_intact(front: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{front}/big") as response:
        assert response.status == 200 and await response.read() == BIG


@pytest.mark.asyncio
async def test_compressed_bytes_pass_untouched_with_their_encoding(front: str) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as client, client.get(
            f"{front}/gzipped", headers={"Accept-Encoding": "gzip"}) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await response.read()) == b"compressed words " * 100


@pytest.mark.asyncio
async def test_an_empty_answer_keeps_its_status(front: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{front}/empty") as response:
        assert response.status == 204 and await response.read() == b""


@pytest.mark.asyncio
async def test_websocket_messages_go_both_ways(front: str, front_name: str) -> None:
    async with aiohttp.ClientSession() as client, client.ws_connect(
            f"{front}/ws", protocols=("v1.kernel",), headers={"Authorization": "token secret"}) as ws:
        await ws.send_str("ping")
        text = await ws.receive_str(timeout=10)
        await ws.send_bytes(b"\x00\x01")
        assert await ws.receive_bytes(timeout=10) == b"up:\x00\x01"
        if front_name == "tornado":  # the subprotocol the upstream chose; the front's own token
            assert ws.protocol == "v1.kernel" and text == "up:ping:token front"
        else:  # the gate sends nothing of the caller's
            assert text == "up:ping:-"


@pytest.mark.asyncio
async def test_an_upstream_that_does_not_answer_is_unavailable() -> None:
    relay = Relay(connect_timeout=2)
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    sockets[0].close()  # nothing listens there now
    try:
        with pytest.raises(UpstreamUnavailable):
            await relay.http("GET", f"http://127.0.0.1:{port}/", [], None, AiohttpSink(None))  # type: ignore[arg-type]
        with pytest.raises(UpstreamUnavailable):
            await relay.websocket(f"ws://127.0.0.1:{port}/", [])
    finally:
        await relay.close()


def test_forward_headers_drops_hop_by_hop_and_the_callers_choice() -> None:
    headers = [("Host", "a"), ("Connection", "upgrade"), ("Cookie", "x"), ("Sec-WebSocket-Key", "k"),
               ("X-Forwarded-For", "1.2.3.4"), ("Accept", "text/html"), ("Accept", "application/json")]
    assert forward_headers(headers, {"cookie"}, ("sec-websocket", "x-forwarded")) == [
        ("Accept", "text/html"), ("Accept", "application/json")]
