"""The gateway's own HTTP additions, installed on dask-gateway's aiohttp application.

- ``POST /api/titan/v1/server-stopped``: the hub (the spawner's ``stop``) reports that a user's
  server stopped; that server's clusters are stopped and the call returns once their containers
  are gone (or after a timeout). Authenticated with the shared control token.
- ``POST /api/titan/v1/stop-cluster``: the Titan service's admin page stops one cluster by name
  (``{"cluster": ...}``); same control token. 404 when no such cluster is active.
- A middleware that, on ``scale`` and ``adapt``, tells the user when the backend clipped the
  request to their limits: the answer becomes ``{"ok": false, "msg": ...}``, which the
  dask-gateway client shows as a warning.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol

from aiohttp import web

from core.endpoints import SERVER_STOPPED_PATH, STOP_CLUSTER_PATH


class ClusterControl(Protocol):
    """What the routes ask of the backend (gateway.backend.DockerBackend is one)."""

    control_token: str

    async def stop_server_clusters(self, username: str, server: str, wait: float = 20.0) -> list[str]: ...
    async def stop_cluster_by_name(self, name: str, wait: float = 20.0) -> str | None: ...

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Clip:
    def __init__(self, requested: int | None) -> None:
        self.requested = requested
        self.notes: list[str] = []


_clip: ContextVar[_Clip | None] = ContextVar("titan_gateway_clip", default=None)


def requested_count(fallback: Any) -> int | None:
    """The worker count the client asked for in this request (before dask-gateway's own clip)."""
    clip = _clip.get()
    value = clip.requested if clip is not None and clip.requested is not None else fallback
    return value if isinstance(value, int) else None


def note(message: str) -> None:
    """Tell the client of this scale/adapt request ``message``."""
    clip = _clip.get()
    if clip is not None:
        clip.notes.append(message)


@web.middleware
async def clip_notes(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method != "POST" or not request.path.endswith(("/scale", "/adapt")):
        return await handler(request)
    try:
        body = await request.json()  # aiohttp keeps the body: the handler reads it again
    except ValueError:
        body = {}
    field = "count" if request.path.endswith("/scale") else "maximum"
    clip = _Clip(body.get(field) if isinstance(body, dict) else None)
    token = _clip.set(clip)
    try:
        response = await handler(request)
    finally:
        _clip.reset(token)
    if clip.notes and isinstance(response, web.Response) and response.status == 200:
        return web.json_response({"ok": False, "msg": " ".join(clip.notes)})
    return response


def _allowed(backend: ClusterControl, request: web.Request) -> bool:
    expected = f"token {backend.control_token}"
    given = request.headers.get("Authorization", "")
    return bool(backend.control_token) and hmac.compare_digest(given.encode(), expected.encode())


def _server_stopped(backend: ClusterControl) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not _allowed(backend, request):
            return web.json_response({"error": "not allowed"}, status=403)
        try:
            body = await request.json()
            user, server = body["user"], body["server"]
            wait = float(body.get("wait", 20))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"user": ..., "server": ...}'}, status=400)
        if not isinstance(user, str) or not isinstance(server, str):
            return web.json_response({"error": "user and server must be strings"}, status=400)
        stopped = await backend.stop_server_clusters(user, server, wait=min(max(wait, 0.0), 60.0))
        return web.json_response({"stopped": stopped})

    return handler


def _stop_cluster(backend: ClusterControl) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not _allowed(backend, request):
            return web.json_response({"error": "not allowed"}, status=403)
        try:
            body = await request.json()
            name = body["cluster"]
            wait = float(body.get("wait", 20))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"cluster": ...}'}, status=400)
        if not isinstance(name, str):
            return web.json_response({"error": "cluster must be a string"}, status=400)
        stopped = await backend.stop_cluster_by_name(name, wait=min(max(wait, 0.0), 60.0))
        if stopped is None:
            return web.json_response({"error": f"no active cluster {name}"}, status=404)
        return web.json_response({"stopped": name, "user": stopped})

    return handler


@web.middleware
async def json_too_large(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp refuses bodies over ``client_max_size`` (1 MiB) with 413, which dask-gateway words
    "Request Entity Too Large": say what the limit is (``error`` as dask-gateway's clients read it,
    ``message`` as Titan's other services say it)."""
    try:
        response = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        response = None
    if response is not None and response.status != 413:
        return response
    text = f"The request body is too large: the gateway takes at most {request.client_max_size // 1024} KB."
    return web.json_response({"status": 413, "error": text, "message": text}, status=413)


def install(app: web.Application, backend: ClusterControl) -> None:
    """Add the routes and the middleware; called before the application starts."""
    app.middlewares.insert(0, json_too_large)  # outermost: it sees dask-gateway's own 413 answers
    app.middlewares.append(clip_notes)
    app.router.add_post(SERVER_STOPPED_PATH, _server_stopped(backend))
    app.router.add_post(STOP_CLUSTER_PATH, _stop_cluster(backend))
