"""GitHub login through the real hub and proxy, against the fake GitHub on 127.0.0.1.

A cookie-carrying ``requests.Session`` walks the real OAuth web flow: the hub's
``/hub/oauth_login`` -> the fake's authorize endpoint (the ``/fake/login-as`` cookie says who is
signed in at GitHub) -> the hub's ``/hub/oauth_callback`` -> logged in, or a 403 page.

One hub serves the module (allowed: ``titan-org:data-science`` and the whole ``partner-org``;
admin team ``titan-org:hub-admins``; admin user ``frank``; a 1-second refresh age so a revoked
token is noticed quickly). A second, short-lived hub has no allow rule at all.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import yaml
from cryptography.fernet import Fernet
from jupyterhub.crypto import _validate_key

from tests.fakegithub import FakeGitHub
from tests.integration.browser import ARTIFACTS, chromium
from tests.integration.hub import Hub, containers, remove_deployment, start_hub, stop_hub
from titan.auth import FORBIDDEN_MESSAGE

pytestmark = [pytest.mark.docker, pytest.mark.hub]

CLIENT_ID = "titan-test-hub"
TIMEOUT = 30
TEAM_GROUP = "titan-org:data-science"
TEAM_PROFILE = {
    "display_name": "Data science team", "slug": "ds-team", "description": "Only for the data science team.",
    "image": "minimal", "resources": {"cpu": 1, "memory": "1G"}, "access": {"groups": [TEAM_GROUP]},
}


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.add_user("alice", name="Alice", email="alice@titan.example", email_private=True)
    fake.add_user("bob", name="Bob")
    fake.add_user("carol", name="Carol", email="carol@elsewhere.example")
    fake.add_user("dave", name="Dave")
    fake.add_user("erin", name="Erin")
    fake.add_user("frank", name="Frank")
    fake.add_user("grace", name="Grace")
    fake.add_user("heidi", name="Heidi")
    fake.add_org("titan-org")
    fake.add_org("partner-org")
    for slug in ("data-science", "hub-admins"):
        fake.add_team("titan-org", slug)
    fake.add_team("partner-org", "analysts")
    for login in ("alice", "erin", "grace", "heidi"):
        fake.add_team_member("titan-org", "data-science", login)
    fake.add_team_member("titan-org", "hub-admins", "erin")
    fake.add_member("titan-org", "bob")  # in the org, not in the allowed team
    fake.add_team_member("partner-org", "analysts", "dave")  # allowed as a partner-org member
    with fake:
        yield fake


def github_settings(fake: FakeGitHub, client_id: str, client_secret: str, **extra: Any) -> dict[str, Any]:
    return {"github": {"client_id": client_id, "client_secret": client_secret, "url": fake.url, **extra}}


def register(fake: FakeGitHub, hub: Hub, client_id: str, client_secret: str) -> None:
    """Register the hub's OAuth app once its URL (a free port) is known."""
    fake.register_app(client_id, client_secret, f"{hub.url}/hub/oauth_callback", name=f"Titan {client_id}")


@pytest.fixture(scope="module")
def client_secret() -> str:
    return "secret-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str], github: FakeGitHub,
        client_secret: str) -> Iterator[Hub]:
    root: Path = tmp_path_factory.mktemp("github-hub")
    (root / "profiles").mkdir()
    (root / "profiles" / "30-github.yaml").write_text(yaml.safe_dump({"profiles": [TEAM_PROFILE]}))
    overrides = {
        "hub": {"admin_users": ["frank"]},
        "auth": github_settings(github, CLIENT_ID, client_secret, allowed_organizations=[TEAM_GROUP, "partner-org"],
                                admin_team="titan-org:hub-admins", refresh_age=1),
    }
    running = start_hub(root, settings_overrides=overrides)
    try:
        register(github, running, CLIENT_ID, client_secret)
        yield running
    finally:
        stop_hub(running)
        remove_deployment(running.deployment)


# --------------------------------------------------------------------------- helpers


def browser(github: FakeGitHub, login: str) -> requests.Session:
    """A browser signed in at (fake) GitHub as ``login``, not yet at the hub."""
    session = requests.Session()
    assert session.get(f"{github.url}/fake/login-as/{login}", timeout=TIMEOUT).status_code == 200
    return session


def github_login(hub: Hub, github: FakeGitHub, login: str,
                 session: requests.Session | None = None) -> tuple[requests.Session, requests.Response]:
    """Walk the OAuth web flow; returns the session and the last response (redirects followed)."""
    session = session or browser(github, login)
    response = session.get(f"{hub.url}/hub/oauth_login", timeout=TIMEOUT)
    hops = [r.url for r in response.history] + [response.url]
    assert any(h.startswith(f"{github.url}/login/oauth/authorize?") for h in hops), hops
    assert any(h.startswith(f"{hub.url}/hub/oauth_callback?") for h in hops), hops
    return session, response


def logged_in(session: requests.Session) -> bool:
    return any(c.name.startswith("jupyterhub-session") for c in session.cookies) and any(
        c.name == "jupyterhub-hub-login" for c in session.cookies)


def user_model(hub: Hub, name: str) -> dict[str, Any]:
    response = hub.admin.api("GET", f"/users/{name}")
    assert response.status_code == 200, response.text
    model: dict[str, Any] = response.json()
    return model


def latest_token(github: FakeGitHub, login: str) -> str:
    with github.lock:
        tokens = [t for t in github.tokens.values() if t.login == login and not t.revoked]
    assert tokens, f"no active token for {login}"
    return max(tokens, key=lambda t: t.id).token


def all_tokens(github: FakeGitHub) -> list[str]:
    with github.lock:
        return list(github.tokens)


def auth_state_from_db(hub: Hub, name: str) -> dict[str, Any]:
    """Decrypt a user's auth_state straight from the hub's database with the state dir's key."""
    key = _validate_key((hub.root / "state" / "crypt-key").read_text().strip())
    with sqlite3.connect(f"file:{hub.root / 'state' / 'jupyterhub.sqlite'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT encrypted_auth_state FROM users WHERE name = ?", (name,)).fetchone()
    assert row and row[0], f"no auth_state stored for {name}"
    state: dict[str, Any] = json.loads(Fernet(base64.urlsafe_b64encode(key)).decrypt(row[0]))
    return state


# --------------------------------------------------------------------------- tests


def test_login_page_offers_github_not_the_dev_login(hub: Hub) -> None:
    page = requests.get(f"{hub.url}/hub/login", timeout=TIMEOUT)
    assert page.status_code == 200
    assert "Sign in with GitHub" in page.text
    assert 'id="titan-github-login"' in page.text
    assert "titan-dev-login" not in page.text
    assert "GitHub login allows: organizations/teams partner-org, titan-org:data-science" in hub.log_path.read_text()


def test_team_member_gets_in_and_lands_on_the_spawn_page_with_the_team_profile(hub: Hub, github: FakeGitHub) -> None:
    session, response = github_login(hub, github, "alice")
    assert response.status_code == 200, response.text[-2000:]
    assert logged_in(session)
    assert urlsplit(response.url).path == "/hub/spawn"
    assert 'value="ds-team"' in response.text  # the team's profile is offered
    assert session.get(f"{hub.url}/hub/home", timeout=TIMEOUT).status_code == 200
    model = user_model(hub, "alice")
    assert model["groups"] == [TEAM_GROUP]
    assert model["admin"] is False


def test_org_member_outside_the_allowed_team_gets_a_clear_403(hub: Hub, github: FakeGitHub) -> None:
    session, response = github_login(hub, github, "bob")
    assert response.status_code == 403
    assert FORBIDDEN_MESSAGE in response.text.replace("\n", " ")
    assert not logged_in(session)
    assert hub.admin.api("GET", "/users/bob").status_code == 404  # no user was created
    assert ("GET", "/api/v3/orgs/titan-org/teams/data-science/members/bob") in github.requests


def test_non_member_gets_403(hub: Hub, github: FakeGitHub) -> None:
    session, response = github_login(hub, github, "carol")
    assert response.status_code == 403
    assert FORBIDDEN_MESSAGE in response.text.replace("\n", " ")
    assert not logged_in(session)
    assert session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=TIMEOUT).status_code == 302
    assert hub.admin.api("GET", "/users/carol").status_code == 404


def test_teams_become_groups_and_leaving_a_team_drops_the_group_at_refresh_and_login(
        hub: Hub, github: FakeGitHub) -> None:
    session, response = github_login(hub, github, "dave")
    assert response.status_code == 200 and logged_in(session)
    assert 'value="ds-team"' not in response.text  # not in the team: its profile is not offered
    assert user_model(hub, "dave")["groups"] == ["partner-org:analysts"]

    # at the next refresh (1 s here) of a logged-in session ...
    github.remove_team_member("partner-org", "analysts", "dave")  # still a partner-org member
    time.sleep(1.2)
    assert session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=TIMEOUT).status_code == 200
    assert user_model(hub, "dave")["groups"] == []

    # ... and at the next login
    github.add_team_member("partner-org", "analysts", "dave")
    github_login(hub, github, "dave")
    assert user_model(hub, "dave")["groups"] == ["partner-org:analysts"]
    github.remove_team_member("partner-org", "analysts", "dave")
    session, response = github_login(hub, github, "dave")
    assert response.status_code == 200 and logged_in(session)
    assert user_model(hub, "dave")["groups"] == []


def test_admin_team_and_admin_users_are_admins_others_are_not(hub: Hub, github: FakeGitHub) -> None:
    session, response = github_login(hub, github, "erin")
    assert response.status_code == 200 and logged_in(session)
    erin = user_model(hub, "erin")
    assert erin["admin"] is True
    assert sorted(erin["groups"]) == ["titan-org:data-science", "titan-org:hub-admins"]

    # admin_users from titan.yaml: admin, and let in although in no allowed organization
    session, response = github_login(hub, github, "frank")
    assert response.status_code == 200 and logged_in(session)
    assert user_model(hub, "frank")["admin"] is True

    github_login(hub, github, "alice")
    assert user_model(hub, "alice")["admin"] is False

    # leaving the admin team takes admin away at the next login
    github.remove_team_member("titan-org", "hub-admins", "erin")
    session, response = github_login(hub, github, "erin")
    assert response.status_code == 200 and logged_in(session)
    assert user_model(hub, "erin")["admin"] is False


def test_forged_and_replayed_codes_are_refused(hub: Hub, github: FakeGitHub) -> None:
    def callback_with(code: str) -> tuple[requests.Session, requests.Response]:
        session = browser(github, "alice")
        to_github = session.get(f"{hub.url}/hub/oauth_login", allow_redirects=False, timeout=TIMEOUT)
        assert to_github.status_code == 302
        state = dict(parse_qsl(urlsplit(to_github.headers["Location"]).query))["state"]
        response = session.get(f"{hub.url}/hub/oauth_callback", params={"code": code, "state": state},
                               timeout=TIMEOUT)
        return session, response

    session, response = callback_with("f" * 20)
    assert response.status_code == 403
    assert "The code passed is incorrect or expired" in response.text
    assert not logged_in(session)

    # A code that was already exchanged: replaying it fails, and revokes what it was exchanged for.
    session = browser(github, "grace")
    to_github = session.get(f"{hub.url}/hub/oauth_login", allow_redirects=False, timeout=TIMEOUT)
    to_hub = session.get(to_github.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    code = dict(parse_qsl(urlsplit(to_hub.headers["Location"]).query))["code"]
    assert session.get(to_hub.headers["Location"], timeout=TIMEOUT).status_code == 200
    assert logged_in(session)
    first_token = latest_token(github, "grace")

    replay_session, response = callback_with(code)
    assert response.status_code == 403
    assert not logged_in(replay_session)
    assert github.active_token(first_token) is None

    # and a state that does not match the browser's cookie is refused before GitHub is asked
    response = browser(github, "alice").get(f"{hub.url}/hub/oauth_callback",
                                            params={"code": "f" * 20, "state": "forged"}, timeout=TIMEOUT)
    assert response.status_code in (400, 403)


def test_auth_state_is_encrypted_and_holds_token_teams_user_and_private_email(hub: Hub, github: FakeGitHub) -> None:
    github.requests.clear()
    github_login(hub, github, "alice")
    # the split-scope workaround works: the private email was fetched
    assert ("GET", "/api/v3/user/emails") in github.requests
    token = latest_token(github, "alice")

    state = auth_state_from_db(hub, "alice")
    assert state["access_token"] == token
    assert state["scope"] == ["read:org", "user:email"]
    assert state["github_user"]["login"] == "alice"
    assert state["github_user"]["email"] == "alice@titan.example"
    assert [(t["organization"]["login"], t["slug"]) for t in state["teams"]] == [("titan-org", "data-science")]

    database = (hub.root / "state" / "jupyterhub.sqlite").read_bytes()
    for value in all_tokens(github):
        assert value.encode() not in database


def test_team_gates_a_profile_on_a_rest_post_and_the_token_stays_out_of_the_container(
        hub: Hub, github: FakeGitHub) -> None:
    github_login(hub, github, "dave")  # not in the team (any more)
    refused = hub.admin.api("POST", "/users/dave/servers/", json={"profile": "ds-team"})
    assert refused.status_code == 400
    assert "not available to you" in refused.json()["message"]

    github_login(hub, github, "alice")
    token = latest_token(github, "alice")
    hub.admin.spawn("alice", "", {"profile": "ds-team"})
    try:
        (container,) = [c for c in containers(hub.deployment) if c["Config"]["Labels"].get("titan.owner") == "alice"]
        assert container["Config"]["Labels"]["titan.profile"] == "ds-team"
        inspected = json.dumps(container)
        for value in all_tokens(github):
            assert value not in inspected
        assert not [e for e in container["Config"]["Env"] if token in e]
    finally:
        hub.admin.stop("alice")


def test_a_revoked_token_sends_the_user_back_to_login(hub: Hub, github: FakeGitHub) -> None:
    session, response = github_login(hub, github, "grace")
    assert response.status_code == 200 and logged_in(session)
    assert session.get(f"{hub.url}/hub/home", timeout=TIMEOUT).status_code == 200

    github.revoke_token(latest_token(github, "grace"))
    time.sleep(1.5)  # past the hub's 1-second refresh age
    response = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/hub/login"
    page = session.get(f"{hub.url}/hub/home", timeout=TIMEOUT)
    assert page.status_code == 200 and "Sign in with GitHub" in page.text

    # signing in again gets a fresh token and a working session
    session, response = github_login(hub, github, "grace", session)
    assert response.status_code == 200
    assert session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=TIMEOUT).status_code == 200


def test_login_in_headless_chromium_lands_on_the_spawn_page(hub: Hub, github: FakeGitHub) -> None:
    """A real browser (Debian's chromium, driven by selenium through chromedriver) logs in with
    GitHub and reaches the spawn page; the screenshot is kept in test-artifacts/."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(TIMEOUT) as driver:
        driver.get(f"{github.url}/fake/login-as/heidi")  # signed in at GitHub as heidi
        driver.get(f"{hub.url}/hub/login")
        assert "Development login" not in driver.page_source
        driver.find_element(By.PARTIAL_LINK_TEXT, "Sign in with").click()
        WebDriverWait(driver, TIMEOUT).until(lambda d: "/hub/spawn" in d.current_url)
        WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[value='ds-team']"))
        assert driver.find_element(By.CSS_SELECTOR, "input[value='small']").is_enabled()
        assert "heidi" in driver.page_source
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "github-login-spawn-page.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000


def test_no_token_or_client_secret_in_the_hub_log(hub: Hub, github: FakeGitHub, client_secret: str) -> None:
    """Runs last: every token the fake ever issued in this module, against the whole hub log."""
    log = hub.log_path.read_text(errors="replace")
    assert "grace has stale auth info. Login is required to refresh." in log  # the refreshes did run
    assert "Failed to get current user" not in log  # refresh failures end in a login, not an error
    tokens = all_tokens(github)
    assert len(tokens) >= 10
    leaked = [t for t in tokens if t in log]
    assert not leaked
    assert client_secret not in log
    assert not re.search(r"gho_[A-Za-z0-9]{36}", log)


# --------------------------------------------------------------------------- no allow rule


def test_without_an_allow_rule_nobody_gets_in_and_startup_says_so(
        tmp_path: Path, built_images: dict[str, str], github: FakeGitHub) -> None:
    secret = "secret-" + secrets.token_hex(16)
    closed = start_hub(tmp_path, settings_overrides={"auth": github_settings(github, "titan-closed", secret)})
    try:
        register(github, closed, "titan-closed", secret)
        assert "no allow rule is configured, so NOBODY can log in" in closed.log_path.read_text()
        session, response = github_login(closed, github, "alice")
        assert response.status_code == 403
        assert not logged_in(session)
        assert closed.admin.api("GET", "/users/alice").status_code == 404
    finally:
        stop_hub(closed)
        remove_deployment(closed.deployment)
