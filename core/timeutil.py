"""Time in UTC, one way everywhere: aware datetimes in code, a column type that stores them as
before and hands them back aware (sqlite returns naive datetimes, PostgreSQL aware ones)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC time; a naive one is taken to be UTC already (as stored)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime`` column that takes and returns aware UTC datetimes.

    ``UTCDateTime()`` is a ``DateTime`` column (no zone) holding naive UTC; ``UTCDateTime(timezone=True)``
    is a ``DateTime(timezone=True)`` one (sqlite keeps the UTC wall time, PostgreSQL a timestamptz).
    The DDL and the stored values are those of the plain ``DateTime`` of the same ``timezone``: no
    migration. Naive values written are taken to be UTC."""

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = False) -> None:
        super().__init__(timezone=timezone)
        self.timezone = timezone

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value if self.timezone else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)
