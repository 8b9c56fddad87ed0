"""Usage per day by profile and its charts: runs split at UTC midnights and clipped to the range,
Dask use under its server's profile, every day of the range drawn (zero when nothing ran), the
bars stacked to scale, and the SVG carrying exactly the report's numbers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from service.db import Database
from service.handlers import TEMPLATES
from service.usage import DaskSession, ServerSession, usage_report
from service.usage.chart import PALETTE, bar_chart, nice_top, usage_charts
from service.usage.daily import MAX_DAYS, days_of, hours_by_day
from service.usage.report import NO_SERVER

GIB = 1024**3
NOV = datetime(2026, 11, 1, tzinfo=UTC)


def at(day: int, hour: float) -> datetime:
    return NOV + timedelta(days=day - 1, hours=hour)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'service.sqlite'}")
    with database.session() as session:
        session.add_all([
            ServerSession(user_name="alice", server_name="", profile="quick", started=at(2, 22), last_seen=at(3, 1.5),
                          stopped=at(3, 1.5)),  # 2 h on the 2nd, 1.5 h on the 3rd
            ServerSession(user_name="alice", server_name="big", profile="slow", started=at(5, 10),
                          last_seen=at(5, 13.25), stopped=at(5, 13.25)),
            ServerSession(user_name="bob", server_name="", profile="slow", started=at(4, 9), last_seen=at(4, 9),
                          stopped=None),  # still running
            ServerSession(user_name="bob", server_name="", profile="slow", started=at(20, 0), last_seen=at(20, 5),
                          stopped=at(20, 5)),  # outside the range
        ])
        session.add_all([
            DaskSession(container_id="c1", user_name="alice", cluster="k1", role="worker", server_name="big",
                        cores=2, memory=2 * GIB, started=at(5, 11), last_seen=at(5, 12.5), stopped=at(5, 12.5)),
            DaskSession(container_id="c2", user_name="bob", cluster="k2", role="scheduler", server_name="gone",
                        cores=0.5, memory=GIB, started=at(6, 23), last_seen=at(7, 1), stopped=at(7, 1)),
        ])
    return database


def test_hours_are_split_at_utc_midnights_and_clipped() -> None:
    assert list(hours_by_day(at(2, 22), at(4, 3), at(1, 0), at(8, 0))) == [
        (date(2026, 11, 2), 2.0), (date(2026, 11, 3), 24.0), (date(2026, 11, 4), 3.0)]
    assert list(hours_by_day(at(2, 22), at(4, 3), at(3, 12), at(4, 1))) == [
        (date(2026, 11, 3), 12.0), (date(2026, 11, 4), 1.0)]
    assert list(hours_by_day(at(2, 1), at(2, 2), at(3, 0), at(4, 0))) == []


def test_the_days_of_a_range_include_partial_ones_and_stop_at_a_year() -> None:
    assert days_of(at(1, 0), at(3, 0)) == [date(2026, 11, 1), date(2026, 11, 2)]
    assert days_of(at(1, 6), at(3, 0.5)) == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    assert len(days_of(at(1, 0), at(1 + MAX_DAYS, 0))) == MAX_DAYS
    assert days_of(at(1, 0), at(2 + MAX_DAYS, 0)) == []


def test_a_report_per_day_by_profile_adds_up_to_its_table(db: Database) -> None:
    report = usage_report(db, at(1, 0), at(8, 0), now=at(4, 16.7))
    d = date(2026, 11, 1)
    assert {k: round(v, 6) for k, v in report.server_days.items()} == {
        (d.replace(day=2), "quick"): 2.0, (d.replace(day=3), "quick"): 1.5, (d.replace(day=5), "slow"): 3.25,
        (d.replace(day=4), "slow"): 7.7}
    assert {k: round(v, 6) for k, v in report.dask_days.items()} == {
        (d.replace(day=5), "slow"): 3.0,  # 1.5 h × 2 cores, under the profile of alice's server "big"
        (d.replace(day=6), NO_SERVER): 0.5, (d.replace(day=7), NO_SERVER): 0.5}  # its server is not on record
    for profile in ("quick", "slow"):
        table = sum(row["server_hours"] for row in report.rows() if row["profile"] == profile)
        assert sum(v for (_, p), v in report.server_days.items() if p == profile) == pytest.approx(table)
    assert sum(report.dask_days.values()) == pytest.approx(report.totals()["dask_core_hours"])
    mine = usage_report(db, at(1, 0), at(8, 0), now=at(4, 16.7), user="bob")
    assert {p for _, p in mine.server_days} == {"slow"} and sum(mine.server_days.values()) == pytest.approx(7.7)


def test_a_chart_has_every_day_stacks_its_bars_to_scale_and_numbers_its_axis() -> None:
    days = [date(2026, 11, n) for n in range(1, 31)]
    chart = bar_chart("c", "t", "hours", days, {(days[1], "b"): 3.0, (days[1], "a"): 1.0, (days[4], "b"): 0.5})
    assert [d.day for d in chart.days] == days and [d.total for d in chart.days][:5] == [0.0, 4.0, 0.0, 0.0, 0.5]
    assert chart.top == 5.0 and [label for _, label in chart.ticks] == ["0", "2.5", "5"]
    assert chart.legend == [("a", PALETTE[0]), ("b", PALETTE[1])]
    a, b = chart.days[1].segments
    assert (a.profile, b.profile) == ("a", "b") and b.height == pytest.approx(3 * a.height)
    assert a.y + a.height == pytest.approx(chart.baseline) and b.y + b.height == pytest.approx(a.y)
    assert a.height + b.height == pytest.approx((chart.baseline - chart.plot_top) * 4 / 5)
    assert sum(1 for d in chart.days if d.label) <= 8 and chart.days[0].label == "11-01"
    assert all(chart.plot_left <= d.x and d.x + d.width <= chart.plot_right for d in chart.days)
    assert [nice_top(v) for v in (0, 0.3, 1, 1.2, 2.2, 4.9, 7.7, 1234)] == [1, 0.5, 1, 2, 2.5, 5, 10, 2000]


def test_the_svg_carries_the_reports_numbers_escaped(db: Database) -> None:
    with db.session() as session:
        session.add(ServerSession(user_name="carol", server_name="", profile="<b>x</b>", started=at(1, 0),
                                  last_seen=at(1, 1), stopped=at(1, 1)))
    report = usage_report(db, at(1, 0), at(8, 0), now=at(8, 0))
    server_chart, dask_chart = usage_charts(report)
    assert dict(dask_chart.legend)["slow"] == dict(server_chart.legend)["slow"]  # one colour per profile
    html = TEMPLATES.get_template("_usage_chart.html").render(charts=usage_charts(report), report=report)
    server = html[html.index('id="titan-chart-server"'):html.index('id="titan-chart-dask"')]
    days = re.findall(r'data-day="([\d-]+)" data-total="([\d.]+)"', server)
    assert [day for day, _ in days] == [f"2026-11-0{n}" for n in range(1, 8)]
    assert sum(float(total) for _, total in days) == pytest.approx(report.totals()["server_hours"], abs=1e-5)
    bars = re.findall(r'data-profile="([^"]*)" data-value="([\d.]+)"', server)
    assert ("&lt;b&gt;x&lt;/b&gt;", "1.000000") in bars and "<b>x" not in html
    dask = html[html.index('id="titan-chart-dask"'):]
    assert re.findall(r'data-day="([\d-]+)" data-total="0.000000"', dask) == [
        f"2026-11-0{n}" for n in range(1, 5)]  # days with no Dask use are there, at zero
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org", "")
    long = usage_report(db, at(1, 0), at(1, 0) + timedelta(days=MAX_DAYS + 1), now=at(8, 0))
    text = TEMPLATES.get_template("_usage_chart.html").render(charts=usage_charts(long), report=long, max_days=366)
    assert "titan-chart" not in text and "at most 366 days" in text
