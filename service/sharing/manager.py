"""Publishing, changing, revoking and opening share links: the service's side of sharing.

The manager puts the parts together: ``links`` (the records and who may open them), ``reports``
(rendered versions in the service's storage) and ``dashboards`` (the owner's named servers and
their JupyterHub shares). Requests arrive here already checked against the OpenAPI schemas
(``validation``); what the schemas cannot say (names, times in the future, paths inside the home)
is checked on the way in. Refusals are ``errors.SharingError``s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.timeutil import utcnow
from service.db import Database
from service.hub import HubClient
from service.sharing.access import Access, Viewer, may_view, needs_login
from service.sharing.dashboards import Dashboards
from service.sharing.errors import Forbidden, Gone, HubUnavailable, Invalid, NotFound
from service.sharing.links import Links, SharingConfig
from service.sharing.models import ShareLink
from service.sharing.render import clean_relative_path
from service.sharing.reports import Reports
from service.sharing.storage import ReportStore

log = logging.getLogger("titan.sharing")


@dataclass(frozen=True)
class Opened:
    """What a viewer gets: a report page, or where the dashboard is."""

    link_id: str
    kind: str
    html: bytes = b""
    redirect: str = ""




class ShareManager:
    def __init__(self, config: SharingConfig, db: Database, store: ReportStore, hub: HubClient,
                 home_of: Callable[[str], Path], clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.links = Links(config, db, clock)
        self.reports = Reports(config, store, home_of)
        self.dashboards = Dashboards(config, hub)

    def flush_views(self) -> int:
        """Write the views counted since the last flush (the service runs this every few seconds)."""
        return self.links.flush_views()

    # ---- the owner --------------------------------------------------------------------------

    async def publish(self, owner: str, request: dict[str, Any]) -> dict[str, Any]:
        """A new link from ``{"kind", "path", "title", "hide_code", "app", "profile", "image", "access",
        "expires_at"}``; the notebook is rendered (report) or its server started (dashboard)."""
        row = self.links.new_row(owner, request)
        link_id, kind = row.id, row.kind
        if kind == "report":
            row.path = clean_relative_path(request.get("path"))
            rendered = await self.reports.render(owner, row.path, row.hide_code)
            row.title = row.title or rendered.title
            with self.db.session() as session:
                session.add(row)
                self.reports.add_version(session, row, rendered)
        else:
            self.dashboards.fill_in(row, request)
            row.title = row.title or Path(row.path).stem
            self.reports.notebook(owner, row.path)  # there, inside the home, not too big
            await self.dashboards.start(row)
            self.links.add(row)
        log.info("%s published %s %s (%s)", owner, kind, link_id[:6], row.mode)
        return self.links.get_owned(link_id, owner)

    async def republish(self, link_id: str, owner: str) -> dict[str, Any]:
        """Reports: render the notebook again under the same link (older versions kept).
        Dashboards: restart the server, so it runs the notebook as it is now."""
        with self.db.session() as session:
            row = self.links.active_owned_row(session, link_id, owner)
            kind, path, hide_code = row.kind, row.path, row.hide_code
        if kind == "report":
            rendered = await self.reports.render(owner, path, hide_code)
            with self.db.session() as session:
                self.reports.add_version(session, self.links.owned_row(session, link_id, owner), rendered)
            self.links.forget(link_id)
        else:
            with self.db.session() as session:
                detached = self.links.owned_row(session, link_id, owner)
            await self.dashboards.restart(detached)
        return self.links.get_owned(link_id, owner)

    async def update(self, link_id: str, owner: str, request: dict[str, Any]) -> dict[str, Any]:
        """Change access, expiry, title or hide_code. Narrowing a dashboard's access removes its
        shares: viewers still allowed get a new one when they next open the link."""
        def check_access(row: ShareLink, access: Access) -> None:
            if row.kind == "dashboard":
                self.dashboards.check_access(access)

        change = self.links.change(link_id, owner, request, check_access)
        if change.kind == "dashboard" and change.access_changed:
            await self.dashboards.delete_shares(owner, change.server)
        if change.rerender:
            return await self.republish(link_id, owner)
        return self.links.get_owned(link_id, owner)

    async def revoke(self, link_id: str, owner: str) -> dict[str, Any]:
        detached = self.links.revoke(link_id, owner)
        if detached.kind == "dashboard":
            await self.dashboards.stop(detached, remove=True)
        log.info("%s revoked %s", owner, link_id[:6])
        return self.links.get_owned(link_id, owner)

    async def expire_due(self) -> int:
        """End access of links that expired: a dashboard's shares go and its server stops.
        Reports need nothing (each view checks the time). Run on the service's schedule."""
        ended = 0
        for row in self.links.expired_dashboards():
            await self.dashboards.stop(row, remove=True)
            self.links.server_gone(row.id)
            ended += 1
        return ended

    # ---- the viewer -------------------------------------------------------------------------

    def needs_login(self, link_id: str) -> bool:
        found = self.links.snapshot(link_id)
        return found is None or needs_login(found.access, self.config.public_links)

    async def open(self, link_id: str, kind: str, viewer: Viewer,
                   groups_of: Callable[[str], Awaitable[list[str]]]) -> Opened:
        """Check the viewer against the link and count the view; the report's page, or a share of
        the dashboard's server (started if need be). Raises NotFound, Gone, Forbidden, HubUnavailable."""
        found = self.links.snapshot(link_id)
        if found is None or found.kind != kind:
            raise NotFound()
        state = found.state(self.clock())
        if state != "active":
            raise Gone(f"this link was {state}" + (" by its owner" if state == "revoked" else ""))
        owner = found.owner
        public = self.config.public_links
        if not may_view(owner, found.access, viewer, public) and viewer.name and found.access.groups:
            viewer = Viewer(viewer.name, frozenset(await groups_of(viewer.name)), viewer.admin)
        if not may_view(owner, found.access, viewer, public):
            raise Forbidden(f"{owner} has not shared this link with you")
        self.links.count_view(link_id)
        if kind == "report":
            return Opened(link_id, kind, html=self.reports.page(link_id, found.version))
        stub = ShareLink(id=link_id, owner=owner, server=found.server, profile=found.profile, image=found.image,
                         app=found.app, path=found.path, kind=kind)
        try:
            running = await self.dashboards.ensure_running(stub)
        except Invalid as error:  # the owner's dashboard failed, not the viewer's input
            raise HubUnavailable(str(error)) from None
        if not running:
            raise Gone("the dashboard did not start in time; ask its owner to look at it")
        if viewer.name and viewer.name != owner:
            await self.dashboards.share_with(owner, found.server, viewer.name)
        return Opened(link_id, kind, redirect=self.dashboards.url(owner, found.server))


__all__ = ["Opened", "ShareManager", "SharingConfig"]  # SharingConfig lives in links; the service imports it here
