"""Share links against a real hub, proxy and Titan service: reports published from a user's home
volume, opened by other users through the proxy, access rules, expiry, revocation, guessing, bad
input, and the owner's pages in headless chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

from tests.helpers import wait_for
from tests.integration.browser import ARTIFACTS, chromium, dev_login
from tests.integration.hub import Hub, running_hub

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

XSS = "<img src=x onerror=\"window.titanXss=1\"><script>window.titanXss=2</script>"


def notebook(text: str, code: str = "answer = 6 * 7", extra_html: str = "") -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {text}\n\nThe area is $\\pi r^2$."),
        nbformat.v4.new_code_cell(code, outputs=[
            nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
            nbformat.v4.new_output("display_data", data={"text/html": f"<b>bold {text}</b>{extra_html}"}),
            nbformat.v4.new_output("display_data", data={"application/javascript": "window.titanXss=3"}),
        ], execution_count=1),
    ]
    return nbformat.writes(nb)


def home_of(hub: Hub, user: str) -> Path:
    """The user's home volume (created as the spawner would name it), as a host path."""
    name = f"{hub.deployment}-home-{user}"
    subprocess.run(["docker", "volume", "create", name], capture_output=True, check=True)
    out = subprocess.run(["docker", "volume", "inspect", name], capture_output=True, text=True, check=True)
    home = Path(json.loads(out.stdout)[0]["Mountpoint"])
    os.chown(home, 1000, 1000)  # the images' jovyan, as a home the server made itself
    return home


class Api:
    """One user's calls to the service's JSON API with a hub token."""

    def __init__(self, hub: Hub, user: str) -> None:
        hub.admin.create_user(user)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {hub.admin.user_token(user)}"
        self.base = f"{hub.url}/services/titan/api"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base}{path}", timeout=120, **kwargs)

    def publish(self, **body: Any) -> dict[str, Any]:
        response = self.call("POST", "/links", json=body)
        assert response.status_code == 201, response.text
        model: dict[str, Any] = response.json()
        return model


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Reports need no single-user image: the service renders them from the home volume."""
    with running_hub(tmp_path_factory.mktemp("sharing"), {"sharing": {"guess_limit": 8, "guess_window": 4}}) as running:
        yield running


@pytest.fixture(scope="module")
def alice(hub: Hub) -> Api:
    api = Api(hub, "alice")
    home = home_of(hub, "alice")
    (home / "work").mkdir(exist_ok=True)
    (home / "work" / "report.ipynb").write_text(notebook("Quarterly numbers"))
    (home / "work" / "xss.ipynb").write_text(notebook("Harmless title", extra_html=XSS))
    (home / "notes.txt").write_text("not a notebook")
    (home / "escape.ipynb").symlink_to("/etc/passwd")
    return api


@pytest.fixture(scope="module")
def bob(hub: Hub) -> Api:
    return Api(hub, "bob")


@pytest.fixture(scope="module")
def carol(hub: Hub) -> Api:
    return Api(hub, "carol")


def text_of(page: requests.Response) -> str:
    """The page's text without tags (code is syntax-highlighted into spans)."""
    return re.sub(r"<[^>]+>", "", page.text)


def view(hub: Hub, session: requests.Session, link: dict[str, Any]) -> requests.Response:
    return session.get(f"{hub.url}{link['url']}", timeout=60)


def test_a_report_opens_for_the_users_named_and_nobody_else(hub: Hub, alice: Api, bob: Api, carol: Api) -> None:
    link = alice.publish(path="work/report.ipynb", access={"mode": "users", "users": ["bob"]})
    assert link["kind"] == "report" and link["state"] == "active" and link["version"] == 1
    assert len(link["id"]) >= 32  # token_urlsafe(24): 192 random bits
    page = view(hub, hub.login("bob"), link)
    assert page.status_code == 200, page.text[:300]
    assert "Quarterly numbers" in text_of(page) and "answer = 6 * 7" in text_of(page)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp.split(
        "style-src")[0]
    assert page.headers["X-Frame-Options"] == "DENY"
    # every script and stylesheet comes from the service itself: no CDN
    sources = re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"([^\"]+)\"", page.text)
    assert sources and all(s.startswith("/services/titan/static/") for s in sources), sources
    for source in sources:
        assert requests.get(f"{hub.url}{source}", timeout=30).status_code == 200, source
    refused = view(hub, hub.login("carol"), link)
    assert refused.status_code == 403 and "has not shared this link with you" in refused.text
    assert view(hub, hub.login("alice"), link).status_code == 200
    assert alice.call("GET", f"/links/{link['id']}").json()["views"] == 2


def test_groups_and_team_access(hub: Hub, alice: Api, carol: Api) -> None:
    assert hub.admin.api("POST", "/groups/analysts", json={"users": ["carol"]}).status_code in (201, 409)
    by_group = alice.publish(path="work/report.ipynb", access={"mode": "users", "groups": ["analysts"]})
    assert view(hub, hub.login("carol"), by_group).status_code == 200
    assert view(hub, hub.login("dave"), by_group).status_code == 403
    team = alice.publish(path="work/report.ipynb", access={"mode": "team"})
    assert view(hub, hub.login("dave"), team).status_code == 200
    shared = carol.call("GET", "/shared").json()["links"]
    assert {by_group["id"], team["id"]} <= {item["id"] for item in shared}


def test_revoking_takes_effect_at_once_and_expiry_ends_access(hub: Hub, alice: Api) -> None:
    bob_browser = hub.login("bob")
    link = alice.publish(path="work/report.ipynb", access={"mode": "users", "users": ["bob"]})
    assert view(hub, bob_browser, link).status_code == 200
    assert alice.call("DELETE", f"/links/{link['id']}").json()["state"] == "revoked"
    gone = view(hub, bob_browser, link)
    assert gone.status_code == 410 and "revoked" in gone.text
    short = alice.publish(path="work/report.ipynb", access={"mode": "team"}, expires_at={"in_seconds": 2})
    assert view(hub, bob_browser, short).status_code == 200
    time.sleep(2.5)
    expired = view(hub, bob_browser, short)
    assert expired.status_code == 410 and "expired" in expired.text
    assert alice.call("GET", f"/links/{short['id']}").json()["state"] == "expired"


def test_republishing_keeps_the_link_and_the_old_versions(hub: Hub, alice: Api) -> None:
    home = home_of(hub, "alice")
    (home / "work" / "changing.ipynb").write_text(notebook("First edition"))
    link = alice.publish(path="work/changing.ipynb", access={"mode": "team"}, hide_code=True)
    first = view(hub, hub.login("bob"), link)
    assert "First edition" in text_of(first) and "answer = 6 * 7" not in text_of(first)  # code hidden
    (home / "work" / "changing.ipynb").write_text(notebook("Second edition"))
    again = alice.call("POST", f"/links/{link['id']}/publish")
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2 and [v["version"] for v in again.json()["versions"]] == [1, 2]
    second = view(hub, hub.login("bob"), link)
    assert "Second edition" in second.text and "First edition" not in second.text
    stored = sorted(p.name for p in (hub.root / "state" / "service" / "reports" / link["id"]).iterdir())
    assert stored == ["1.html", "2.html"]


def test_nobody_changes_or_revokes_another_users_link(hub: Hub, alice: Api, bob: Api) -> None:
    link = alice.publish(path="work/report.ipynb", access={"mode": "users", "users": ["bob"]})
    for method, path, body in (("PATCH", f"/links/{link['id']}", {"access": {"mode": "team"}}),
                               ("DELETE", f"/links/{link['id']}", None),
                               ("POST", f"/links/{link['id']}/publish", None),
                               ("GET", f"/links/{link['id']}", None)):
        response = bob.call(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert "only the owner" in response.json()["message"]
    assert link["id"] not in {item["id"] for item in bob.call("GET", "/links").json()["links"]}
    assert alice.call("GET", f"/links/{link['id']}").json()["state"] == "active"
    assert alice.call("GET", f"/links/{link['id']}").json()["access"]["mode"] == "users"
    # the page form too: bob posting to alice's revoke action is refused
    browser = hub.login("bob")
    browser.get(f"{hub.url}/services/titan/links", timeout=60)
    xsrf = browser.cookies.get("_xsrf", path="/services/titan/") or browser.cookies.get("_xsrf") or ""
    response = browser.post(f"{hub.url}/services/titan/links/{link['id']}/revoke", data={"_xsrf": xsrf},
                            timeout=60, allow_redirects=False)
    assert response.status_code == 403
    assert alice.call("GET", f"/links/{link['id']}").json()["state"] == "active"


@pytest.mark.parametrize(("body", "message"), [
    ({"path": "../bob/work/report.ipynb"}, "without '..'"),
    ({"path": "/etc/passwd.ipynb"}, "without '..'"),
    ({"path": "escape.ipynb"}, "outside your home"),
    ({"path": "notes.txt"}, "is not a notebook"),
    ({"path": "missing.ipynb"}, "does not exist"),
    ({"path": "work/report.ipynb", "expires_at": "2001-01-01T00:00:00Z"}, "in the past"),
    ({"path": "work/report.ipynb", "expires_at": "next tuesday"}, "ISO 8601"),
    ({"path": "work/report.ipynb", "access": {"mode": "public"}}, "public links are turned off"),
    ({"path": "work/report.ipynb", "access": {"mode": "users", "users": ["<script>"]}}, "not a valid name"),
    ({"path": "work/report.ipynb", "colour": "red"}, "unknown fields"),
    ({"path": "work/report.ipynb", "kind": "pdf"}, "kind must be"),
    ({"path": "work/report.ipynb", "hide_code": "yes"}, "hide_code must be"),
    ({"path": 7}, "path must be text"),
    ({"path": "work/report.ipynb", "title": ["a"]}, "title must be text"),
    ({"path": "work/report.ipynb", "access": {"mode": "team", "who": []}}, "access has unknown keys: who"),
    ({"path": "work/report.ipynb", "expires_at": {"in_seconds": "soon"}}, "expires_at.in_seconds must be a number"),
    ({"path": "work/report.ipynb", "expires_at": 5}, "expires_at must be one of"),
    ([{"path": "work/report.ipynb"}], "must be a JSON object"),
])
def test_bad_input_is_a_400_with_a_message(alice: Api, body: Any, message: str) -> None:
    response = alice.call("POST", "/links", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_a_body_that_is_not_json_is_a_400(alice: Api) -> None:
    response = alice.call("POST", "/links", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not JSON" in response.json()["message"]


def test_public_links_are_off_so_an_anonymous_visitor_is_sent_to_login(hub: Hub, alice: Api) -> None:
    link = alice.publish(path="work/report.ipynb", access={"mode": "team"})
    response = requests.get(f"{hub.url}{link['url']}", timeout=60, allow_redirects=False)
    assert response.status_code == 302
    assert "/hub/api/oauth2/authorize" in response.headers["Location"]
    assert "Quarterly" not in requests.get(f"{hub.url}{link['url']}", timeout=60).text  # lands on the login page


def test_my_links_page_publish_copy_revoke_in_chromium(hub: Hub, alice: Api) -> None:
    """A person publishes a report from the My links page, another opens it, the owner revokes it,
    and the next visit is refused. The XSS payload in the notebook never runs in the viewer."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as driver:
        dev_login(driver, hub.url, "alice")
        driver.get(f"{hub.url}/services/titan/links")
        driver.find_element(By.ID, "path").send_keys("work/xss.ipynb")
        driver.find_element(By.ID, "new-users").send_keys("bob")
        driver.find_element(By.ID, "titan-publish-submit").click()
        # Publishing posts a form and the page reloads; earlier tests' links are listed too, so wait
        # for this one's row on the new page.
        new_row = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: next((r for r in d.find_elements(By.CSS_SELECTOR, "tr.titan-link")
                            if "work/xss.ipynb" in r.text), None))
        url = new_row.find_element(By.CSS_SELECTOR, ".titan-link-url").get_attribute("value")
        assert url and url.startswith(f"{hub.url}/services/titan/r/")
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "sharing-my-links.png"))

        dev_login(driver, hub.url, "bob")
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: "Harmless title" in d.page_source)
        time.sleep(1)  # let MathJax and anything else that might run, run
        assert driver.execute_script("return window.titanXss === undefined")
        assert "bold Harmless title" in driver.find_element(By.TAG_NAME, "body").text
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".MathJax_CHTML, .MathJax, mjx-container"),
                 30, "MathJax, served by the service, to typeset the formula")
        driver.save_screenshot(str(ARTIFACTS / "sharing-report-as-bob.png"))

        dev_login(driver, hub.url, "alice")
        driver.get(f"{hub.url}/services/titan/links")
        row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "tr.titan-link")
                   if url.endswith(str(r.get_attribute("data-link-id"))))
        row.find_element(By.CSS_SELECTOR, ".titan-revoke").click()
        # Revoking posts a form and the page reloads: rows read during the reload go stale.
        WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: any(r.get_attribute("data-state") == "revoked" for r in d.find_elements(
                By.CSS_SELECTOR, "tr.titan-link") if url.endswith(str(r.get_attribute("data-link-id")))))

        dev_login(driver, hub.url, "bob")
        driver.get(url)
        assert "revoked" in driver.find_element(By.ID, "titan-error").text
        assert "Harmless title" not in driver.page_source


def test_the_api_never_answers_500_to_fuzzed_input(hub: Hub, alice: Api) -> None:
    """Bodies drawn from the OpenAPI document's own schemas, and arbitrary JSON, at every write."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from service.sharing.openapi import PUBLISH, UPDATE

    link = alice.publish(path="work/report.ipynb", access={"mode": "users", "users": ["bob"]})
    finite = st.floats(allow_nan=False, allow_infinity=False)
    anything = st.recursive(st.none() | st.booleans() | st.integers() | finite | st.text(),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                            max_leaves=12)
    plausible = {
        "kind": st.sampled_from(["report", "dashboard", "pdf", ""]),
        "path": st.sampled_from(["work/report.ipynb", "../x.ipynb", "/etc/passwd", "escape.ipynb", "a\x00b"])
        | st.text(max_size=40),
        "app": st.sampled_from(["voila", "panel", "lab"]),
        "access": st.fixed_dictionaries({}, optional={
            "mode": st.sampled_from(["users", "team", "public", "everyone"]) | anything,
            "users": st.lists(st.text(max_size=12), max_size=3) | anything,
            "groups": st.lists(st.text(max_size=12), max_size=3) | anything}) | anything,
        "expires_at": st.sampled_from([None, "2001-01-01T00:00:00Z", "2099-01-01T00:00:00+02:00", "soon"])
        | st.fixed_dictionaries({"in_seconds": st.integers() | finite}) | anything,
        "hide_code": st.booleans() | anything,
    }

    def bodies(schema: dict[str, Any]) -> Any:
        """Objects with the schema's own keys (plausible and wrong values), plus any JSON at all."""
        keys = schema["properties"]
        return st.fixed_dictionaries({}, optional={k: plausible.get(k, anything) for k in keys}) | anything

    seen: set[int] = set()

    def check(response: requests.Response, allowed: set[int]) -> None:
        seen.add(response.status_code)
        assert response.status_code in allowed, (response.status_code, response.text[:300])
        assert response.json()["message" if response.status_code >= 400 else "id"]

    fuzz = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

    @fuzz
    @given(body=bodies(PUBLISH))
    def publish(body: Any) -> None:
        check(alice.call("POST", "/links", json=body), {201, 400})

    @fuzz
    @given(body=bodies(UPDATE))
    def update(body: Any) -> None:
        check(alice.call("PATCH", f"/links/{link['id']}", json=body), {200, 400})

    @fuzz
    @given(link_id=st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=80))
    def lookup(link_id: str) -> None:
        response = alice.call("GET", f"/links/{urllib.parse.quote(link_id, safe='')}")
        seen.add(response.status_code)
        assert response.status_code in {403, 404, 405, 429}, (link_id, response.status_code, response.text[:200])

    publish()
    update()
    lookup()
    assert 400 in seen and 404 in seen
    assert 429 in seen  # the random lookups spent the guess budget
    found = wait_for(lambda: (r := alice.call("GET", f"/links/{link['id']}")).status_code == 200 and r.json(), 15,
                     "the guess window to pass")
    assert found["owner"] == "alice" and found["state"] in ("active", "expired")  # fuzzed expiry may have passed


def test_guessing_links_is_slowed_down(hub: Hub, alice: Api) -> None:
    """Runs last in this module: it spends the loopback client's guess budget (8 in 4 s here)."""
    link = alice.publish(path="work/report.ipynb", access={"mode": "team"})
    browser = hub.login("bob")
    wait_for(lambda: browser.get(f"{hub.url}{link['url']}", timeout=60).status_code == 200, 15,
             "an earlier test's guesses to age out")
    answers = [browser.get(f"{hub.url}/services/titan/r/{'x' * 32}{i:02d}", timeout=60).status_code
               for i in range(12)]
    assert answers[:8] == [404] * 8 and set(answers[8:]) == {429}, answers
    blocked = browser.get(f"{hub.url}{link['url']}", timeout=60)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    wait_for(lambda: browser.get(f"{hub.url}{link['url']}", timeout=60).status_code == 200, 15,
             "the guess window to pass")
