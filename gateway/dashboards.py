"""The gate in front of Dask dashboards: only a cluster's owner (and hub admins) see it.

dask-gateway's proxy routes ``<prefix>/clusters/<name>/`` straight to the scheduler's dashboard,
with no login at all (upstream dask-gateway#570). Titan points that route at this gate instead, on
the gateway's private API (127.0.0.1): the proxy strips ``/clusters/<name>`` and forwards the
rest to ``<gate>/titan/dashboards/<name>/...``. The gate

- identifies the caller by a JupyterHub token (``Authorization: token|bearer|jupyterhub <t>``), or
  by its own session cookie, made after a JupyterHub OAuth login (a browser with no session is
  sent through the hub's login and back; no consent page: ``oauth_no_confirm``);
- answers 401 to an anonymous API client, 403 to anyone but the owner and hub admins, 404 to an
  unknown or stopped cluster;
- relays HTTP and websockets (the dashboard's plots, with the subprotocols bokeh's sessions need) to
  the scheduler's dashboard, which listens on its owner's own network, out of every other user's
  reach (``core.relay``; the caller's ``Authorization`` and cookies stay here, and no cookie comes
  back).

Sessions live in memory (a gateway restart sends a browser through the hub's login again, which
it does not notice) and last ``SESSION_SECONDS``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from dask_gateway_server.backends.db_base import DataManager

from core.relay import AiohttpChannel, AiohttpSink, Relay, UpstreamUnavailable, forward_headers, pump


class Clusters(Protocol):
    """What the gate asks of the backend (gateway.backend.DockerBackend is one)."""

    db: DataManager
    log: logging.Logger

GATE_PATH = "/titan/dashboards"  # on the private API; the proxy's dashboard routes point here
#: The OAuth callback: JupyterHub's default for a service (``<prefix>/oauth_callback``), which the
#: proxy routes to the gate's handler at ``GATE_CALLBACK_PATH`` on the private API.
OAUTH_CALLBACK_PATH = "/oauth_callback"
GATE_CALLBACK_PATH = "/titan/oauth_callback"
SESSION_COOKIE = "titan-dask-dashboard"
STATE_COOKIE = "titan-dask-oauth-state"
SESSION_SECONDS = 900.0
STATE_SECONDS = 600.0
MAX_SESSIONS = 10_000
TOKEN_SCHEMES = frozenset({"token", "bearer", "jupyterhub"})
#: Request headers never passed to a scheduler: the caller's credentials stay here.
PRIVATE_HEADERS = frozenset({"authorization", "cookie"})
#: Response headers never passed back: a scheduler sets no cookie on the gate's path.
PRIVATE_RESPONSE_HEADERS = frozenset({"set-cookie"})


@dataclass(frozen=True)
class Viewer:
    name: str
    admin: bool


@dataclass(frozen=True)
class HubLink:
    """How the gate reaches the hub (the environment a managed service gets)."""

    api_url: str  # JUPYTERHUB_API_URL (the hub, directly)
    base_url: str  # JUPYTERHUB_BASE_URL (the browser's side, through the proxy)
    client_id: str
    client_secret: str  # the service's own API token
    redirect_uri: str
    service_name: str

    @classmethod
    def from_environment(cls, env: Mapping[str, str], service_name: str) -> HubLink:
        return cls(
            api_url=env.get("JUPYTERHUB_API_URL", "").rstrip("/"),
            base_url=env.get("JUPYTERHUB_BASE_URL", "/"),
            client_id=env.get("JUPYTERHUB_CLIENT_ID", f"service-{service_name}"),
            client_secret=env.get("JUPYTERHUB_API_TOKEN", ""),
            redirect_uri=env.get("JUPYTERHUB_OAUTH_CALLBACK_URL", ""),
            service_name=service_name,
        )

    @property
    def configured(self) -> bool:
        return bool(self.api_url and self.client_secret and self.redirect_uri)


def token_from_header(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() in TOKEN_SCHEMES else None


def may_view(viewer: Viewer, owner: str) -> bool:
    """The rule: a cluster's dashboard is its owner's, and hub admins'."""
    return viewer.admin or viewer.name == owner


class DashboardGate:
    """The gate's state (sessions, pending logins) and its handlers."""

    def __init__(self, backend: Clusters, hub: HubLink) -> None:
        self.backend = backend
        self.hub = hub
        self.sessions: dict[str, tuple[Viewer, float]] = {}
        self.pending: dict[str, tuple[str, float]] = {}  # OAuth state → (where to go back, expiry)
        self._http: aiohttp.ClientSession | None = None
        self.relay = Relay(request_timeout=None, connect_timeout=10)

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self.relay.close()

    # ---- who is asking ------------------------------------------------------------------

    async def viewer_for_token(self, token: str) -> Viewer | None:
        """The hub's answer for ``token``, when it may use this service; None otherwise."""
        async with self.http.get(f"{self.hub.api_url}/user",
                                 headers={"Authorization": f"token {token}"}) as response:
            if response.status in (401, 403, 404):
                return None
            if response.status >= 400:
                raise web.HTTPBadGateway(text=f"The hub answered {response.status} to checking a token")
            data: dict[str, Any] = await response.json()
        wanted = {"access:services", f"access:services!service={self.hub.service_name}"}
        if data.get("kind") != "user" or not wanted.intersection(data.get("scopes", [])):
            return None
        return Viewer(str(data["name"]), bool(data.get("admin", False)))

    def viewer_for_session(self, request: web.Request) -> Viewer | None:
        sid = request.cookies.get(SESSION_COOKIE)
        found = self.sessions.get(sid or "")
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def _new_session(self, viewer: Viewer) -> str:
        now = time.monotonic()
        for key in [k for k, (_, until) in self.sessions.items() if until < now]:
            del self.sessions[key]
        if len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = (viewer, now + SESSION_SECONDS)
        return sid

    # ---- the OAuth login ----------------------------------------------------------------

    def _login_redirect(self, request: web.Request) -> web.Response:
        if not self.hub.configured:
            raise web.HTTPUnauthorized(text="Sign in: send a JupyterHub token (Authorization: token ...).")
        now = time.monotonic()
        for key in [k for k, (_, until) in self.pending.items() if until < now]:
            del self.pending[key]
        state = secrets.token_urlsafe(24)
        back = self._public_path(request)
        self.pending[state] = (back, now + STATE_SECONDS)
        query = urlencode({"client_id": self.hub.client_id, "redirect_uri": self.hub.redirect_uri,
                           "response_type": "code", "state": state})
        response = web.HTTPFound(f"{self.hub.base_url.rstrip('/')}/hub/api/oauth2/authorize?{query}")
        response.set_cookie(STATE_COOKIE, state, max_age=int(STATE_SECONDS), httponly=True, samesite="Lax",
                            path=self._cookie_path())
        return response

    def _cookie_path(self) -> str:
        return f"{self.hub.base_url.rstrip('/')}/services/{self.hub.service_name}/"

    def _public_path(self, request: web.Request) -> str:
        """The dashboard path as the browser asked for it (the proxy rewrote it to the gate's)."""
        name = request.match_info["cluster"]
        tail = request.match_info.get("tail", "")
        path = f"{self._cookie_path()}clusters/{quote(name)}/{quote(tail)}"
        return f"{path}?{request.query_string}" if request.query_string else path

    async def oauth_callback(self, request: web.Request) -> web.StreamResponse:
        state = request.query.get("state", "")
        code = request.query.get("code", "")
        pending = self.pending.pop(state, None)
        if not state or not code or pending is None or request.cookies.get(STATE_COOKIE) != state:
            raise web.HTTPBadRequest(text="This sign-in link is stale or was not started here: open the "
                                          "dashboard again.")
        back = pending[0]
        data = {"client_id": self.hub.client_id, "client_secret": self.hub.client_secret, "code": code,
                "grant_type": "authorization_code", "redirect_uri": self.hub.redirect_uri}
        async with self.http.post(f"{self.hub.api_url}/oauth2/token", data=data) as response:
            if response.status != 200:
                raise web.HTTPForbidden(text="The hub did not confirm this sign-in: open the dashboard again.")
            token = (await response.json()).get("access_token", "")
        viewer = await self.viewer_for_token(token) if token else None
        if viewer is None:
            raise web.HTTPForbidden(text="Your account may not use Dask Gateway.")
        if not back.startswith(self._cookie_path()):
            back = self._cookie_path()
        answer = web.HTTPFound(back)
        answer.set_cookie(SESSION_COOKIE, self._new_session(viewer), httponly=True, samesite="Lax",
                          path=self._cookie_path())
        answer.del_cookie(STATE_COOKIE, path=self._cookie_path())
        return answer

    # ---- the gate -----------------------------------------------------------------------

    async def viewer(self, request: web.Request) -> Viewer | None:
        header = request.headers.get("Authorization", "")
        if header:
            token = token_from_header(header)
            return await self.viewer_for_token(token) if token else None
        return self.viewer_for_session(request)

    async def gate(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["cluster"]
        viewer = await self.viewer(request)
        if viewer is None:
            if request.headers.get("Authorization") or request.method != "GET" \
                    or request.headers.get("Upgrade", "").lower() == "websocket":
                raise web.HTTPUnauthorized(text="Sign in to JupyterHub to see this dashboard.")
            return self._login_redirect(request)
        cluster = self.backend.db.get_cluster(name)
        if cluster is None or not cluster.dashboard_address:
            raise web.HTTPNotFound(text=f"No running Dask cluster {name}.")
        if not may_view(viewer, str(cluster.username)):
            self.backend.log.info("Refused %s the dashboard of cluster %s (%s's)", viewer.name, name,
                                  cluster.username)
            raise web.HTTPForbidden(text="This dashboard belongs to another user's cluster.")
        target = f"{str(cluster.dashboard_address).rstrip('/')}/{request.match_info.get('tail', '')}"
        if request.query_string:
            target = f"{target}?{request.query_string}"
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_websocket(request, target)
        return await self._relay_http(request, target)

    async def _relay_http(self, request: web.Request, target: str) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else None
        sink = AiohttpSink(request)
        try:
            await self.relay.http(request.method, target, forward_headers(request.headers.items(), PRIVATE_HEADERS),
                                  body, sink, drop=PRIVATE_RESPONSE_HEADERS)
        except UpstreamUnavailable:
            raise web.HTTPBadGateway(text="The cluster's dashboard does not answer.") from None
        return sink.response

    async def _relay_websocket(self, request: web.Request, target: str) -> web.StreamResponse:
        """The upstream socket first, with the subprotocols the browser offered (bokeh sends its
        session token as one, and refuses a socket without it); then the browser's, answering with
        the subprotocol the dashboard chose."""
        url = "ws" + target[len("http"):] if target.startswith("http") else target
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            upstream = await self.relay.websocket(url, [("Origin", "/".join(target.split("/", 3)[:3]))], offered)
        except UpstreamUnavailable:
            raise web.HTTPBadGateway(text="The cluster's dashboard does not answer.") from None
        client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                       max_msg_size=self.relay.max_message_bytes)
        try:
            await client.prepare(request)
        except BaseException:
            await upstream.close()
            raise
        await pump(AiohttpChannel(client), AiohttpChannel(upstream))
        return client


def install(app: web.Application, backend: Clusters, hub: HubLink) -> DashboardGate:
    gate = DashboardGate(backend, hub)
    app.router.add_route("*", GATE_PATH + "/{cluster}/{tail:.*}", gate.gate)
    app.router.add_route("*", GATE_PATH + "/{cluster}", gate.gate)
    app.router.add_get(GATE_CALLBACK_PATH, gate.oauth_callback)
    app.router.add_get(GATE_CALLBACK_PATH + "/", gate.oauth_callback)  # the proxy adds a slash
    return gate
