"""Share links as records: creating, changing, revoking and listing them, and the in-memory
snapshot viewers are checked against. Who may open a link is decided in ``access``.

Views read a snapshot of the link from memory (the service is the only writer; every change here
drops it) and counts go to the database in batches: a popular report costs no database write per view.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.db import Database
from service.sharing.access import Access, Viewer, access_of, listed_for, parse_access, parse_expiry
from service.sharing.errors import Forbidden, Invalid, NotFound
from service.sharing.models import ShareLink, link_state

MAX_SNAPSHOTS = 10000


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
class Snapshot:
    """A link as viewers need it."""

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


@dataclass(frozen=True)
class Change:
    """What ``Links.change`` did, for the reports and dashboards to follow up."""

    kind: str
    server: str
    access_changed: bool
    rerender: bool


def _title(value: str | None) -> str:
    return (value or "").strip()


class Links:
    def __init__(self, config: SharingConfig, db: Database, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self._snapshots: dict[str, Snapshot] = {}
        self._pending_views: Counter[str] = Counter()

    # ---- reading ----------------------------------------------------------------------------

    def model(self, row: ShareLink) -> dict[str, Any]:
        model = row.model(self.config.prefix, self.clock())
        model["views"] += self._pending_views.get(row.id, 0)
        if row.kind == "dashboard" and row.mode == "public" and self.config.public_dashboard_url:
            model["public_url"] = f"{self.config.public_dashboard_url.rstrip('/')}/d/{row.id}"
        return model

    def snapshot(self, link_id: str) -> Snapshot | None:
        """The link as viewers need it, from memory; None for an unknown id (not remembered)."""
        found = self._snapshots.get(link_id)
        if found is not None:
            return found
        with self.db.session() as session:
            row = session.get(ShareLink, link_id)
            if row is None:
                return None
            found = Snapshot(row.id, row.owner, row.kind, access_of(row), row.expires_at,
                             row.revoked_at is not None, row.version, row.server, row.profile, row.image, row.app,
                             row.path)
        if len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.clear()
        self._snapshots[link_id] = found
        return found

    def forget(self, link_id: str) -> None:
        self._snapshots.pop(link_id, None)

    def public_dashboard(self, owner: str, server: str) -> Snapshot | None:
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

    def count_view(self, link_id: str) -> None:
        self._pending_views[link_id] += 1

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
            return self.model(self.owned_row(session, link_id, owner))

    @staticmethod
    def owned_row(session: Session, link_id: str, owner: str) -> ShareLink:
        row = session.get(ShareLink, link_id)
        if row is None:
            raise NotFound()
        if row.owner != owner:
            raise Forbidden("only the owner can see or change this link")
        return row

    def active_owned_row(self, session: Session, link_id: str, owner: str) -> ShareLink:
        row = self.owned_row(session, link_id, owner)
        state = row.state(self.clock())
        if state != "active":
            raise Invalid(f"this link is {state}; publish a new one")
        return row

    def shared_with(self, viewer: Viewer) -> list[dict[str, Any]]:
        now = self.clock()
        with self.db.session() as session:
            rows = session.query(ShareLink).filter(ShareLink.owner != viewer.name,
                                                   ShareLink.revoked_at.is_(None)).all()
            return [self.model(r) for r in rows
                    if r.state(now) == "active" and listed_for(viewer, r.owner, access_of(r))]

    # ---- writing ----------------------------------------------------------------------------

    def new_row(self, owner: str, request: dict[str, Any]) -> ShareLink:
        """An unsaved link from a publish request (its shape already checked against the schema):
        access, expiry, title and hide_code; the reports or dashboards fill in the rest."""
        access = parse_access(request.get("access"), self.config.public_links)
        expires = parse_expiry(request.get("expires_at"), self.clock())
        return ShareLink(id=secrets.token_urlsafe(24), owner=owner, kind=request.get("kind", "report"),
                         title=_title(request.get("title")), hide_code=bool(request.get("hide_code", False)),
                         mode=access.mode, users=list(access.users), groups=list(access.groups),
                         expires_at=expires, views=0, version=0)

    def add(self, row: ShareLink) -> None:
        with self.db.session() as session:
            session.add(row)

    def change(self, link_id: str, owner: str, request: dict[str, Any],
               check_access: Callable[[ShareLink, Access], None]) -> Change:
        """Apply an update request (access, expiry, title, hide_code) to an active link;
        ``check_access`` may refuse the new access for this kind of link."""
        access = parse_access(request["access"], self.config.public_links) if "access" in request else None
        expires = parse_expiry(request["expires_at"], self.clock()) if "expires_at" in request else None
        rerender = False
        with self.db.session() as session:
            row = self.active_owned_row(session, link_id, owner)
            if access is not None:
                check_access(row, access)
                row.mode, row.users, row.groups = access.mode, list(access.users), list(access.groups)
            if "expires_at" in request:
                row.expires_at = expires
            if "title" in request:
                row.title = _title(request["title"]) or row.title
            if "hide_code" in request:
                rerender = row.kind == "report" and row.hide_code != request["hide_code"]
                row.hide_code = request["hide_code"]
            change = Change(row.kind, row.server, access is not None, rerender)
        self.forget(link_id)
        return change

    def revoke(self, link_id: str, owner: str) -> ShareLink:
        """Mark the link revoked (once); the detached row, for the dashboards to stop its server."""
        with self.db.session() as session:
            row = self.owned_row(session, link_id, owner)
            if row.revoked_at is None:
                row.revoked_at = self.clock()
            detached = row
        self.forget(link_id)
        return detached

    def expired_dashboards(self) -> list[ShareLink]:
        """Dashboard links that expired and still have a server (detached rows)."""
        now = self.clock()
        with self.db.session() as session:
            rows = session.query(ShareLink).filter(ShareLink.kind == "dashboard", ShareLink.revoked_at.is_(None),
                                                   ShareLink.expires_at.is_not(None)).all()
            return [row for row in rows if row.state(now) == "expired" and row.server]

    def server_gone(self, link_id: str) -> None:
        """The link's dashboard server and its shares are gone: nothing left to sweep."""
        with self.db.session() as session:
            found = session.get(ShareLink, link_id)
            if found is not None:
                found.server = ""
        self.forget(link_id)
