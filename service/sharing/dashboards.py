"""Dashboards: a named server of the owner that runs only the app (the spawner's ``dashboard``
user option). The link decides who may open it and, for each viewer it lets in, grants a
JupyterHub share of that one server. Revoking, expiring or narrowing a link deletes the server's
shares at once (and revoking or expiry stops the server).

Everything here is a hub API call; the hub's answers are read by status code and by the server
model, never by their message text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any
from urllib.parse import quote

from core.dashboards import APP_SUFFIXES, DEFAULT_APP
from service.hub import HubClient
from service.sharing.access import Access
from service.sharing.errors import HubUnavailable, Invalid
from service.sharing.links import SharingConfig
from service.sharing.models import ShareLink
from service.sharing.render import clean_relative_path

log = logging.getLogger("titan.sharing")

START_WITHIN = 120.0  # seconds a viewer waits for a stopped dashboard to start
STOP_WITHIN = 60.0


def dashboard_server_name(link_id: str) -> str:
    """The owner's named server for a dashboard; a hash, so the server name does not reveal the link."""
    return "dash-" + hashlib.sha256(link_id.encode()).hexdigest()[:10]


def _message(body: Any) -> str:
    return str(body.get("message", ""))[:300] if isinstance(body, dict) else ""


class Dashboards:
    def __init__(self, config: SharingConfig, hub: HubClient) -> None:
        self.config = config
        self.hub = hub

    def check_access(self, access: Access) -> None:
        if access.mode == "public" and not self.config.public_dashboard_url:
            raise Invalid("public dashboards need their own origin, and the admin has not set one up "
                          "(sharing.public_dashboard_port); use team access")

    def fill_in(self, row: ShareLink, request: dict[str, Any]) -> None:
        """The dashboard's app, path, profile, image and server name on a new link."""
        self.check_access(Access(row.mode))
        row.app = request.get("app", DEFAULT_APP)
        row.path = clean_relative_path(request.get("path"), APP_SUFFIXES[row.app])
        row.profile = request.get("profile") or self.config.dashboard_profile
        row.image = request.get("image", "")
        row.server = dashboard_server_name(row.id)

    def url(self, owner: str, server: str) -> str:
        return f"{self.config.hub_base}user/{quote(owner)}/{quote(server)}/"

    async def _hub(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            return await self.hub.request(method, path, body)
        except ConnectionError as error:
            raise HubUnavailable(str(error)) from None

    @staticmethod
    def _server_path(owner: str, server: str) -> str:
        return f"/users/{quote(owner, safe='')}/servers/{quote(server, safe='')}"

    @staticmethod
    def _shares_path(owner: str, server: str) -> str:
        return f"/shares/{quote(owner, safe='')}/{quote(server, safe='')}"

    async def server_model(self, owner: str, server: str) -> dict[str, Any]:
        """The hub's model of the owner's server ({} when there is none or the hub says no)."""
        status, body = await self._hub("GET", f"/users/{quote(owner, safe='')}")
        if status != 200 or not isinstance(body, dict):
            return {}
        return dict((body.get("servers") or {}).get(server) or {})

    async def start(self, row: ShareLink) -> None:
        """Ask the hub to start the link's server. One that is running or starting already is fine:
        the hub answers 400 to those too, so a 400 is read against the server's model."""
        options: dict[str, Any] = {"dashboard": {"app": row.app, "path": row.path}}
        if row.profile:
            options["profile"] = row.profile
        if row.image:
            options["image"] = row.image
        status, body = await self._hub("POST", self._server_path(row.owner, row.server), options)
        if status in (201, 202):
            return
        if status == 400:
            model = await self.server_model(row.owner, row.server)
            if model.get("ready") or model.get("pending") == "spawn":
                return
        if status in (400, 409):
            raise Invalid(f"the dashboard server could not start: {_message(body) or status}")
        raise HubUnavailable(f"the hub answered {status} when starting the dashboard: {_message(body)}")

    async def ensure_running(self, row: ShareLink) -> bool:
        """Start the server when it is not ready and wait for it; False when it did not come up."""
        if (await self.server_model(row.owner, row.server)).get("ready"):
            return True
        await self.start(row)
        return await self.wait(row.owner, row.server, ready=True, within=START_WITHIN)

    async def share_with(self, owner: str, server: str, viewer: str) -> None:
        status, body = await self._hub("POST", self._shares_path(owner, server), {"user": viewer})
        if status != 200:
            raise HubUnavailable(f"the hub refused to share the dashboard ({status}: {_message(body)})")

    async def delete_shares(self, owner: str, server: str) -> None:
        if not server:
            return
        status, body = await self._hub("DELETE", self._shares_path(owner, server))
        if status not in (200, 204, 404):
            raise HubUnavailable(f"the hub did not remove the shares ({status}: {_message(body)})")

    async def stop(self, row: ShareLink, remove: bool) -> None:
        """Delete the shares and stop the server (``remove``: delete it too; else wait until stopped)."""
        await self.delete_shares(row.owner, row.server)
        if not row.server:
            return
        status, body = await self._hub("DELETE", self._server_path(row.owner, row.server),
                                       {"remove": True} if remove else None)
        if status not in (202, 204, 404, 400):
            log.warning("Stopping dashboard server %s/%s: %s %s", row.owner, row.server, status, _message(body))
        if not remove:
            await self.wait(row.owner, row.server, ready=False, within=STOP_WITHIN)

    async def restart(self, row: ShareLink) -> None:
        await self.stop(row, remove=False)
        await self.start(row)

    async def wait(self, owner: str, server: str, ready: bool, within: float) -> bool:
        """Wait until the server is ready (``ready``) or neither ready nor pending; False on timeout."""
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            model = await self.server_model(owner, server)
            if ready and model.get("ready"):
                return True
            if not ready and not (model.get("ready") or model.get("pending")):
                return True
            await asyncio.sleep(0.5)
        return False
