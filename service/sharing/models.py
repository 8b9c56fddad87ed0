"""The share-link tables, in the service's own database (service.base.Base)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.timeutil import UTCDateTime, utcnow
from service.base import Base

MODES = ("users", "team", "public")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def link_state(revoked: bool, expires_at: datetime | None, now: datetime) -> str:
    """active, revoked or expired."""
    if revoked:
        return "revoked"
    return "expired" if expires_at is not None and expires_at <= now else "active"


class ShareLink(Base):
    """One published notebook and who may open it."""

    __tablename__ = "share_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # secrets.token_urlsafe(24): 192 bits
    owner: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # report | dashboard
    title: Mapped[str] = mapped_column(String(255), default="")
    path: Mapped[str] = mapped_column(String(1024))  # the notebook, relative to the owner's home
    hide_code: Mapped[bool] = mapped_column(Boolean, default=False)
    app: Mapped[str] = mapped_column(String(16), default="")  # dashboards: voila | panel
    profile: Mapped[str] = mapped_column(String(255), default="")  # dashboards: the profile they run with
    image: Mapped[str] = mapped_column(String(255), default="")  # dashboards: the profile's image choice
    server: Mapped[str] = mapped_column(String(255), default="")  # dashboards: the owner's named server
    mode: Mapped[str] = mapped_column(String(16), default="users")  # users | team | public
    users: Mapped[list[str]] = mapped_column(JSON, default=list)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow, onupdate=utcnow)
    views: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)  # reports: the version served
    versions: Mapped[list[ReportVersion]] = relationship(back_populates="link", cascade="all, delete-orphan",
                                                         order_by="ReportVersion.version")

    def state(self, now: datetime) -> str:
        return link_state(self.revoked_at is not None, self.expires_at, now)

    def model(self, prefix: str, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id, "owner": self.owner, "kind": self.kind, "title": self.title, "path": self.path,
            "hide_code": self.hide_code, "app": self.app or None, "profile": self.profile or None,
            "image": self.image or None,
            "server": self.server or None,
            "access": {"mode": self.mode, "users": list(self.users or []), "groups": list(self.groups or [])},
            "expires_at": iso(self.expires_at), "revoked_at": iso(self.revoked_at), "state": self.state(now),
            "created": iso(self.created), "updated": iso(self.updated), "views": self.views,
            "version": self.version or None,
            "versions": [v.model() for v in self.versions] if self.kind == "report" else [],
            "url": f"{prefix}{'r' if self.kind == 'report' else 'd'}/{self.id}",
        }


class ReportVersion(Base):
    """One rendering of a report; republishing adds a version and the link serves the newest."""

    __tablename__ = "report_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[str] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    size: Mapped[int] = mapped_column(Integer, default=0)
    render_seconds: Mapped[float] = mapped_column(default=0.0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    link: Mapped[ShareLink] = relationship(back_populates="versions")

    def model(self) -> dict[str, Any]:
        return {"version": self.version, "created": iso(self.created), "size": self.size,
                "render_seconds": round(self.render_seconds, 3)}
