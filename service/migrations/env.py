"""alembic's environment for the service's database: run on the connection the service hands over
(``service.migrations.upgrade``), else on ``sqlalchemy.url`` (the ``alembic`` command)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

import service.sharing.models  # noqa: F401  (every table on Base.metadata, for autogenerate)
import service.usage.models  # noqa: F401
from service.base import Base

target_metadata = Base.metadata


def run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")  # sqlite: ALTER through copies
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        run(connection)
