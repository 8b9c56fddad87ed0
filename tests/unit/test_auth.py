"""``titan.auth``: scopes, teams as groups, the admin team, start-up messages and token re-checks.

The pure helpers are tested directly; refresh is tested against the fake GitHub on 127.0.0.1.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from oauthenticator.github import GitHubOAuthenticator

from core.settings import SettingsError, load_settings
from tests.fakegithub import FakeGitHub
from titan.auth import (
    FORBIDDEN_MESSAGE,
    TitanGitHubOAuthenticator,
    requested_scopes,
    scopes_need_split,
    split_scopes,
    team_groups,
)

CLIENT_ID = "titan-unit"
CLIENT_SECRET = "titan-unit-secret"
CALLBACK = "http://127.0.0.1:8081/hub/oauth_callback"


def team(org: str, slug: str) -> dict[str, Any]:
    """One entry of GitHub's ``GET /user/teams`` answer (only what matters here)."""
    return {"slug": slug, "name": slug.title(), "organization": {"login": org}}


def make(log: logging.Logger | None = None, **config: Any) -> TitanGitHubOAuthenticator:
    return TitanGitHubOAuthenticator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                     oauth_callback_url=CALLBACK, log=log or logging.getLogger("titan.test"),
                                     **config)


# --------------------------------------------------------------------------- scopes


@pytest.mark.parametrize(("given", "expected"), [
    ("read:org,user:email", ["read:org", "user:email"]),
    (["read:org,user:email"], ["read:org", "user:email"]),
    (["read:org", "user:email"], ["read:org", "user:email"]),
    ("read:org user:email", ["read:org", "user:email"]),
    ("repo, read:org,,repo", ["repo", "read:org"]),
    ("", []),
    ([""], []),
    (None, []),
])
def test_split_scopes(given: Any, expected: list[str]) -> None:
    assert split_scopes(given) == expected


def test_only_comma_joined_scopes_need_the_split() -> None:
    assert scopes_need_split(["read:org,user:email"])
    assert scopes_need_split("read:org,user:email")
    assert not scopes_need_split(["read:org", "user:email"])
    assert not scopes_need_split([])
    assert not scopes_need_split(None)


def test_scopes_requested_add_repo_only_for_autosave_push() -> None:
    assert requested_scopes(False) == ["read:org", "user:email"]
    assert requested_scopes(True) == ["read:org", "user:email", "repo"]
    assert make().scope == ["read:org", "user:email"]
    assert make(autosave_push=True).scope == ["read:org", "user:email", "repo"]


def test_installed_oauthenticator_still_leaves_github_scopes_unsplit() -> None:
    """The tripwire for the 17.4.0 workaround: when this fails, oauthenticator splits GitHub's
    comma-separated scopes itself (upstream PR #820) and the workaround in
    ``TitanGitHubOAuthenticator.build_auth_state_dict`` can be deleted."""
    plain = GitHubOAuthenticator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    state = plain.build_auth_state_dict(
        {"access_token": "t", "token_type": "bearer", "scope": "read:org,user:email"}, {"login": "a"})
    assert state["scope"] == ["read:org,user:email"]


@pytest.mark.asyncio
async def test_auth_state_scopes_are_split_and_left_alone_once_split() -> None:
    authenticator = make()
    token_info = {"access_token": "t", "token_type": "bearer", "scope": "read:org,user:email"}
    state = await authenticator.build_auth_state_dict(token_info, {"login": "alice"})
    assert state["scope"] == ["read:org", "user:email"]
    assert state["access_token"] == "t"
    assert state["github_user"] == {"login": "alice"}

    # What a fixed oauthenticator hands over: already a list, so the workaround does nothing.
    fixed = {"access_token": "t", "token_type": "bearer", "scope": "read:org user:email"}
    state = await authenticator.build_auth_state_dict(fixed, {"login": "alice"})
    assert state["scope"] == ["read:org", "user:email"]


# --------------------------------------------------------------------------- teams and admins


def test_team_groups_are_org_colon_team_lower_case_and_unique() -> None:
    teams = [team("Titan-Org", "data-science"), team("titan-org", "data-science"), team("other", "ops"),
             {"slug": "orphan"}, {"organization": {"login": "x"}}]
    assert team_groups(teams) == ["other:ops", "titan-org:data-science"]
    assert team_groups([]) == []
    assert team_groups(None) == []


@pytest.mark.asyncio
async def test_user_groups_come_from_the_teams_in_auth_state() -> None:
    groups = await make().get_user_groups({"teams": [team("titan-org", "ds"), team("acme", "ops")]})
    assert groups == {"titan-org:ds", "acme:ops"}
    assert await make().get_user_groups({"teams": []}) == set()


@pytest.fixture
def teams_from_github(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stand in for oauthenticator's own update_auth_model (which asks GitHub for the teams)."""
    teams: list[dict[str, Any]] = []

    async def fake_update(self: GitHubOAuthenticator, auth_model: dict[str, Any]) -> dict[str, Any]:
        auth_model["auth_state"]["teams"] = list(teams)
        return auth_model

    monkeypatch.setattr(GitHubOAuthenticator, "update_auth_model", fake_update)
    return teams


@pytest.mark.asyncio
async def test_admin_team_members_become_admins_and_others_do_not(teams_from_github: list[dict[str, Any]]) -> None:
    authenticator = make(admin_team="titan-org:Hub-Admins")
    teams_from_github.append(team("Titan-Org", "hub-admins"))
    model = await authenticator.update_auth_model({"name": "erin", "admin": None, "auth_state": {}})
    assert model["admin"] is True

    teams_from_github[:] = [team("titan-org", "data-science")]
    model = await authenticator.update_auth_model({"name": "erin", "admin": None, "auth_state": {}})
    assert model["admin"] is False  # left the admin team: no longer an admin

    # admin_users keep admin whatever their teams
    model = await authenticator.update_auth_model({"name": "frank", "admin": True, "auth_state": {}})
    assert model["admin"] is True

    # without an admin team, admin status is left unchanged (None)
    model = await make().update_auth_model({"name": "erin", "admin": None, "auth_state": {}})
    assert model["admin"] is None


def test_admin_team_must_be_org_colon_team() -> None:
    with pytest.raises(ValueError, match="org:team"):
        make(admin_team="just-an-org")


def test_defaults_keep_everyone_out_and_groups_managed() -> None:
    authenticator = make(allowed_users={"alice"})
    assert authenticator.allow_all is False
    assert authenticator.allow_existing_users is False
    assert authenticator.manage_groups is True
    assert authenticator.populate_teams_in_auth_state is True
    assert authenticator.enable_auth_state is True
    assert authenticator.refresh_pre_spawn is True
    assert authenticator.custom_403_message == FORBIDDEN_MESSAGE


# --------------------------------------------------------------------------- start-up message


def startup_messages(caplog: pytest.LogCaptureFixture, **config: Any) -> list[tuple[int, str]]:
    """What ``check_allow_config`` logs, and only that (made first: whatever constructing the
    authenticator logs, in whatever order the tests run, is not counted)."""
    authenticator = make(**config)
    with caplog.at_level(logging.INFO, logger="titan.test"):
        caplog.clear()
        authenticator.check_allow_config()
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.funcName == "check_allow_config"]


def test_startup_says_plainly_when_nobody_can_log_in(caplog: pytest.LogCaptureFixture) -> None:
    ((level, message),) = startup_messages(caplog)
    assert level == logging.WARNING
    assert "no allow rule is configured, so NOBODY can log in" in message

    ((level, message),) = startup_messages(caplog, admin_team="acme:admins")
    assert level == logging.WARNING and "only admins can log in" in message

    ((level, message),) = startup_messages(caplog, allow_all=True)
    assert level == logging.WARNING and "EVERY GitHub account" in message

    ((level, message),) = startup_messages(caplog, allowed_organizations={"acme", "acme:ds"})
    assert level == logging.INFO
    assert message == "GitHub login allows: organizations/teams acme, acme:ds."


# --------------------------------------------------------------------------- refresh


class StubUser:
    """The part of JupyterHub's ``User`` that ``refresh_user`` reads."""

    def __init__(self, name: str, auth_state: dict[str, Any] | None) -> None:
        self.name = name
        self.auth_state = auth_state

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self.auth_state


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.add_user("alice", email="alice@titan.example", email_private=True)
    fake.add_org("titan-org")
    fake.add_team("titan-org", "data-science")
    fake.add_team_member("titan-org", "data-science", "alice")
    fake.register_app(CLIENT_ID, CLIENT_SECRET, CALLBACK)
    with fake:
        yield fake


def stored_state(github: FakeGitHub, login: str) -> dict[str, Any]:
    token = github.issue_token(login, CLIENT_ID, ["read:org", "user:email"])
    return {"access_token": token, "token_response": {"access_token": token, "token_type": "bearer",
                                                      "scope": "read:org,user:email"}}


@pytest.mark.asyncio
async def test_refresh_rechecks_the_token_teams_and_membership(github: FakeGitHub) -> None:
    assert github.url is not None
    authenticator = make(github_url=github.url, allowed_organizations={"titan-org"})
    user = StubUser("alice", stored_state(github, "alice"))

    model = await authenticator.refresh_user(user)
    assert model["name"] == "alice"
    assert model["groups"] == ["titan-org:data-science"]
    assert model["auth_state"]["scope"] == ["read:org", "user:email"]
    assert model["auth_state"]["github_user"]["email"] == "alice@titan.example"
    assert ("GET", "/api/v3/user") in github.requests

    github.remove_team_member("titan-org", "data-science", "alice")
    model = await authenticator.refresh_user(user)
    assert model["groups"] == []  # still an org member, no longer in the team

    github.remove_member("titan-org", "alice")
    assert await authenticator.refresh_user(user) is False  # no longer allowed: log in again


@pytest.mark.asyncio
async def test_refresh_with_a_revoked_token_asks_for_login(github: FakeGitHub,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    assert github.url is not None
    authenticator = make(github_url=github.url, allowed_organizations={"titan-org"})
    state = stored_state(github, "alice")
    github.revoke_token(state["access_token"])
    with caplog.at_level(logging.DEBUG):
        assert await authenticator.refresh_user(StubUser("alice", state)) is False
    assert state["access_token"] not in caplog.text
    assert await authenticator.refresh_user(StubUser("alice", None)) is False


# --------------------------------------------------------------------------- settings


def test_github_settings_get_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "titan.yaml"
    path.write_text(yaml.safe_dump({"hub": {"public_url": "https://titan.example.org/"},
                                    "auth": {"github": {"client_id": "id", "allowed_organizations": ["acme:ds"]}}}))
    settings = load_settings(path, environ={"OAUTH_CLIENT_SECRET": "from-env"})
    assert settings.github_configured
    assert settings.github == {
        "client_id": "id", "client_secret": "from-env", "url": "https://github.com",
        "callback_url": "https://titan.example.org/hub/oauth_callback", "allowed_organizations": ["acme:ds"],
        "allowed_users": [], "admin_team": "", "autosave_push": False, "refresh_age": 300,
    }


@pytest.mark.parametrize(("github", "where"), [
    ({"admin_team": "just-an-org"}, "auth.github.admin_team"),
    ({"allowed_organizations": ["acme:ds:extra"]}, "auth.github.allowed_organizations.0"),
    ({"url": "github.example.org"}, "auth.github.url"),
    ({"refresh_age": 0}, "auth.github.refresh_age"),
    ({"autosave_push": "yes"}, "auth.github.autosave_push"),
])
def test_bad_github_settings_are_refused_with_the_key(tmp_path: Path, github: dict[str, Any], where: str) -> None:
    path = tmp_path / "titan.yaml"
    path.write_text(yaml.safe_dump({"auth": {"github": github}}))
    with pytest.raises(SettingsError, match=re.escape(where)):
        load_settings(path, environ={})
