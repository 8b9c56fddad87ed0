"""The usage pages' charts in headless Chromium against a real hub and the real service: server
hours and Dask core-hours per day by profile, read back from the SVG the page drew and compared
with the page's own table and with the records put in the service's database. Each user sees only
their own; the admin page everyone's; a non-admin is refused it; a bad range is a 400 that says why.
Screenshots at 1280 px and 375 px in ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from service.usage import DaskSession, ServerSession
from tests.helpers import wait_for
from tests.integration.browser import chromium, dev_login
from tests.integration.hub import Hub, running_hub
from tests.integration.pagecheck import WIDTHS, overflow, screenshot, set_width

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

ADMIN = "chartadmin"
GIB = 1024**3
RANGE = "start=2026-11-01&end=2026-11-07"
NOV = datetime(2026, 11, 1, tzinfo=UTC)
ALICE_SERVER = [0, 2.0, 1.5, 0, 3.25, 0, 0]  # hours per day, 1 to 7 November
ALICE_DASK = [0, 0, 0, 0, 3.0, 0, 0]  # core-hours per day
BOB_SERVER = [0, 0, 0, 7.7, 0, 0, 0]
BOB_DASK = [0, 0, 0, 2.5, 0, 0, 0]
READ_CHARTS = """
const chart = id => [...document.querySelectorAll('#' + id + ' g.titan-day')].map(g => ({
  day: g.dataset.day, total: parseFloat(g.dataset.total), title: g.querySelector('title').textContent,
  bars: [...g.querySelectorAll('rect.titan-bar')].map(r => ({profile: r.dataset.profile,
    value: parseFloat(r.dataset.value), title: r.querySelector('title').textContent,
    height: r.getBoundingClientRect().height}))}));
const head = [...document.querySelectorAll('#titan-usage thead th')].map(th => th.textContent.trim());
const rows = [...document.querySelectorAll('#titan-usage tbody tr')].map(tr =>
  Object.fromEntries([...tr.children].map((td, i) => [head[i], td.textContent.trim()])));
return {server: chart('titan-chart-server'), dask: chart('titan-chart-dask'), rows: rows};
"""


def at(day: int, hour: float) -> datetime:
    return NOV + timedelta(days=day - 1, hours=hour)


def seed(hub: Hub) -> None:
    """Past runs, as the recorder would have written them, in the service's own database."""
    path = hub.root / "state" / "service" / "titan-service.sqlite"
    wait_for(path.exists, 60, "the service's database")
    engine = create_engine(f"sqlite:///{path}")
    with Session(engine) as session, session.begin():
        session.add_all([
            ServerSession(user_name="alice", server_name="", profile="quick", started=at(2, 22), last_seen=at(3, 1.5),
                          stopped=at(3, 1.5)),
            ServerSession(user_name="alice", server_name="big", profile="slow", started=at(5, 10),
                          last_seen=at(5, 13.25), stopped=at(5, 13.25)),
            ServerSession(user_name="bob", server_name="", profile="slow", started=at(4, 9), last_seen=at(4, 16.7),
                          stopped=at(4, 16.7)),
            DaskSession(container_id="chart-a", user_name="alice", cluster="k1", role="worker", server_name="big",
                        cores=2, memory=2 * GIB, started=at(5, 11), last_seen=at(5, 12.5), stopped=at(5, 12.5)),
            DaskSession(container_id="chart-b", user_name="bob", cluster="k2", role="worker", server_name="",
                        cores=0.5, memory=GIB, started=at(4, 10), last_seen=at(4, 15), stopped=at(4, 15)),
        ])
    engine.dispose()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("charts"), {"hub": {"admin_users": [ADMIN]}}) as running:
        for user in ("alice", "bob", ADMIN):
            running.admin.create_user(user)
        seed(running)
        yield running


@pytest.fixture(scope="module")
def driver(hub: Hub) -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def page(hub: Hub, driver: Any, path: str, name: str) -> dict[str, Any]:
    """The page at each width: what its charts and table say, after checking it fits."""
    seen: dict[str, dict[str, Any]] = {}
    for label, width in WIDTHS.items():
        set_width(driver, width)
        driver.get(f"{hub.url}/services/titan/{path}")
        screenshot(driver, f"usage-{name}-{label}-{width}")
        measured = overflow(driver, "#titan-usage-charts")
        assert measured["scrollWidth"] <= measured["innerWidth"], (name, label, measured)
        assert measured["right"] <= measured["innerWidth"] and measured["contentRight"] <= measured["right"] + 1
        seen[label] = driver.execute_script(READ_CHARTS)
    phone, desktop = seen["phone"], seen["desktop"]
    assert phone["rows"] == desktop["rows"]
    for chart in ("server", "dask"):  # the same numbers at both widths (only the drawn sizes differ)
        assert [(d["total"], [b["value"] for b in d["bars"]]) for d in phone[chart]] == \
            [(d["total"], [b["value"] for b in d["bars"]]) for d in desktop[chart]]
    return desktop


def totals(chart: list[dict[str, Any]]) -> list[float]:
    assert [d["day"] for d in chart] == [f"2026-11-0{n}" for n in range(1, 8)]  # every day, used or not
    for day in chart:
        assert day["total"] == pytest.approx(sum(bar["value"] for bar in day["bars"]), abs=1e-5)
        assert f"{day['total']:.2f}" in day["title"]
        for bar in day["bars"]:
            assert bar["title"] == f"{day['day']} · {bar['profile']}: {bar['value']:.2f} {bar['title'].split()[-1]}"
    return [round(d["total"], 4) for d in chart]


def by_profile(chart: list[dict[str, Any]]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for day in chart:
        for bar in day["bars"]:
            sums[bar["profile"]] = round(sums.get(bar["profile"], 0) + bar["value"], 4)
    return sums


def table(rows: list[dict[str, str]], column: str, kind: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for row in rows:
        if row["What"] == kind:
            sums[row["Profile"]] = round(sums.get(row["Profile"], 0) + float(row[column]), 2)
    return sums


def test_my_usage_page_draws_my_days_and_matches_my_table(hub: Hub, driver: Any) -> None:
    dev_login(driver, hub.url, "alice")
    seen = page(hub, driver, f"usage?{RANGE}", "alice")
    assert totals(seen["server"]) == ALICE_SERVER and totals(seen["dask"]) == ALICE_DASK
    assert {k: round(v, 2) for k, v in by_profile(seen["server"]).items()} == table(seen["rows"], "Server hours",
                                                                                     "server") == {"quick": 3.5,
                                                                                                   "slow": 3.25}
    assert by_profile(seen["dask"]) == {"slow": 3.0}  # under the profile of the server the cluster came from
    assert sum(table(seen["rows"], "Dask core-hours", "dask").values()) == 3.0
    tall, short = (next(b for d in seen["server"] for b in d["bars"] if b["value"] == v) for v in (3.25, 1.5))
    assert tall["height"] / short["height"] == pytest.approx(3.25 / 1.5, rel=0.02)  # drawn to scale


def test_bob_sees_only_his_own_and_not_the_admin_page(hub: Hub, driver: Any) -> None:
    dev_login(driver, hub.url, "bob")
    seen = page(hub, driver, f"usage?{RANGE}", "bob")
    assert totals(seen["server"]) == BOB_SERVER and totals(seen["dask"]) == BOB_DASK
    assert set(by_profile(seen["server"])) == {"slow"} and "quick" not in driver.page_source
    for alices in ("alice", "3.25", "6.75", "1.50", "3.00"):
        assert alices not in driver.page_source, alices
    session = hub.login("bob")
    refused = session.get(f"{hub.url}/services/titan/admin/usage", params={"start": "2026-11-01"}, timeout=60)
    assert refused.status_code == 403 and "only hub admins" in refused.text
    driver.get(f"{hub.url}/services/titan/admin/usage?{RANGE}")
    assert "only hub admins" in driver.page_source and "titan-chart" not in driver.page_source


def test_the_admin_page_draws_everyone(hub: Hub, driver: Any) -> None:
    dev_login(driver, hub.url, ADMIN)
    seen = page(hub, driver, f"admin/usage?{RANGE}", "admin")
    both = [round(a + b, 4) for a, b in zip(ALICE_SERVER, BOB_SERVER, strict=True)]
    assert totals(seen["server"]) == both
    assert totals(seen["dask"]) == [round(a + b, 4) for a, b in zip(ALICE_DASK, BOB_DASK, strict=True)]
    assert by_profile(seen["server"]) == table(seen["rows"], "Server hours", "server") == {"quick": 3.5, "slow": 10.95}
    assert sum(by_profile(seen["dask"]).values()) == sum(table(seen["rows"], "Dask core-hours", "dask").values())
    assert {row["User"] for row in seen["rows"]} == {"alice", "bob"}


@pytest.mark.parametrize(("query", "message"), [
    ({"start": "2026-11-07", "end": "2026-11-01"}, "start (2026-11-07) must be before end (2026-11-01)"),
    ({"start": "soon"}, "start: &#39;soon&#39; is not a date; write YYYY-MM-DD"),
    ({"end": "2026-02-30"}, "end: &#39;2026-02-30&#39; is not a date")])
def test_a_bad_range_is_a_400_that_says_why(hub: Hub, query: dict[str, str], message: str) -> None:
    for user, path in (("alice", "usage"), (ADMIN, "admin/usage")):
        answer = hub.login(user).get(f"{hub.url}/services/titan/{path}", params=query, timeout=60)
        assert answer.status_code == 400 and message in answer.text, (path, answer.text[-500:])
    api = requests.get(f"{hub.url}/services/titan/api/users/alice/usage", params=query, timeout=60,
                       headers={"Authorization": f"token {hub.admin.user_token('alice')}"})
    assert api.status_code == 400 and api.json()["message"].startswith(message.replace("&#39;", "'"))
