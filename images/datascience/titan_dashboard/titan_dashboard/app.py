"""``titan-dashboard``: serve one notebook or script as a Voila or Panel app behind JupyterHub.

Run by a dashboard server's container instead of ``jupyterhub-singleuser``. It listens where
the hub expects the server (``JUPYTERHUB_SERVICE_URL``, under ``JUPYTERHUB_SERVICE_PREFIX``),
starts the app as a child process on a free 127.0.0.1 port, and proxies HTTP and websockets to
it. Every request is authenticated with the hub (``HubOAuth``: a login redirect for browsers,
``Authorization: token`` for scripts) and needs the server's access scope
(``JUPYTERHUB_OAUTH_ACCESS_SCOPES``), which a JupyterHub share grants. What passes is decided by
:mod:`titan_dashboard.rules`: no Jupyter API, files, kernels or terminals, ever.

The hub's answers are cached for a few seconds only, and open websockets re-check their
viewer's token every few seconds, so a revoked share stops working at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import httpclient, httputil, web, websocket

from titan_dashboard import __version__
from titan_dashboard.rules import READINESS, decide, kernel_message_allowed

log = logging.getLogger("titan_dashboard")

CACHE_MAX_AGE = 5  # seconds the hub's answer about a token is trusted
RECHECK_INTERVAL = 5.0  # seconds between re-checks of an open websocket's token
ACTIVITY_INTERVAL = 30.0  # seconds between activity reports to the hub
START_TIMEOUT = 120.0  # seconds the app may take to listen
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length"})
SAFE_PATH = "/:@!$&'()*+,;=-._~"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def app_command(app: str, notebook: Path, port: int, prefix: str) -> list[str]:
    """The child process serving the dashboard on 127.0.0.1:port under ``prefix``."""
    if app == "voila":
        return [sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
                "--Voila.port_retries=0", f"--Voila.base_url={prefix}", str(notebook)]
    if app == "panel":
        return [sys.executable, "-m", "panel", "serve", str(notebook), "--port", str(port), "--address", "127.0.0.1",
                "--prefix", prefix, f"--allow-websocket-origin=127.0.0.1:{port}", "--num-procs", "1"]
    raise ValueError(f"unknown dashboard app {app!r}")


@dataclass
class State:
    """What the handlers share: the app, the hub's auth, the child process and activity."""

    app: str
    prefix: str
    hub_auth: HubOAuth
    port: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    last_activity: float = field(default_factory=time.time)
    sockets: set[ProxyHandler] = field(default_factory=set)

    def touch(self) -> None:
        self.last_activity = time.time()


def write_version(handler: web.RequestHandler) -> None:
    """``GET <prefix>api``: JupyterHub's readiness check, answered as jupyter_server does (no auth)."""
    from jupyterhub import __version__ as hub_version

    handler.set_header("X-JupyterHub-Version", hub_version)
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"version": __version__}))


class VersionHandler(web.RequestHandler):
    def get(self) -> None:
        write_version(self)


class CallbackHandler(HubOAuthCallbackHandler):
    """Finishes the OAuth login with the same ``HubOAuth`` (and its login states) as the proxy."""

    def initialize(self, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth


class ProxyHandler(HubOAuthenticated, websocket.WebSocketHandler):
    """Everything under the prefix: checked by the rules, authenticated, then proxied."""

    state: State
    _rel: str
    _upstream: websocket.WebSocketClientConnection | None = None
    _token: str = ""
    _tasks: list[asyncio.Task[None]]

    def initialize(self, state: State) -> None:
        self.state = state
        self.hub_auth = state.hub_auth
        self._tasks = []

    @property
    def _is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    async def prepare(self) -> None:
        raw = self.request.path[len(self.state.prefix):]
        verdict = decide(self.state.app, self.request.method or "GET", raw, self._is_websocket)
        if not verdict.allowed:
            log.info("Refused %s %s: %s", self.request.method, self.request.path, verdict.reason)
            raise web.HTTPError(verdict.status, verdict.reason)
        if verdict.action == READINESS:
            return
        self._rel = verdict.path
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            if self.request.method == "GET" and not self._is_websocket and "Authorization" not in self.request.headers:
                self.redirect(self.get_login_url())
                return
            raise web.HTTPError(403, "Sign in to JupyterHub to see this dashboard")
        try:
            self.check_hub_user(model)
        except UserNotAllowed:
            log.info("Refused %s %s to %s: no access to this server", self.request.method, self.request.path,
                     model.get("name"))
            raise web.HTTPError(403, f"{model.get('name')} may not see this dashboard") from None
        self._hub_auth_user_cache = model
        if self.request.method not in ("GET", "HEAD") and not getattr(self, "_token_authenticated", False):
            origin = self.request.headers.get("Origin", "")
            if origin and urlsplit(origin).netloc != self.request.host:
                raise web.HTTPError(403, "cross-origin request refused")
        self._token = self.hub_auth.get_token(self) or ""
        self.state.touch()

    # ---- HTTP ---------------------------------------------------------------------------

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if decide(self.state.app, "GET", self.request.path[len(self.state.prefix):], False).action == READINESS:
            write_version(self)
            return
        if self._is_websocket:
            await self._open_upstream()
            await super().get(*args, **kwargs)
            return
        await self._proxy()

    async def post(self, *args: Any) -> None:
        await self._proxy()

    async def head(self, *args: Any) -> None:
        await self._proxy()

    async def _upstream_url(self, scheme: str) -> str:
        await asyncio.wait_for(self.state.ready.wait(), START_TIMEOUT)
        url = f"{scheme}://127.0.0.1:{self.state.port}{self.state.prefix}{quote(self._rel, safe=SAFE_PATH)}"
        return url + (f"?{self.request.query}" if self.request.query else "")

    def _upstream_headers(self) -> httputil.HTTPHeaders:
        """The request's headers minus hop-by-hop ones and the viewer's hub credentials, which
        the app (the owner's code) must never see."""
        headers = httputil.HTTPHeaders()
        for name, value in self.request.headers.get_all():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower == "authorization" or lower.startswith("sec-websocket"):
                continue
            if lower == "cookie":
                kept = [c.strip() for c in value.split(";") if c.strip()]
                kept = [c for c in kept if not c.lower().startswith("jupyterhub-")]
                if not kept:
                    continue
                value = "; ".join(kept)
            headers.add(name, value)
        return headers

    async def _proxy(self) -> None:
        url = await self._upstream_url("http")
        method = self.request.method or "GET"
        request = httpclient.HTTPRequest(
            url, method=method, headers=self._upstream_headers(),
            body=self.request.body if method == "POST" else None,
            follow_redirects=False, decompress_response=False, request_timeout=300,
            allow_nonstandard_methods=True,
        )
        response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 599:
            log.warning("The %s app did not answer %s: %s", self.state.app, self.request.path, response.error)
            raise web.HTTPError(502, "the dashboard app did not answer")
        self.set_status(response.code, response.reason)
        for name in ("Content-Type", "Server", "Date"):
            self.clear_header(name)
        for name, value in response.headers.get_all():
            if name.lower() not in HOP_BY_HOP:
                self.add_header(name, value)
        if response.body and response.code not in (204, 304) and method != "HEAD":
            self.write(response.body)
        self.finish()

    # ---- websockets ---------------------------------------------------------------------

    async def _open_upstream(self) -> None:
        url = await self._upstream_url("ws")
        headers = self._upstream_headers()
        for name in ("Host", "Origin"):
            headers.pop(name, None)
        headers["Host"] = f"127.0.0.1:{self.state.port}"
        headers["Origin"] = f"http://127.0.0.1:{self.state.port}"
        # Passed on as offered: Voila's page asks for Jupyter's v1 kernel protocol (the filter reads
        # both), Bokeh's carries its session token as a subprotocol.
        offered = self.request.headers.get("Sec-WebSocket-Protocol", "")
        subprotocols = [p.strip() for p in offered.split(",") if p.strip()]
        try:
            self._upstream = await websocket.websocket_connect(
                httpclient.HTTPRequest(url, headers=headers, connect_timeout=30, request_timeout=30),
                subprotocols=subprotocols or None, max_message_size=100 * 1024 * 1024,
            )
        except (OSError, httpclient.HTTPClientError) as error:
            log.warning("The %s app refused a websocket on %s: %s", self.state.app, self.request.path, error)
            raise web.HTTPError(502, "the dashboard app refused the connection") from None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self._upstream.selected_subprotocol if self._upstream is not None else None

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.state.sockets.add(self)
        self._tasks = [asyncio.ensure_future(self._relay()), asyncio.ensure_future(self._recheck())]

    async def _relay(self) -> None:
        assert self._upstream is not None
        while True:
            message = await self._upstream.read_message()
            if message is None:
                self.close()
                return
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                return

    async def _recheck(self) -> None:
        """Close the socket as soon as its viewer's token no longer gives access to this server."""
        while True:
            await asyncio.sleep(RECHECK_INTERVAL)
            allowed = False
            try:
                model = await self.hub_auth.user_for_token(self._token, use_cache=False, sync=False)
                allowed = bool(model) and bool(self.hub_auth.check_scopes(self.hub_scopes, model))
            except Exception as error:  # fail closed: the browser reconnects through the login
                log.warning("Could not re-check a websocket's access: %s", error)
            if not allowed:
                log.info("Closing a websocket on %s: access is gone", self.request.path)
                self.close(1008, "access revoked")
                return

    async def on_message(self, message: str | bytes) -> None:
        self.state.touch()
        protocol = self._upstream.selected_subprotocol if self._upstream is not None else None
        if self.state.app == "voila" and not kernel_message_allowed(message, protocol):
            log.warning("Dropped a kernel message a dashboard viewer may not send")
            return
        if self._upstream is not None:
            try:
                await self._upstream.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                self.close()

    def on_close(self) -> None:
        self.state.sockets.discard(self)
        for task in self._tasks:
            task.cancel()
        if self._upstream is not None:
            self._upstream.close()


async def report_activity(state: State, url: str, token: str, server: str) -> None:
    """Tell the hub when the dashboard was last used, so the idle culler sees viewers."""
    reported = 0.0
    while True:
        await asyncio.sleep(ACTIVITY_INTERVAL)
        if state.sockets:
            state.touch()
        if state.last_activity <= reported:
            continue
        stamp = datetime.fromtimestamp(state.last_activity, UTC).isoformat().replace("+00:00", "Z")
        body = json.dumps({"servers": {server: {"last_activity": stamp}}, "last_activity": stamp})
        try:
            await httpclient.AsyncHTTPClient().fetch(url, method="POST", body=body,
                                                     headers={"Authorization": f"token {token}"})
            reported = state.last_activity
        except Exception as error:
            log.warning("Could not report activity to the hub: %s", error)


async def stop_when_idle(state: State, idle_seconds: float, stop: asyncio.Event) -> None:
    """Stop the server after ``idle_seconds`` with no request and no open websocket."""
    while not stop.is_set():
        await asyncio.sleep(min(30.0, idle_seconds))
        if state.sockets:
            state.touch()
        elif time.time() - state.last_activity > idle_seconds:
            log.info("No viewer for %.0f s: stopping", idle_seconds)
            stop.set()


async def wait_listening(port: int, child: asyncio.subprocess.Process) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and child.returncode is None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False


def log_request(handler: web.RequestHandler) -> None:
    """Access log without query strings: they can hold OAuth codes and tokens."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    log.log(level, "%d %s %s %.0fms", status, handler.request.method, handler.request.path,
            1000 * handler.request.request_time())


def make_app(state: State, cookie_secret: bytes) -> web.Application:
    prefix = re.escape(state.prefix)
    return web.Application(
        [
            (rf"{prefix}api", VersionHandler),
            (rf"{prefix}oauth_callback", CallbackHandler, {"hub_auth": state.hub_auth}),
            (rf"{prefix}(.*)", ProxyHandler, {"state": state}),
        ],
        cookie_secret=cookie_secret,
        hub_auth=state.hub_auth,
        websocket_max_message_size=100 * 1024 * 1024,
        log_function=log_request,
    )


async def serve(app: str, notebook: Path) -> int:
    service_url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    hub_auth = HubOAuth(cache_max_age=CACHE_MAX_AGE, api_token=os.environ["JUPYTERHUB_API_TOKEN"])
    state = State(app=app, prefix=prefix, hub_auth=hub_auth, port=free_port())
    http_server = make_app(state, secrets.token_bytes(32)).listen(
        service_url.port or 8888, address=service_url.hostname or "127.0.0.1", xheaders=True)
    command = app_command(app, notebook, state.port, prefix)
    log.info("Serving %s with %s on 127.0.0.1:%d under %s", notebook, app, state.port, prefix)
    child = await asyncio.create_subprocess_exec(*command, cwd=str(Path.home()), stdin=asyncio.subprocess.DEVNULL)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = []
    if os.environ.get("JUPYTERHUB_ACTIVITY_URL"):
        tasks.append(asyncio.ensure_future(report_activity(
            state, os.environ["JUPYTERHUB_ACTIVITY_URL"], os.environ["JUPYTERHUB_API_TOKEN"],
            os.environ.get("JUPYTERHUB_SERVER_NAME", ""))))
    idle_timeout = float(os.environ.get("TITAN_IDLE_TIMEOUT") or 0)
    if idle_timeout > 0:
        tasks.append(asyncio.ensure_future(stop_when_idle(state, idle_timeout, stop)))
    if await wait_listening(state.port, child):
        state.ready.set()
        log.info("The %s app is up", app)
    exited = asyncio.ensure_future(child.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
    http_server.stop()
    for task in [*tasks, stopping]:
        task.cancel()
    if child.returncode is None:
        child.terminate()
        try:
            await asyncio.wait_for(child.wait(), 10)
        except TimeoutError:
            child.kill()
        return 0
    log.error("The %s app exited with code %s", app, child.returncode)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="titan-dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", choices=["voila", "panel"], required=True)
    parser.add_argument("--path", required=True, help="the notebook or script, relative to the home")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s titan-dashboard] %(message)s")
    home = Path.home().resolve()
    notebook = (home / options.path).resolve()
    if notebook != home and home not in notebook.parents:
        log.error("%s is not inside the home %s", options.path, home)
        return 2
    if not notebook.is_file():
        log.error("There is no file %s in the home: nothing to serve", options.path)
        return 2
    for variable in ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN"):
        if not os.environ.get(variable):
            log.error("%s is not set: titan-dashboard runs as a JupyterHub server", variable)
            return 2
    return asyncio.run(serve(options.app, notebook))


if __name__ == "__main__":
    sys.exit(main())
