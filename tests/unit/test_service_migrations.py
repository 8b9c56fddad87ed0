"""The service database's migrations (alembic, service/migrations/): a new database built from the
revisions is exactly the ORM's tables, and a database made before migrations (by ``create_all``, as
the service did until r0001, with or without the later ``strip_outputs`` column) is brought to the
head revision with every row kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import service.sharing.models
import service.usage.models
from service import migrations
from service.base import Base
from service.db import AutosaveRepo, AutosaveUser, CloneRepo, Database

assert service.sharing.models and service.usage.models  # every table on Base.metadata

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def test_a_new_database_is_built_by_the_migrations_as_the_orm_declares_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert migrations.current(db.engine) == migrations.head() == "r0002"
    assert differences(db.engine) == []
    tables = set(sa.inspect(db.engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    Database(f"sqlite:///{tmp_path / 'new.sqlite'}")  # a second start changes nothing
    assert migrations.current(db.engine) == migrations.head() == "r0002"


def rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {name: sorted(tuple(row) for row in connection.execute(sa.select(table)))
                for name, table in Base.metadata.tables.items()}


def fill(engine: sa.Engine) -> None:
    """Rows in every table, as the service of that time wrote them."""
    from service.sharing.models import ReportVersion, ShareLink
    from service.usage.models import DaskSession, ServerSession

    with sa.orm.Session(engine) as session, session.begin():
        session.add(AutosaveUser(name="alice", enabled=True, interval=900, updated=T0,
                                 repos=[AutosaveRepo(path="project", left_out=[], last_commit="abc")]))
        session.add(CloneRepo(user_name="alice", url="https://github.com/o/course", path="course", state="cloned"))
        session.add(ShareLink(id="L" * 32, owner="alice", kind="report", path="a.ipynb", users=["bob"], groups=[],
                              versions=[ReportVersion(version=1, size=10, render_seconds=0.5, sha256="0" * 64,
                                                      created=T0)]))
        session.add(ServerSession(user_name="alice", server_name="", profile="small", started=T0.replace(tzinfo=None),
                                  last_seen=T0.replace(tzinfo=None)))
        session.add(DaskSession(container_id="c1", user_name="alice", cluster="k", role="worker", cores=2.0,
                                memory=2**30, started=T0.replace(tzinfo=None), last_seen=T0.replace(tzinfo=None)))


def test_a_database_made_before_migrations_is_stamped_and_keeps_every_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)  # what Database() did before r0001
    fill(engine)
    before = rows(engine)
    assert all(before.values())
    assert migrations.current(engine) is None

    db = Database(url)
    assert migrations.current(db.engine) == migrations.head() == "r0002"
    assert rows(db.engine) == before
    assert differences(db.engine) == []
    with db.session() as session:
        assert session.get(AutosaveUser, "alice").repos[0].last_commit == "abc"  # type: ignore[union-attr]


def test_a_database_from_before_output_stripping_gets_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'older.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE autosave_users (name VARCHAR(255) NOT NULL PRIMARY KEY, "
                                   "enabled BOOLEAN NOT NULL, interval INTEGER NOT NULL, updated DATETIME NOT NULL)"))
        connection.execute(sa.text("INSERT INTO autosave_users VALUES ('bob', 1, 600, '2026-01-01 00:00:00')"))
    Base.metadata.create_all(engine, tables=[t for n, t in Base.metadata.tables.items() if n != "autosave_users"])

    db = Database(url)
    assert migrations.current(db.engine) == migrations.head() == "r0002"
    with db.session() as session:
        bob = session.get(AutosaveUser, "bob")
        assert bob is not None and bob.interval == 600 and bob.strip_outputs is False
    assert differences(db.engine) == []


def test_r0002_drops_the_unused_report_note_and_keeps_every_version(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'r0001.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        command.upgrade(migrations.alembic_config(connection), "r0001")
        columns = {c["name"]: c for c in sa.inspect(connection).get_columns("share_links")}
        link: dict[str, Any] = {name: ("" if not column["nullable"] else None) for name, column in columns.items()}
        link.update({"id": "L1", "owner": "alice", "kind": "report", "mode": "team", "version": 1, "views": 0,
                     "created": T0.replace(tzinfo=None)})
        for name, column in columns.items():  # any other NOT NULL column of r0001: a value of its type
            if link[name] == "" and isinstance(column["type"], (sa.Integer, sa.Float, sa.Boolean)):
                link[name] = 0
            elif link[name] == "" and isinstance(column["type"], sa.DateTime):
                link[name] = T0.replace(tzinfo=None)
        connection.execute(sa.table("share_links", *(sa.column(n) for n in link)).insert().values(**link))
        connection.execute(sa.text(
            "INSERT INTO report_versions (link_id, version, created, size, render_seconds, sha256, note) "
            "VALUES ('L1', 1, '2026-12-01 09:00:00', 42, 0.5, 'ab12', '')"))
    assert migrations.current(engine) == "r0001"

    db = Database(url)
    assert migrations.current(db.engine) == "r0002"
    assert "note" not in {c["name"] for c in sa.inspect(db.engine).get_columns("report_versions")}
    with db.engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT link_id, version, size, sha256 FROM report_versions")).all()
    assert [tuple(row) for row in kept] == [("L1", 1, 42, "ab12")]
    assert differences(db.engine) == []
