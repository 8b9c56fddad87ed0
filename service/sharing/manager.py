"""Publishing, changing, revoking and opening share links: the service's side of sharing.

Reports are rendered once per publication and served from the service's storage, so they stay up
while the owner's servers are stopped. A dashboard is a named server of the owner that runs only
the app (the spawner's ``dashboard`` user option); the link decides who may open it and, for each
viewer it lets in, grants a JupyterHub share of that one server. Revoking, expiring or narrowing
a link deletes the server's shares at once (and revoking or expiry stops the server).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core.dashboards import APP_SUFFIXES as DASHBOARD_APPS
from core.dashboards import DEFAULT_APP
from core.timeutil import utcnow
from service.db import Database
from service.hub import HubClient
from service.sharing.access import (
    Access,
    LinkError,
    Viewer,
    access_of,
    listed_for,
    may_view,
    needs_login,
    parse_access,
    parse_expiry,
)
from service.sharing.models import ReportVersion, ShareLink, link_state
from service.sharing.render import clean_relative_path, open_in_home, render_report
from service.sharing.storage import ReportStore

log = logging.getLogger("titan.sharing")



class LinkNotFound(LookupError):
    """No link with that id (counted as a guess)."""


class NotOwner(PermissionError):
    """The link belongs to someone else."""


@dataclass
class SharingConfig:
    public_links: bool = False
    frame_ancestors: list[str] = field(default_factory=list)
    max_notebook_bytes: int = 100 * 1024 * 1024
    versions_kept: int = 10
    dashboard_profile: str = ""
    public_dashboard_url: str = ""  # the separate origin of public dashboards; "" = none
    static_url: str = "/services/titan/static/"
    prefix: str = "/services/titan/"
    hub_base: str = "/"


@dataclass(frozen=True)
class Opened:
    """What a viewer gets: a report page, or where the dashboard is."""

    link_id: str
    kind: str
    html: bytes = b""
    redirect: str = ""


def dashboard_server_name(link_id: str) -> str:
    """The owner's named server for a dashboard; a hash, so the server name does not reveal the link."""
    return "dash-" + hashlib.sha256(link_id.encode()).hexdigest()[:10]


class ShareManager:
    def __init__(self, config: SharingConfig, db: Database, store: ReportStore, hub: HubClient,
                 home_of: Callable[[str], Path], clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.db = db
        self.store = store
        self.hub = hub
        self.home_of = home_of
        self.clock = clock
        self._render_lock = asyncio.Semaphore(2)
        # Views read a snapshot of the link from memory (the service is the only writer; every
        # change below drops it) and counts go to the database in batches: a popular report
        # costs no database write per view.
        self._snapshots: dict[str, _Snapshot] = {}
        self._pending_views: Counter[str] = Counter()

    # ---- reading ----------------------------------------------------------------------------

    def model(self, row: ShareLink) -> dict[str, Any]:
        model = row.model(self.config.prefix, self.clock())
        model["views"] += self._pending_views.get(row.id, 0)
        if row.kind == "dashboard" and row.mode == "public" and self.config.public_dashboard_url:
            model["public_url"] = f"{self.config.public_dashboard_url.rstrip('/')}/d/{row.id}"
        return model

    def public_dashboard(self, owner: str, server: str) -> _Snapshot | None:
        """The active public dashboard link served by ``owner``'s server ``server``, if any."""
        if not (self.config.public_links and self.config.public_dashboard_url and server.startswith("dash-")):
            return None
        with self.db.session() as session:
            row = session.query(ShareLink).filter_by(owner=owner, server=server, kind="dashboard",
                                                     mode="public").first()
            link_id = row.id if row is not None else None
        found = self.snapshot(link_id) if link_id else None
        if found is None or found.access.mode != "public" or found.state(self.clock()) != "active":
            return None
        return found

    def _check_public_dashboard(self, access: Access) -> None:
        if access.mode == "public" and not self.config.public_dashboard_url:
            raise LinkError("public dashboards need their own origin, and the admin has not set one up "
                            "(sharing.public_dashboard_port); use team access")

    def snapshot(self, link_id: str) -> _Snapshot | None:
        """The link as viewers need it, from memory; None for an unknown id (not remembered)."""
        found = self._snapshots.get(link_id)
        if found is not None:
            return found
        with self.db.session() as session:
            row = session.get(ShareLink, link_id)
            if row is None:
                return None
            found = _Snapshot(row.id, row.owner, row.kind, access_of(row), row.expires_at,
                              row.revoked_at is not None, row.version, row.server, row.profile, row.image, row.app,
                              row.path)
        if len(self._snapshots) > 10000:
            self._snapshots.clear()
        self._snapshots[link_id] = found
        return found

    def forget(self, link_id: str) -> None:
        self._snapshots.pop(link_id, None)

    def flush_views(self) -> int:
        """Write the views counted since the last flush (the service runs this every few seconds)."""
        pending, self._pending_views = self._pending_views, Counter()
        if not pending:
            return 0
        with self.db.session() as session:
            for link_id, count in pending.items():
                row = session.get(ShareLink, link_id)
                if row is not None:
                    row.views = (row.views or 0) + count
        return sum(pending.values())

    def owned(self, owner: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            rows = session.query(ShareLink).filter_by(owner=owner).order_by(ShareLink.created.desc()).all()
            return [self.model(row) for row in rows]

    def get_owned(self, link_id: str, owner: str) -> dict[str, Any]:
        with self.db.session() as session:
            return self.model(self._owned_row(session, link_id, owner))

    @staticmethod
    def _owned_row(session: Any, link_id: str, owner: str) -> ShareLink:
        row = session.get(ShareLink, link_id) if isinstance(link_id, str) else None
        if row is None:
            raise LinkNotFound(link_id)
        if row.owner != owner:
            raise NotOwner("only the owner can see or change this link")
        return row

    async def shared_with(self, viewer: Viewer) -> list[dict[str, Any]]:
        now = self.clock()
        with self.db.session() as session:
            rows = session.query(ShareLink).filter(ShareLink.owner != viewer.name,
                                                   ShareLink.revoked_at.is_(None)).all()
            return [self.model(r) for r in rows
                    if r.state(now) == "active" and listed_for(viewer, r.owner, access_of(r))]

    # ---- publishing -------------------------------------------------------------------------

    async def publish(self, owner: str, request: dict[str, Any]) -> dict[str, Any]:
        """A new link from ``{"kind", "path", "title", "hide_code", "app", "profile", "access",
        "expires_at"}``; the notebook is rendered (report) or its server started (dashboard)."""
        if not isinstance(request, dict):
            raise LinkError("the request body must be a JSON object")
        unknown = set(request) - {"kind", "path", "title", "hide_code", "app", "profile", "image", "access",
                                  "expires_at"}
        if unknown:
            raise LinkError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        kind = request.get("kind", "report")
        if kind not in ("report", "dashboard"):
            raise LinkError("kind must be 'report' or 'dashboard'")
        access = parse_access(request.get("access"), self.config.public_links)
        expires = parse_expiry(request.get("expires_at"), self.clock())
        title = self._title(request.get("title"))
        hide_code = request.get("hide_code", False)
        if not isinstance(hide_code, bool):
            raise LinkError("hide_code must be true or false")
        link_id = secrets.token_urlsafe(24)
        row = ShareLink(id=link_id, owner=owner, kind=kind, title=title, hide_code=hide_code, mode=access.mode,
                        users=list(access.users), groups=list(access.groups), expires_at=expires, views=0,
                        version=0)
        if kind == "report":
            row.path = clean_relative_path(request.get("path"))
            rendered = await self._render(owner, row.path, hide_code)
            row.title = row.title or rendered.title
            with self.db.session() as session:
                session.add(row)
                self._add_version(session, row, rendered)
        else:
            self._check_public_dashboard(access)
            app = request.get("app", DEFAULT_APP)
            if app not in DASHBOARD_APPS:
                raise LinkError(f"app must be one of {', '.join(DASHBOARD_APPS)}")
            row.app = app
            row.path = clean_relative_path(request.get("path"), DASHBOARD_APPS[app])
            profile = request.get("profile") or self.config.dashboard_profile
            if not isinstance(profile, str) or len(profile) > 255:
                raise LinkError("profile must be a profile slug")
            row.profile = profile
            image = request.get("image", "")
            if not isinstance(image, str) or len(image) > 255:
                raise LinkError("image must be the name of an environment of the profile, such as datascience")
            row.image = image
            row.server = dashboard_server_name(link_id)
            row.title = row.title or Path(row.path).stem
            self._check_in_home(owner, row.path)
            await self._start_dashboard(row)
            with self.db.session() as session:
                session.add(row)
        log.info("%s published %s %s (%s)", owner, kind, link_id[:6], access.mode)
        return self.get_owned(link_id, owner)

    async def republish(self, link_id: str, owner: str) -> dict[str, Any]:
        """Reports: render the notebook again under the same link (older versions kept).
        Dashboards: restart the server, so it runs the notebook as it is now."""
        with self.db.session() as session:
            row = self._owned_row(session, link_id, owner)
            if row.state(self.clock()) != "active":
                raise LinkError(f"this link is {row.state(self.clock())}; publish a new one")
            kind, path, hide_code = row.kind, row.path, row.hide_code
        if kind == "report":
            rendered = await self._render(owner, path, hide_code)
            with self.db.session() as session:
                row = self._owned_row(session, link_id, owner)
                self._add_version(session, row, rendered)
            self.forget(link_id)
        else:
            with self.db.session() as session:
                detached = self._owned_row(session, link_id, owner)
            await self._stop_dashboard(detached, remove=False)
            await self._start_dashboard(detached)
        return self.get_owned(link_id, owner)

    async def update(self, link_id: str, owner: str, request: dict[str, Any]) -> dict[str, Any]:
        """Change access, expiry, title or hide_code. Narrowing a dashboard's access removes its
        shares: viewers still allowed get a new one when they next open the link."""
        if not isinstance(request, dict):
            raise LinkError("the request body must be a JSON object")
        unknown = set(request) - {"access", "expires_at", "title", "hide_code"}
        if unknown:
            raise LinkError(f"unknown or unchangeable fields: {', '.join(sorted(map(str, unknown)))}")
        access = parse_access(request["access"], self.config.public_links) if "access" in request else None
        expires = parse_expiry(request["expires_at"], self.clock()) if "expires_at" in request else None
        rerender = False
        with self.db.session() as session:
            row = self._owned_row(session, link_id, owner)
            if row.state(self.clock()) != "active":
                raise LinkError(f"this link is {row.state(self.clock())}; publish a new one")
            if access is not None:
                if row.kind == "dashboard":
                    self._check_public_dashboard(access)
                row.mode, row.users, row.groups = access.mode, list(access.users), list(access.groups)
            if "expires_at" in request:
                row.expires_at = expires
            if "title" in request:
                row.title = self._title(request["title"]) or row.title
            if "hide_code" in request:
                if not isinstance(request["hide_code"], bool):
                    raise LinkError("hide_code must be true or false")
                rerender = row.kind == "report" and row.hide_code != request["hide_code"]
                row.hide_code = request["hide_code"]
            kind, server = row.kind, row.server
        self.forget(link_id)
        if kind == "dashboard" and access is not None:
            await self._delete_shares(owner, server)
        if rerender:
            return await self.republish(link_id, owner)
        return self.get_owned(link_id, owner)

    async def revoke(self, link_id: str, owner: str) -> dict[str, Any]:
        with self.db.session() as session:
            row = self._owned_row(session, link_id, owner)
            if row.revoked_at is None:
                row.revoked_at = self.clock()
            detached = row
        self.forget(link_id)
        if detached.kind == "dashboard":
            await self._stop_dashboard(detached, remove=True)
        log.info("%s revoked %s", owner, link_id[:6])
        return self.get_owned(link_id, owner)

    async def expire_due(self) -> int:
        """End access of links that expired: a dashboard's shares go and its server stops.
        Reports need nothing (each view checks the time). Run on the service's schedule."""
        now = self.clock()
        ended = 0
        with self.db.session() as session:
            rows = session.query(ShareLink).filter(ShareLink.kind == "dashboard", ShareLink.revoked_at.is_(None),
                                                   ShareLink.expires_at.is_not(None)).all()
            due = [row for row in rows if row.state(now) == "expired" and row.server]
        for row in due:
            await self._stop_dashboard(row, remove=True)
            with self.db.session() as session:
                found = session.get(ShareLink, row.id)
                if found is not None:
                    found.server = ""  # done: the server and its shares are gone
            self.forget(row.id)
            ended += 1
        return ended

    # ---- viewing ----------------------------------------------------------------------------

    def needs_login(self, link_id: str) -> bool:
        found = self.snapshot(link_id)
        return found is None or needs_login(found.access, self.config.public_links)

    async def open(self, link_id: str, kind: str, viewer: Viewer,
                   groups_of: Callable[[str], Any]) -> Opened:
        """Check the viewer against the link; count the view. Raises LinkNotFound, PermissionError
        (not allowed: 403) or LinkGone (revoked or expired: 410)."""
        found = self.snapshot(link_id)
        if found is None or found.kind != kind:
            raise LinkNotFound(link_id)
        state = found.state(self.clock())
        if state != "active":
            raise LinkGone(f"this link was {state}" + (" by its owner" if state == "revoked" else ""))
        access, owner, version, server = found.access, found.owner, found.version, found.server
        if not may_view(owner, access, viewer, self.config.public_links) and viewer.name and access.groups:
            viewer = Viewer(viewer.name, frozenset(await groups_of(viewer.name)), viewer.admin)
        if not may_view(owner, access, viewer, self.config.public_links):
            raise PermissionError(f"{owner} has not shared this link with you")
        self._pending_views[link_id] += 1
        if kind == "report":
            html = self.store.read(link_id, version)
            if html is None:
                raise LinkGone("this report's page is missing from storage; ask its owner to publish it again")
            return Opened(link_id, kind, html=html)
        stub = ShareLink(id=link_id, owner=owner, server=server, profile=found.profile, image=found.image,
                         app=found.app, path=found.path, kind=kind)
        if not await self._server_ready(owner, server):
            await self._start_dashboard(stub)
            if not await self._wait_server(owner, server, ready=True, within=120):
                raise LinkGone("the dashboard did not start in time; ask its owner to look at it")
        if viewer.name and viewer.name != owner:
            status, body = await self.hub.request("POST", self._shares_path(owner, server), {"user": viewer.name})
            if status != 200:
                raise RuntimeError(f"the hub refused to share the dashboard ({status}: {self._message(body)})")
        return Opened(link_id, kind, redirect=f"{self.config.hub_base}user/{quote(owner)}/{quote(server)}/")

    # ---- internals --------------------------------------------------------------------------

    @staticmethod
    def _title(value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > 200:
            raise LinkError("title must be text of at most 200 characters")
        return value.strip()

    def _home(self, owner: str) -> Path:
        try:
            return self.home_of(owner)
        except LookupError as error:
            raise LinkError(str(error)) from None

    def _check_in_home(self, owner: str, relative: str) -> None:
        open_in_home(self._home(owner), relative, self.config.max_notebook_bytes)

    async def _render(self, owner: str, relative: str, hide_code: bool) -> Any:
        data = open_in_home(self._home(owner), relative, self.config.max_notebook_bytes)
        async with self._render_lock:
            return await asyncio.to_thread(render_report, data, name=relative, hide_code=hide_code,
                                           static_url=self.config.static_url)

    def _add_version(self, session: Any, row: ShareLink, rendered: Any) -> None:
        row.version = (row.version or 0) + 1
        self.store.write(row.id, row.version, rendered.html)
        session.add(ReportVersion(link_id=row.id, version=row.version, size=len(rendered.html),
                                  render_seconds=rendered.seconds, sha256=rendered.sha256))
        old = [v for v in row.versions if v.version <= row.version - self.config.versions_kept]
        for version in old:
            row.versions.remove(version)
        self.store.delete_versions(row.id, [v.version for v in old])

    @staticmethod
    def _shares_path(owner: str, server: str) -> str:
        return f"/shares/{quote(owner, safe='')}/{quote(server, safe='')}"

    @staticmethod
    def _message(body: Any) -> str:
        return str(body.get("message", ""))[:300] if isinstance(body, dict) else ""

    async def _server_model(self, owner: str, server: str) -> dict[str, Any]:
        """The hub's model of the owner's server ({} when there is none or the hub says no)."""
        status, body = await self.hub.request("GET", f"/users/{quote(owner, safe='')}")
        if status != 200 or not isinstance(body, dict):
            return {}
        return dict((body.get("servers") or {}).get(server) or {})

    async def _server_ready(self, owner: str, server: str) -> bool:
        return bool((await self._server_model(owner, server)).get("ready"))

    async def _start_dashboard(self, row: ShareLink) -> None:
        options: dict[str, Any] = {"dashboard": {"app": row.app, "path": row.path}}
        if row.profile:
            options["profile"] = row.profile
        if row.image:
            options["image"] = row.image
        path = f"/users/{quote(row.owner, safe='')}/servers/{quote(row.server, safe='')}"
        status, body = await self.hub.request("POST", path, options)
        if status in (201, 202):
            return
        if status == 400 and "already running" in self._message(body).lower():
            return
        if status in (400, 409):
            raise LinkError(f"the dashboard server could not start: {self._message(body) or status}")
        raise RuntimeError(f"the hub answered {status} when starting the dashboard: {self._message(body)}")

    async def _delete_shares(self, owner: str, server: str) -> None:
        if not server:
            return
        status, body = await self.hub.request("DELETE", self._shares_path(owner, server))
        if status not in (200, 204, 404):
            raise RuntimeError(f"the hub did not remove the shares ({status}: {self._message(body)})")

    async def _stop_dashboard(self, row: ShareLink, remove: bool) -> None:
        await self._delete_shares(row.owner, row.server)
        if not row.server:
            return
        path = f"/users/{quote(row.owner, safe='')}/servers/{quote(row.server, safe='')}"
        status, body = await self.hub.request("DELETE", path, {"remove": True} if remove else None)
        if status not in (202, 204, 404, 400):
            log.warning("Stopping dashboard server %s/%s: %s %s", row.owner, row.server, status,
                        self._message(body))
        if not remove:
            await self._wait_server(row.owner, row.server, ready=False, within=60)

    async def _wait_server(self, owner: str, server: str, ready: bool, within: float) -> bool:
        """Wait until the server is ready (``ready``) or neither ready nor pending; False on timeout."""
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            model = await self._server_model(owner, server)
            if ready and model.get("ready"):
                return True
            if not ready and not (model.get("ready") or model.get("pending")):
                return True
            await asyncio.sleep(0.5)
        return False


@dataclass(frozen=True)
class _Snapshot:
    id: str
    owner: str
    kind: str
    access: Access
    expires_at: datetime | None
    revoked: bool
    version: int
    server: str
    profile: str
    image: str
    app: str
    path: str

    def state(self, now: datetime) -> str:
        return link_state(self.revoked, self.expires_at, now)


class LinkGone(Exception):
    """The link was revoked or has expired (HTTP 410)."""


__all__ = ["Access", "LinkError", "LinkGone", "LinkNotFound", "NotOwner", "Opened", "ShareManager",
           "SharingConfig", "Viewer", "dashboard_server_name"]
