"""The declarative base of the service's own database: every table (autosave, sharing, usage)
derives from it, and ``service.db.Database`` creates them all."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
