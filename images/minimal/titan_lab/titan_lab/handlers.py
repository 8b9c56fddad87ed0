"""The server routes of the titan-lab extension, under ``<base_url>titan/api/``.

Only this server's users reach them (jupyter_server's own authentication and XSRF checks). The
service calls carry this server's token (``JUPYTERHUB_API_TOKEN``: the owner, with the scope
``access:services!service=titan``); the service answers for the owner alone and its answer (status
and JSON body, errors included) is passed back unchanged.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

SERVICE_TIMEOUT = 30.0  # seconds


def server_model(env: dict[str, str]) -> dict[str, Any]:
    """This server's profile, image and limits from the spawner's environment."""
    def number(key: str) -> float | None:
        try:
            return float(env[key])
        except (KeyError, ValueError):
            return None

    return {"profile": env.get("TITAN_PROFILE", ""), "image": env.get("TITAN_IMAGE", ""),
            "cpu": number("CPU_LIMIT"), "memory": number("MEM_LIMIT"),
            "service": bool(env.get("TITAN_SERVICE_URL"))}


class ServerHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish(server_model(dict(os.environ)))


class ServiceRelay(APIHandler):
    """Relays one call to the Titan service as this server's owner."""

    async def relay(self, method: str, path: str, body: bytes | None = None) -> None:
        base = os.environ.get("TITAN_SERVICE_URL", "")
        if not base:
            raise web.HTTPError(503, "Titan's service is not part of this deployment")
        request = HTTPRequest(url_path_join(base, path), method=method, body=body,
                              headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}",
                                       "Content-Type": "application/json"},
                              request_timeout=SERVICE_TIMEOUT, follow_redirects=False)
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as error:
            raise web.HTTPError(502, f"Titan's service did not answer: {error}") from None
        self.set_status(response.code if response.code >= 200 else 502)
        text = response.body.decode("utf-8", "replace") if response.body else ""
        try:
            self.finish(json.loads(text) if text else {})
        except ValueError:
            self.finish({"message": text[:500] or f"Titan's service answered {response.code}"})


class AutosaveHandler(ServiceRelay):
    @web.authenticated
    async def get(self) -> None:
        user = quote(os.environ.get("JUPYTERHUB_USER", ""), safe="")
        await self.relay("GET", f"api/users/{user}/autosave")


class LinksHandler(ServiceRelay):
    @web.authenticated
    async def post(self) -> None:
        await self.relay("POST", "api/links", self.request.body)


def routes(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    prefix = url_path_join(base_url, "titan", "api")
    return [(url_path_join(prefix, "server"), ServerHandler),
            (url_path_join(prefix, "autosave"), AutosaveHandler),
            (url_path_join(prefix, "links"), LinksHandler)]
