"""The usage tables, in the service's own database (``service.base.Base``; made by its migrations).

One row per server run, keyed on (user, server, ``started``) as the hub reports it: a server that
runs across a restart of the service is the same row, never counted twice. One row per Dask
container (scheduler or worker), keyed on the container id, with the cores and memory it was given.
Times are UTC (stored without a zone; read back aware, core.timeutil.UTCDateTime).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.timeutil import UTCDateTime
from service.base import Base


class ServerSession(Base):
    """A server's run: from the hub's ``started`` to when it was seen gone (``stopped``)."""

    __tablename__ = "usage_server_sessions"
    __table_args__ = (UniqueConstraint("user_name", "server_name", "started"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255))  # "" is the default server
    profile: Mapped[str] = mapped_column(String(64))
    started: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)


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
    started: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
