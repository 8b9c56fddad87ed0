"""Public dashboards, on an origin of their own.

JupyterHub's docs call sharing a server on the hub's own origin with people who are not logged in
unsafe: the app's code would run next to the hub's pages and cookies. So a public dashboard is
served by a second listener of the Titan service (``public_dashboard_port``, put behind its own
hostname by the admin), which knows only two kinds of path:

- ``/d/<link id>``: a public, active dashboard link; starts its server if needed, counts the view
  and redirects to the server's path on this origin;
- ``/user/<owner>/<server>/...``: the server of an active public dashboard link, nothing else,
  forwarded (HTTP and websockets) through the hub's proxy with the service's own token. The
  visitor's cookies and credentials are never forwarded; cookies the server sets never come back.

The dashboard server (titan-dashboard) still refuses its Jupyter API, files, kernels and
terminals to everyone, this origin included. Everything else here is 404.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from aiohttp import ClientWebSocketResponse
from tornado import web, websocket

from core.relay import AiohttpChannel, Relay, TornadoChannel, TornadoSink, UpstreamUnavailable, forward_headers, pump
from service.metrics import record_report_view
from service.sharing.access import Viewer
from service.sharing.errors import AnswersSharingErrors, NotFound, RateLimited, SharingError
from service.sharing.manager import ShareManager
from service.sharing.ratelimit import GuessLimiter
from service.sharing.storage import LINK_ID

log = logging.getLogger("titan.sharing.public")

#: Never relayed, in either direction: the visitor's cookies, credentials and origin stay here, and
#: cookies the server sets never come back.
PRIVATE = frozenset({"set-cookie", "cookie", "authorization", "origin", "referer"})
RECHECK_SECONDS = 5.0


class _Plain(web.RequestHandler):
    """Errors as one line of plain text: this origin serves no pages of its own."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code}: {message}\n")


class _Base(AnswersSharingErrors, _Plain):
    def initialize(self, manager: ShareManager, limiter: GuessLimiter, hub_url: str, token: str,
                   relay: Relay) -> None:
        self.manager = manager
        self.limiter = limiter
        self.hub_url = hub_url.rstrip("/")
        self.token = token
        self.relay = relay

    @property
    def client(self) -> str:
        return f"public-ip:{self.request.remote_ip}"

    def refused(self, error: SharingError) -> None:
        if isinstance(error, NotFound):
            self.limiter.miss(self.client)

    def set_default_headers(self) -> None:
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Content-Type-Options", "nosniff")


class PublicLinkHandler(_Base):
    """``/d/<id>``: open a public dashboard without logging in."""

    async def get(self, link_id: str) -> None:
        wait = self.limiter.retry_after(self.client)
        if wait:
            raise RateLimited(wait)
        found = self.manager.links.snapshot(link_id) if LINK_ID.match(link_id) else None
        if found is None or found.kind != "dashboard" or self.manager.needs_login(link_id):
            raise NotFound("there is no such public dashboard")
        opened = await self.manager.open(link_id, "dashboard", Viewer(None), _no_groups)
        record_report_view("dashboard")
        self.redirect(opened.redirect)


async def _no_groups(name: str) -> list[str]:
    return []


class PublicServerProxy(_Base, websocket.WebSocketHandler):
    """``/user/<owner>/<server>/...`` of an active public dashboard, through the hub's proxy
    (``core.relay``; this class only says what goes up and what comes back)."""

    _upstream: ClientWebSocketResponse | None = None
    _channel: TornadoChannel | None = None
    _pumping: asyncio.Task[None] | None = None
    _rechecking: asyncio.Task[None] | None = None

    @property
    def _is_websocket(self) -> bool:
        return bool(self.request.headers.get("Upgrade", "").lower() == "websocket")

    def prepare(self) -> None:
        owner, server = self.path_args[0], self.path_args[1]
        if self.manager.links.public_dashboard(owner, server) is None:
            raise web.HTTPError(404, "this server has no public dashboard")
        if self.request.method not in ("GET", "HEAD", "POST"):
            raise web.HTTPError(405)

    def _upstream_url(self, scheme: str) -> str:
        owner, server, rest = self.path_args
        base = self.hub_url.replace("http", scheme, 1)
        url = f"{base}/user/{quote(owner, safe='')}/{quote(server, safe='')}/{quote(rest, safe='/%:@!$&()*+,;=-._~')}"
        return url + (f"?{self.request.query}" if self.request.query else "")

    def _forward_headers(self) -> list[tuple[str, str]]:
        """The visitor's headers without their cookies, credentials and origin; the service's token."""
        headers = forward_headers(self.request.headers.get_all(), PRIVATE, ("sec-websocket", "x-forwarded"))
        return [*headers, ("Authorization", f"token {self.token}")]

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self._is_websocket:
            await self._open_upstream()
            await super().get(*args, **kwargs)
            return
        await self._forward()

    async def post(self, *args: Any) -> None:
        await self._forward()

    async def head(self, *args: Any) -> None:
        await self._forward()

    async def _forward(self) -> None:
        method = self.request.method or "GET"
        try:
            await self.relay.http(method, self._upstream_url("http"), self._forward_headers(),
                                  self.request.body if method == "POST" else None, TornadoSink(self), drop=PRIVATE)
        except UpstreamUnavailable:
            raise web.HTTPError(502, "the dashboard did not answer") from None

    async def _open_upstream(self) -> None:
        offered = self.request.headers.get("Sec-WebSocket-Protocol", "")
        subprotocols = [p.strip() for p in offered.split(",") if p.strip()]
        try:
            self._upstream = await self.relay.websocket(self._upstream_url("ws"), self._forward_headers(),
                                                        subprotocols)
        except UpstreamUnavailable as error:
            log.warning("The public dashboard refused a websocket on %s: %s", self.request.path, error)
            raise web.HTTPError(502, "the dashboard refused the connection") from None

    def check_origin(self, origin: str) -> bool:
        return True  # public: anyone may open it; nothing of the visitor's is forwarded

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self._upstream.protocol if self._upstream is not None else None

    def open(self, *args: Any, **kwargs: Any) -> None:
        assert self._upstream is not None
        self._channel = TornadoChannel(self)
        self._pumping = asyncio.ensure_future(pump(self._channel, AiohttpChannel(self._upstream)))
        self._rechecking = asyncio.ensure_future(self._recheck())

    async def _recheck(self) -> None:
        """Close the socket as soon as the link is revoked, expires or stops being public."""
        owner, server = self.path_args[0], self.path_args[1]
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            if self.manager.links.public_dashboard(owner, server) is None:
                self.close(1008, "the link ended")
                return

    async def on_message(self, message: str | bytes) -> None:
        if self._channel is not None:
            await self._channel.put(message)

    def on_close(self) -> None:
        if self._channel is not None:
            self._channel.closed()  # the pump reads the end, and closes the upstream
        elif self._upstream is not None:
            asyncio.ensure_future(self._upstream.close())
        if self._rechecking is not None:
            self._rechecking.cancel()


class NotHere(_Base):
    def prepare(self) -> None:
        raise web.HTTPError(404, "nothing here: this address serves public dashboards only")


def make_public_app(manager: ShareManager, limiter: GuessLimiter, hub_url: str, token: str) -> web.Application:
    args = {"manager": manager, "limiter": limiter, "hub_url": hub_url, "token": token,
            "relay": Relay(request_timeout=300, connect_timeout=30)}
    return web.Application([
        (r"/d/([^/]{1,100})", PublicLinkHandler, args),
        (r"/user/([^/]+)/([^/]+)/(.*)", PublicServerProxy, args),
        (r"/.*", NotHere, args),
    ], xheaders=True)
