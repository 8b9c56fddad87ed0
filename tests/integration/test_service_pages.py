"""Every Titan service page in headless Chromium against a real hub and the real service, at a
desktop width (1280 px) and a phone width (375 px): nothing overflows sideways, every request goes
to the hub's own host, and nothing the page asks for is missing (a report view's MathJax fonts
included). Screenshots of each page at each width are left in ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.browser import chromium, dev_login
from tests.integration.hub import Hub, running_hub
from tests.integration.pagecheck import (
    WIDTHS,
    Request,
    enable_network_log,
    overflow,
    requests_seen,
    screenshot,
    set_width,
)
from tests.integration.test_sharing import Api, home_of, notebook

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

ADMIN = "pagesadmin"
PAGES = ("links", "shared", "autosave", "usage", "usage?start=2026-11-07&end=2026-11-01", "r/" + "x" * 34)
ADMIN_PAGES = ("admin", "admin/usage")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("pages"), {"hub": {"admin_users": [ADMIN]}}) as running:
        yield running


@pytest.fixture(scope="module")
def report(hub: Hub) -> str:
    """A report of alice's (with a formula for MathJax) that bob may open: its URL."""
    alice = Api(hub, "alice")
    Api(hub, "bob")
    home = home_of(hub, "alice")
    (home / "work").mkdir(exist_ok=True)
    (home / "work" / "maths.ipynb").write_text(notebook("Circle maths"))
    link = alice.publish(path="work/maths.ipynb", access={"mode": "users", "users": ["bob"]})
    return f"{hub.url}{link['url']}"


@pytest.fixture(scope="module")
def driver(hub: Hub) -> Iterator[Any]:
    with chromium() as browser:
        enable_network_log(browser)
        yield browser


def visit(driver: Any, url: str, name: str, width: int) -> list[Request]:
    """Open ``url`` at ``width``, let it settle, screenshot it; the requests it made."""
    from selenium.webdriver.support.ui import WebDriverWait

    set_width(driver, width)
    requests_seen(driver)  # forget what came before
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    driver.execute_script("return document.fonts.ready")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return !window.MathJax || !window.MathJax.Hub || window.MathJax.Hub.queue.pending === 0"))
    screenshot(driver, f"pages-{name}-{width}")
    return requests_seen(driver)


def foreign(hub: Hub, seen: list[Request]) -> list[str]:
    host = urlsplit(hub.url).netloc
    return [r.url for r in seen if r.host != host]


def broken(seen: list[Request], page: str) -> list[str]:
    """Sub-resources that failed or answered 4xx/5xx (the page itself may be an error page)."""
    return [f"{r.status or r.error} {r.url}" for r in seen
            if r.url.split("#")[0] != page and (r.status is None and r.error or (r.status or 0) >= 400)]


def test_my_links_fits_a_desktop_and_a_phone(hub: Hub, driver: Any, report: str) -> None:
    """With a link in the table (its URL, its access form): the form, the table and the page fit."""
    dev_login(driver, hub.url, "alice")
    for name, width in WIDTHS.items():
        visit(driver, f"{hub.url}/services/titan/links", f"links-{name}", width)
        driver.execute_script("document.querySelectorAll('#titan-links details').forEach(d => d.open = true)")
        screenshot(driver, f"pages-links-open-{name}-{width}")
        for part in ("#titan-publish", "#titan-links"):
            measured = overflow(driver, part)
            assert measured["innerWidth"] == width
            assert measured["scrollWidth"] <= measured["innerWidth"], (name, part, measured)
            assert measured["left"] >= 0 and measured["right"] <= measured["innerWidth"], (name, part, measured)
            assert measured["contentRight"] <= measured["right"], (name, part, measured)


def test_a_report_view_loads_everything_from_the_hub_and_nothing_is_missing(hub: Hub, driver: Any,
                                                                           report: str) -> None:
    from selenium.webdriver.common.by import By

    dev_login(driver, hub.url, "bob")
    for name, width in WIDTHS.items():
        seen = visit(driver, report, f"report-{name}", width)
        assert "Circle maths" in driver.find_element(By.TAG_NAME, "body").text
        assert driver.find_elements(By.CSS_SELECTOR, ".MathJax, .MathJax_CHTML, mjx-container"), "no formula typeset"
        assert any("/static/mathjax/" in r.url for r in seen), "MathJax was not loaded"
        assert any("STIX-Web" in r.url and r.status == 200 for r in seen), "MathJax's fonts were not served"
        assert foreign(hub, seen) == []
        assert broken(seen, report) == []
        measured = overflow(driver)
        assert measured["scrollWidth"] <= measured["innerWidth"], (name, measured)


@pytest.mark.parametrize(("who", "pages"), [("alice", PAGES), ("bob", ("shared",)), (ADMIN, ADMIN_PAGES)])
def test_every_service_page_asks_only_the_hub(hub: Hub, driver: Any, report: str, who: str,
                                              pages: tuple[str, ...]) -> None:
    """alice's pages (with a link of hers), bob's list of what is shared with him, the admin's."""
    Api(hub, who)
    dev_login(driver, hub.url, who)
    for page in pages:
        for name, width in WIDTHS.items():
            url = f"{hub.url}/services/titan/{page}"
            label = who[:5] + "-" + page.replace("/", "-").replace("?", "-").replace("&", "-").replace("=", "")[:40]
            seen = visit(driver, url, f"{label}-{name}", width)
            loaded = {r.url.rsplit("/", 1)[-1] for r in seen if r.status == 200}
            assert {"style.min.css", "pages.css"} <= loaded, (url, loaded)  # the log holds the sub-resources
            assert foreign(hub, seen) == [], page
            assert broken(seen, url) == [], page
            measured = overflow(driver)
            assert measured["scrollWidth"] <= measured["innerWidth"], (page, name, measured)
