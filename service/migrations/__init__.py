"""The service database's migrations (alembic): ``upgrade`` runs at every start of the service.

A new database gets every revision; a database made before migrations (tables, no
``alembic_version``) gets r0001, which only fills in what such a database may lack, and is stamped
with it; then later revisions run. A schema change is a new file in ``versions/`` (``r0002_....py``,
``down_revision = "r0001"``); ``tests/unit/test_service_migrations.py`` checks that the revisions
build exactly the ORM's tables. A first draft, against a database at the head revision::

    from alembic import command
    from service.migrations import alembic_config
    command.revision(alembic_config(url="sqlite:///state/service/titan-service.sqlite"), "what changes",
                     autogenerate=True, rev_id="r0002")
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

log = logging.getLogger("titan.service.db")

DIRECTORY = Path(__file__).resolve().parent


def alembic_config(connection: sa.Connection | None = None, url: str = "") -> Config:
    """alembic's configuration for this directory, on ``connection`` (or ``url``); no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(DIRECTORY))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest revision (see the module's text)."""
    with engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        tables = set(sa.inspect(connection).get_table_names())
        if before is None and tables:
            log.info("The service's database was made before migrations (%d tables): brought to r0001 and "
                     "stamped, then upgraded", len(tables))
        command.upgrade(alembic_config(connection), "head")
        after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("The service's database: revision %s -> %s", before or "(none)", after)
