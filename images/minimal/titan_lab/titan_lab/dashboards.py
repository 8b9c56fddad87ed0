"""The Dask sidebar's dashboard panels for Gateway clusters, relayed through Titan's gateway.

dask-labextension shows a cluster's plots (Progress, Task Stream, ...) in iframes at
``<base_url>dask/dashboard/<cluster id>/<plot>`` and proxies them server-side to the host and port
of the cluster's ``dashboard_link``, dropping the link's path. A Gateway cluster's link is the
gateway's public route (``<hub>/services/dask-gateway/clusters/<name>/status``): the hub's public
address, which a server may not reach, and a path that must stay. So for Gateway clusters this route
goes first and relays HTTP and websockets (the plots' bokeh sessions) to
``$DASK_GATEWAY__ADDRESS/clusters/<name>/<plot>``: the address the server already uses for the
Gateway, on the Titan network, with this server's own token (``JUPYTERHUB_API_TOKEN``: the owner,
which the gateway's dashboard gate checks, as it checks a browser's login). Clusters that are not
Gateway clusters keep dask-labextension's own handler.

Only this server's users reach the route (jupyter_server's authentication); only clusters in this
server's sidebar are relayed; the caller's cookies and credentials never go up, and no upstream
cookie comes back.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import quote

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.routing import PathMatches
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, WebSocketHandler, websocket_connect

CLUSTER_ID = r"(?P<cluster_id>\w+-\w+-\w+-\w+-\w+)"  # dask-labextension's (UUID-shaped ids)
CONNECT_TIMEOUT = 10.0  # seconds
REQUEST_TIMEOUT = 120.0
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
#: Request headers that go up (besides the server's token); the caller's cookies and credentials stay.
REQUEST_HEADERS = ("Accept", "Accept-Language", "Content-Type", "If-None-Match", "If-Modified-Since",
                   "Cache-Control", "User-Agent")
#: Response headers that come back.
RESPONSE_HEADERS = ("Content-Type", "Cache-Control", "ETag", "Last-Modified", "Expires", "Location")


def gateway_cluster_name(cluster_id: str) -> str | None:
    """The Gateway name of the sidebar's cluster ``cluster_id``; None when the sidebar has no such
    cluster or it is not a Gateway cluster (a LocalCluster, say)."""
    try:
        from dask_gateway import GatewayCluster
        from dask_labextension.manager import manager
    except ImportError:
        return None
    cluster = manager._clusters.get(cluster_id)
    name = getattr(cluster, "name", None) if isinstance(cluster, GatewayCluster) else None
    return name if isinstance(name, str) and name else None


def upstream_url(address: str, name: str, path: str, query: str = "") -> str:
    """``<address>/clusters/<name>/<path>?<query>``: the gateway's route to the cluster's dashboard."""
    url = f"{address.rstrip('/')}/clusters/{quote(name, safe='')}/{quote(path.lstrip('/'), safe='/%:@!$&()*+,;=-._~')}"
    return f"{url}?{query}" if query else url


def local_location(location: str, upstream_base: str, local_base: str) -> str:
    """A redirect of the dashboard's, as the browser must follow it: the scheduler answers paths from
    its own root (``/status``) and the gateway's full address; both become this route's."""
    if location.startswith(upstream_base):
        return local_base + location[len(upstream_base):]
    if location.startswith("/") and not location.startswith("//"):
        return local_base + location
    return location


class GatewayDashboardMatches(PathMatches):
    """dask-labextension's dashboard path, for Gateway clusters only (others fall through to its own
    handler)."""

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        found = super().match(request)
        if found is None:
            return None
        cluster_id = found["path_kwargs"]["cluster_id"]
        cluster_id = cluster_id.decode() if isinstance(cluster_id, bytes) else cluster_id
        return found if gateway_cluster_name(cluster_id) is not None else None


class DashboardRelay(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """One request (or websocket) of a Gateway cluster's dashboard, relayed as this server's owner."""

    _upstream: WebSocketClientConnection | None = None
    _pumping: asyncio.Task[None] | None = None

    @property
    def content_security_policy(self) -> str:
        # The panels are iframes of this server's own JupyterLab page, on the same origin: JupyterHub
        # gives a server's pages "frame-ancestors 'none'", which would leave every panel blank.
        return "frame-ancestors 'self'"

    @property
    def _is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        # A page is sent to the login like any of the server's; a websocket is refused (403).
        await JupyterHandler.prepare(self, _redirect_to_login=not self._is_websocket)

    def _target(self, cluster_id: str, path: str | None, scheme: str = "http") -> tuple[str, str]:
        """(the upstream URL, the cluster's upstream base) for this request."""
        address = os.environ.get("DASK_GATEWAY__ADDRESS", "")
        name = gateway_cluster_name(cluster_id)
        if not address or name is None:
            raise web.HTTPError(404, f"No Dask Gateway cluster {cluster_id} in this server's sidebar")
        if scheme == "ws":
            address = "ws" + address[len("http"):]
        return (upstream_url(address, name, path or "", self.request.query),
                upstream_url(address, name, "").rstrip("/"))

    def _auth_header(self) -> dict[str, str]:
        return {"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}"}

    @ws_authenticated
    async def get(self, cluster_id: str, proxied_path: str | None = None) -> None:
        if self._is_websocket:
            await self._open_upstream(cluster_id, proxied_path)
            await WebSocketHandler.get(self, cluster_id, proxied_path)
            return
        await self._relay_http(cluster_id, proxied_path)

    @web.authenticated
    async def head(self, cluster_id: str, proxied_path: str | None = None) -> None:
        await self._relay_http(cluster_id, proxied_path)

    @web.authenticated
    async def post(self, cluster_id: str, proxied_path: str | None = None) -> None:
        await self._relay_http(cluster_id, proxied_path)

    # ---- HTTP ---------------------------------------------------------------------------

    async def _relay_http(self, cluster_id: str, path: str | None) -> None:
        url, upstream_base = self._target(cluster_id, path)
        headers = {name: value for name in REQUEST_HEADERS if (value := self.request.headers.get(name))}
        method = self.request.method or "GET"
        request = HTTPRequest(url, method=method, headers={**headers, **self._auth_header()},
                              body=self.request.body if method == "POST" else None,
                              connect_timeout=CONNECT_TIMEOUT, request_timeout=REQUEST_TIMEOUT,
                              follow_redirects=False)
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as error:
            raise web.HTTPError(502, f"The Dask Gateway did not answer: {error}") from None
        if response.code < 200:  # tornado's 599: no answer at all
            raise web.HTTPError(502, f"The Dask Gateway did not answer: {response.error}")
        self.set_status(response.code, response.reason)
        self.clear_header("Content-Type")
        local_base = url_path_join(self.base_url, "dask", "dashboard", cluster_id)
        for name in RESPONSE_HEADERS:
            value = response.headers.get(name)
            if value is not None:
                self.set_header(name, local_location(value, upstream_base, local_base) if name == "Location"
                                else value)
        if response.code not in (204, 304) and method != "HEAD" and response.body:
            self.write(response.body)
        self.finish()

    # ---- websockets ---------------------------------------------------------------------

    async def _open_upstream(self, cluster_id: str, path: str | None) -> None:
        url, _ = self._target(cluster_id, path, scheme="ws")
        offered = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        request = HTTPRequest(url, headers=self._auth_header(), connect_timeout=CONNECT_TIMEOUT,
                              request_timeout=REQUEST_TIMEOUT)
        try:
            self._upstream = await websocket_connect(request, subprotocols=offered or None,
                                                     max_message_size=MAX_MESSAGE_BYTES)
        except (OSError, HTTPClientError) as error:  # TimeoutError is an OSError
            self.log.warning("titan_lab: the dashboard websocket of %s was refused: %s", cluster_id, error)
            code = getattr(error, "code", 502)
            raise web.HTTPError(code if 400 <= code < 599 else 502,
                                "The cluster's dashboard refused the connection") from None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self._upstream.selected_subprotocol if self._upstream is not None else None

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # WebSocketMixin: keep-alive pings
        self._pumping = asyncio.ensure_future(self._pump_down())

    async def _pump_down(self) -> None:
        """Upstream messages to the browser until either side closes."""
        upstream = self._upstream
        assert upstream is not None
        try:
            while (message := await upstream.read_message()) is not None:
                await self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass
        finally:
            upstream.close()
            self.close()

    async def on_message(self, message: str | bytes) -> None:
        if self._upstream is not None:
            try:
                await self._upstream.write_message(message, binary=isinstance(message, bytes))
            except WebSocketClosedError:
                self.close()

    def on_close(self) -> None:
        if self._upstream is not None:
            self._upstream.close()


def routes(base_url: str) -> list[tuple[PathMatches, type[DashboardRelay]]]:
    path = url_path_join(base_url, f"dask/dashboard/{CLUSTER_ID}(?P<proxied_path>/.*)?")
    return [(GatewayDashboardMatches(path), DashboardRelay)]
