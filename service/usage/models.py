"""The usage tables, in the service's own database (``service.db.Base``; made by its migrations).

One row per server run, keyed on (user, server, ``started``) as the hub reports it: a server that
runs across a restart of the service is the same row, never counted twice. One row per Dask
container (scheduler or worker), keyed on the container id, with the cores and memory it was given.
Times are UTC (stored without a zone; read back as UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base


def as_utc(value: datetime) -> datetime:
    """A stored time (naive UTC) as an aware one."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_db(value: datetime) -> datetime:
    """An aware time → naive UTC, as stored (so equality holds across databases)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class ServerSession(Base):
    """A server's run: from the hub's ``started`` to when it was seen gone (``stopped``)."""

    __tablename__ = "usage_server_sessions"
    __table_args__ = (UniqueConstraint("user_name", "server_name", "started"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255))  # "" is the default server
    profile: Mapped[str] = mapped_column(String(64))
    started: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    stopped: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)


class DaskSession(Base):
    """A Dask container's run (scheduler or worker), with the cores and memory it was given."""

    __tablename__ = "usage_dask_containers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    container_id: Mapped[str] = mapped_column(String(128), unique=True)
    user_name: Mapped[str] = mapped_column(String(255), index=True)
    cluster: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))  # scheduler or worker
    server_name: Mapped[str] = mapped_column(String(255), default="")  # the server the cluster came from
    cores: Mapped[float] = mapped_column(Float)
    memory: Mapped[int] = mapped_column(BigInteger)  # bytes
    started: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    stopped: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
