"""The service's own database (sqlalchemy 2): autosave settings and per-repository status.

sqlite in the state directory by default; any sqlalchemy URL works (PostgreSQL in production). Its
schema comes from the alembic revisions in service/migrations/, run when the service starts.
No credential is ever stored here: tokens are fetched from the hub when a push needs one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, sessionmaker

from core.timeutil import UTCDateTime, utcnow
from service import migrations
from service.base import Base

DEFAULT_INTERVAL = 600


class AutosaveUser(Base):
    """One user's autosave settings."""

    __tablename__ = "autosave_users"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    interval: Mapped[int] = mapped_column(Integer, default=DEFAULT_INTERVAL)  # seconds
    strip_outputs: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa.false())
    updated: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow, onupdate=utcnow)
    repos: Mapped[list[AutosaveRepo]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                     order_by="AutosaveRepo.id")


class AutosaveRepo(Base):
    """A repository in a user's home that is autosaved, and what happened to it last."""

    __tablename__ = "autosave_repos"
    __table_args__ = (UniqueConstraint("user_name", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("autosave_users.name", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))  # relative to the home directory
    remote: Mapped[str] = mapped_column(String(255), default="origin")
    # status
    state: Mapped[str] = mapped_column(String(32), default="waiting")
    message: Mapped[str] = mapped_column(Text, default="")
    branch: Mapped[str | None] = mapped_column(String(255), nullable=True)  # local autosave branch
    push_branch: Mapped[str | None] = mapped_column(String(255), nullable=True)  # remote branch, after a rejection
    last_pass: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    last_snapshot: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    last_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_push: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)
    last_pushed_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_pushed_branch: Mapped[str | None] = mapped_column(String(255), nullable=True)
    left_out: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[AutosaveUser] = relationship(back_populates="repos")

    def status(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            if value is None:
                return None
            return value.isoformat()

        return {
            "id": self.id, "path": self.path, "remote": self.remote, "state": self.state,
            "message": self.message, "branch": self.branch, "push_branch": self.push_branch or self.branch,
            "last_pass": iso(self.last_pass), "last_snapshot": iso(self.last_snapshot),
            "last_commit": self.last_commit, "last_push": iso(self.last_push),
            "last_pushed_commit": self.last_pushed_commit, "last_pushed_branch": self.last_pushed_branch,
            "left_out": list(self.left_out or []), "error": self.error,
        }


class CloneRepo(Base):
    """A repository cloned into a user's home when a server starts: from the user's settings
    (``source`` "settings") or from a server's profile ("profile <slug>"), and how the last try went."""

    __tablename__ = "clone_repos"
    __table_args__ = (UniqueConstraint("user_name", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(255), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    path: Mapped[str] = mapped_column(String(1024))  # relative to the home directory
    source: Mapped[str] = mapped_column(String(255), default="settings")
    state: Mapped[str] = mapped_column(String(32), default="waiting")  # cloned, present, error, sign in again
    message: Mapped[str] = mapped_column(Text, default="")
    last_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), nullable=True)

    def status(self) -> dict[str, Any]:
        attempt = self.last_attempt
        return {"url": self.url, "path": self.path, "source": self.source, "state": self.state,
                "message": self.message, "last_attempt": attempt.isoformat() if attempt else None}


class Database:
    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False}
        self.engine = create_engine(url, **kwargs)
        migrations.upgrade(self.engine)  # alembic: service/migrations/
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session
