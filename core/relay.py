"""Relaying HTTP requests and websockets to an upstream server: the moving, written once.

Two parts of Titan relay a caller to a server it may not reach itself: the service's public origin
(tornado; public dashboards through the hub's proxy) and the gateway's Dask dashboard gate
(aiohttp; a scheduler's dashboard). Each keeps its own policy (which request headers go up,
``forward_headers`` with the names it drops plus what it adds; which response headers come back);
the ``Relay`` here does the moving:

- HTTP: the request goes up as it came (method, body, headers as the caller's policy left them),
  and the answer streams back chunk by chunk, bytes untouched (no decompression: the caller's
  ``Accept-Encoding`` decides, and ``Content-Encoding`` comes back with the bytes);
- websockets: both directions pumped until either side closes, then both close.

The caller's side is reached through two small interfaces, ``ResponseSink`` and ``MessageChannel``,
with adapters for tornado and aiohttp below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from tornado import websocket as tornado_websocket

Message = str | bytes

#: Headers about one connection, never relayed in either direction.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "host", "content-length"})
#: aiohttp adds these when a request has none; a relayed request carries only the caller's.
_NOT_ADDED = frozenset({"Accept-Encoding", "Accept", "User-Agent", "Content-Type"})
CHUNK_BYTES = 64 * 1024


class UpstreamUnavailable(Exception):
    """The upstream server could not be reached (connection refused, timed out, handshake refused)."""


def forward_headers(headers: Iterable[tuple[str, str]], drop: Collection[str] = (),
                    drop_prefixes: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``headers`` without the hop-by-hop ones, the caller's ``drop`` (lower-case names) and names
    starting with ``drop_prefixes`` (lower case)."""
    return [(name, value) for name, value in headers
            if (lower := name.lower()) not in HOP_BY_HOP and lower not in drop
            and not (drop_prefixes and lower.startswith(drop_prefixes))]


class ResponseSink(Protocol):
    """Where a relayed HTTP answer goes: the caller's response."""

    async def start(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def finish(self) -> None: ...


class MessageChannel(Protocol):
    """One side of a websocket: ``receive`` gives None once it is closed."""

    async def receive(self) -> Message | None: ...

    async def send(self, message: Message) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Relay:
    """An HTTP client for relaying, with its own connection pool (``close`` it at shutdown)."""

    def __init__(self, request_timeout: float | None = None, connect_timeout: float = 10.0,
                 max_message_bytes: int = 100 * 1024 * 1024) -> None:
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_message_bytes = max_message_bytes
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False, skip_auto_headers=_NOT_ADDED,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def http(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes | None,
                   sink: ResponseSink, drop: Collection[str] = ()) -> None:
        """Send the request up and stream the answer into ``sink``; response headers lose the
        hop-by-hop ones and ``drop``. Raises UpstreamUnavailable before anything was sent back."""
        timeout = aiohttp.ClientTimeout(total=self.request_timeout, sock_connect=self.connect_timeout)
        try:
            upstream = await self.session.request(method, url, headers=headers, data=body, allow_redirects=False,
                                                  timeout=timeout)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise UpstreamUnavailable(f"{type(error).__name__}: {error}") from None
        async with upstream:
            await sink.start(upstream.status, upstream.reason or "",
                             forward_headers(upstream.headers.items(), drop))
            async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                await sink.write(chunk)
            await sink.finish()

    async def websocket(self, url: str, headers: list[tuple[str, str]],
                        protocols: Iterable[str] = ()) -> aiohttp.ClientWebSocketResponse:
        """Open the upstream websocket (``protocol`` on the answer: the subprotocol it chose)."""
        try:
            return await self.session.ws_connect(url, headers=headers, protocols=tuple(protocols),
                                                 max_msg_size=self.max_message_bytes,
                                                 timeout=aiohttp.ClientWSTimeout(ws_close=10.0))
        except (TimeoutError, aiohttp.ClientError) as error:
            raise UpstreamUnavailable(f"{type(error).__name__}: {error}") from None


async def pump(one: MessageChannel, other: MessageChannel) -> None:
    """Relay messages both ways until either side closes; then close both."""
    async def copy(source: MessageChannel, sink: MessageChannel) -> None:
        while (message := await source.receive()) is not None:
            await sink.send(message)

    tasks = [asyncio.ensure_future(copy(one, other)), asyncio.ensure_future(copy(other, one))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await one.close()
        await other.close()


# ---- aiohttp ----------------------------------------------------------------------------------


class AiohttpChannel:
    """An aiohttp websocket (the client's ``ClientWebSocketResponse`` or a server's ``WebSocketResponse``)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse) -> None:
        self.ws = ws

    async def receive(self) -> Message | None:
        message = await self.ws.receive()
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            data: Message = message.data
            return data
        return None

    async def send(self, message: Message) -> None:
        if isinstance(message, bytes):
            await self.ws.send_bytes(message)
        else:
            await self.ws.send_str(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())


class AiohttpSink:
    """An aiohttp server's streamed response to ``request`` (``response`` once started)."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse()

    async def start(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.response.set_status(status, reason or None)
        for name, value in headers:
            self.response.headers.add(name, value)
        await self.response.prepare(self.request)

    async def write(self, chunk: bytes) -> None:
        await self.response.write(chunk)

    async def finish(self) -> None:
        await self.response.write_eof()


# ---- tornado ----------------------------------------------------------------------------------


class TornadoSink:
    """A tornado ``RequestHandler``'s response, flushed chunk by chunk."""

    NO_BODY = (204, 304)

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.bodiless = handler.request.method == "HEAD"

    async def start(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.handler.set_status(status, reason or None)
        self.bodiless = self.bodiless or status in self.NO_BODY
        for name in ("Content-Type", "Server", "Date"):  # tornado's defaults: the upstream's stand
            self.handler.clear_header(name)
        for name, value in headers:
            self.handler.add_header(name, value)

    async def write(self, chunk: bytes) -> None:
        if chunk and not self.bodiless:
            self.handler.write(chunk)
            await self.handler.flush()

    async def finish(self) -> None:
        self.handler.finish()


class TornadoChannel:
    """A tornado ``WebSocketHandler``: its ``on_message`` feeds ``put`` and its ``on_close`` calls
    ``closed``; reading waits for the next message (one at a time: tornado reads on when ``put`` returns)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self._messages: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=1)

    async def put(self, message: Message) -> None:
        await self._messages.put(message)

    def closed(self) -> None:
        if self._messages.full():
            self._messages.get_nowait()
        self._messages.put_nowait(None)

    async def receive(self) -> Message | None:
        return await self._messages.get()

    async def send(self, message: Message) -> None:
        try:
            await self.handler.write_message(message, binary=isinstance(message, bytes))
        except tornado_websocket.WebSocketClosedError:
            self.closed()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.handler.close(code, reason or None)
