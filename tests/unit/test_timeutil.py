"""core.timeutil: aware UTC in, aware UTC out, the stored values those of a plain DateTime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, select, text

from core.timeutil import UTCDateTime, as_utc, utcnow

MOMENT = datetime(2026, 12, 4, 11, 30, 1, 123456, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


def test_as_utc_takes_naive_times_as_utc_and_converts_the_others() -> None:
    assert as_utc(MOMENT.replace(tzinfo=None)) == MOMENT
    assert as_utc(MOMENT.astimezone(PARIS)).tzinfo is UTC
    assert as_utc(MOMENT.astimezone(PARIS)).hour == 11
    assert utcnow().tzinfo is UTC


@pytest.mark.parametrize("zoned", [False, True])
def test_the_column_stores_what_a_plain_datetime_stored_and_reads_back_aware_utc(zoned: bool) -> None:
    engine = create_engine("sqlite://")
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True),
                  Column("new", UTCDateTime(timezone=zoned)), Column("old", DateTime(timezone=zoned)))
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, new=MOMENT.astimezone(PARIS),
                                                 old=MOMENT if zoned else MOMENT.replace(tzinfo=None)))
        connection.execute(table.insert().values(id=2, new=MOMENT.replace(tzinfo=None), old=None))
        stored = connection.execute(text("SELECT new, old FROM t WHERE id = 1")).one()
        assert stored[0] == stored[1] == "2026-12-04 11:30:01.123456"
        assert connection.execute(select(table.c.new).order_by(table.c.id)).scalars().all() == [MOMENT, MOMENT]
        assert connection.execute(select(table.c.new).where(table.c.id == 1)).scalar_one().tzinfo is UTC
        assert connection.execute(select(table.c.id).where(table.c.new == MOMENT.astimezone(PARIS))).scalars().all() \
            == [1, 2]
