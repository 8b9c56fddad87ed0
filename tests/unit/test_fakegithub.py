"""Tests for the fake GitHub (Enterprise-shaped) server in ``tests/fakegithub``.

Everything goes over real HTTP on 127.0.0.1: ``requests`` for the protocol
tests, and oauthenticator's own ``GitHubOAuthenticator`` (17.4.0) for the
end-to-end hub login.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
from oauthenticator.github import GitHubOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler
from requests.utils import parse_header_links
from tornado.auth import OAuth2Mixin
from tornado.web import MissingArgumentError

from tests.fakegithub import FakeGitHub, FakeGitHubHandler

CLIENT_ID = "titan-hub-client"
CLIENT_SECRET = "titan-hub-secret"
CALLBACK = "http://127.0.0.1:8081/hub/oauth_callback"
SCOPES = "read:org user:email"
TIMEOUT = 10

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- fixtures & helpers


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.add_user("alice", name="Alice Liddell", email="alice@titan.example", email_private=True)
    fake.add_user("bob", name="Bob", email="bob@elsewhere.example")
    fake.add_user("carol", name="Carol", email="carol@titan.example")
    fake.add_user("erin")
    fake.add_org("titan-org")
    fake.add_org("other-org")
    fake.add_member("titan-org", "alice")  # concealed membership
    fake.add_member("titan-org", "carol", public=True)
    fake.add_team("titan-org", "data-science", name="Data Science")
    fake.add_team_member("titan-org", "data-science", "alice")
    for org, slug in [
        ("titan-org", "t1"),
        ("titan-org", "t2"),
        ("titan-org", "t3"),
        ("other-org", "t4"),
        ("other-org", "t5"),
    ]:
        fake.add_team(org, slug)
        fake.add_team_member(org, slug, "erin")
    fake.register_app(CLIENT_ID, CLIENT_SECRET, CALLBACK)
    fake.register_app("other-app", "other-secret", "http://127.0.0.1:9999/cb")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize(github: FakeGitHub, session: requests.Session | None = None, **params: str | None) -> requests.Response:
    query: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": SCOPES,
        "state": "st-" + secrets.token_hex(4),
        "response_type": "code",
    }
    query.update(params)
    sent = {k: v for k, v in query.items() if v is not None}
    getter = session.get if session is not None else requests.get
    return getter(f"{github.url}/login/oauth/authorize", params=sent, allow_redirects=False, timeout=TIMEOUT)


def redirect_params(resp: requests.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    return dict(parse_qsl(urlsplit(resp.headers["Location"]).query))


def exchange(github: FakeGitHub, code: str, verifier: str | None, **overrides: str | None) -> requests.Response:
    data: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "grant_type": "authorization_code",
    }
    data.update(overrides)
    return requests.post(
        f"{github.url}/login/oauth/access_token",
        data={k: v for k, v in data.items() if v is not None},
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    )


def code_for(github: FakeGitHub, login: str, scope: str = SCOPES) -> tuple[str, str]:
    github.next_login = login
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(github, code_challenge=challenge, code_challenge_method="S256", scope=scope))
    return params["code"], verifier


def login_token(github: FakeGitHub, login: str, scope: str = SCOPES) -> str:
    code, verifier = code_for(github, login, scope)
    body = exchange(github, code, verifier).json()
    return body["access_token"]


def api(github: FakeGitHub, path: str, token: str | None = None, scheme: str = "token", **kw: Any) -> requests.Response:
    headers = {"Accept": "application/vnd.github+json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return requests.get(f"{github.api_url}{path}", headers=headers, timeout=TIMEOUT, **kw)


def assert_token_error(resp: requests.Response, error: str) -> None:
    # GitHub answers token-endpoint errors with HTTP 200 and an error body.
    assert resp.status_code == 200
    body = resp.json()
    assert body["error"] == error
    assert body["error_description"]
    assert body["error_uri"].startswith("https://docs.github.com/")
    assert "access_token" not in body


# --------------------------------------------------------------------------- OAuth web flow


def test_code_flow_with_pkce_s256_issues_token(github: FakeGitHub) -> None:
    github.next_login = "alice"
    verifier, challenge = pkce_pair()
    resp = authorize(github, code_challenge=challenge, code_challenge_method="S256", state="xyz")
    location = resp.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    params = redirect_params(resp)
    assert params["state"] == "xyz"
    assert len(params["code"]) == 20

    token_resp = exchange(github, params["code"], verifier)
    assert token_resp.status_code == 200
    assert token_resp.headers["Content-Type"].startswith("application/json")
    body = token_resp.json()
    assert body["access_token"].startswith("gho_")
    assert len(body["access_token"]) == 40
    assert body["token_type"] == "bearer"
    assert body["scope"] == "read:org,user:email"  # comma-separated, like GitHub

    user = api(github, "/user", body["access_token"])
    assert user.status_code == 200
    assert user.json()["login"] == "alice"


def test_login_as_cookie_wins_over_next_login_and_nobody_gets_401(github: FakeGitHub) -> None:
    resp = authorize(github)
    assert resp.status_code == 401
    assert "Sign in" in resp.text

    github.next_login = "bob"
    with requests.Session() as browser:
        login = browser.get(f"{github.url}/fake/login-as/alice", timeout=TIMEOUT)
        assert login.status_code == 200
        code = redirect_params(authorize(github, session=browser, scope="read:user"))["code"]
    token = exchange(github, code, None).json()["access_token"]
    assert api(github, "/user", token).json()["login"] == "alice"

    # without the cookie, next_login decides
    code = redirect_params(authorize(github))["code"]
    token = exchange(github, code, None).json()["access_token"]
    assert api(github, "/user", token).json()["login"] == "bob"

    assert requests.get(f"{github.url}/fake/login-as/nobody", timeout=TIMEOUT).status_code == 404


def test_wrong_verifier_is_bad_verification_code_and_burns_code(github: FakeGitHub) -> None:
    code, verifier = code_for(github, "alice")
    other_verifier, _ = pkce_pair()
    assert_token_error(exchange(github, code, other_verifier), "bad_verification_code")
    # the code is single-use even when the attempt failed
    assert_token_error(exchange(github, code, verifier), "bad_verification_code")

    code, _ = code_for(github, "alice")
    assert_token_error(exchange(github, code, None), "bad_verification_code")  # verifier missing


def test_verifier_without_challenge_is_refused(github: FakeGitHub) -> None:
    github.next_login = "alice"
    code = redirect_params(authorize(github))["code"]
    verifier, _ = pkce_pair()
    assert_token_error(exchange(github, code, verifier), "bad_verification_code")


def test_reused_code_is_refused_and_revokes_first_token(github: FakeGitHub) -> None:
    code, verifier = code_for(github, "alice")
    first = exchange(github, code, verifier).json()
    assert "access_token" in first
    assert api(github, "/user", first["access_token"]).status_code == 200

    assert_token_error(exchange(github, code, verifier), "bad_verification_code")
    assert api(github, "/user", first["access_token"]).status_code == 401


def test_expired_code_is_refused(github: FakeGitHub) -> None:
    code, verifier = code_for(github, "alice")
    real_clock = github.clock
    github.clock = lambda: real_clock() + 601
    assert_token_error(exchange(github, code, verifier), "bad_verification_code")


def test_wrong_redirect_uri_is_rejected_at_authorize(github: FakeGitHub) -> None:
    github.next_login = "alice"
    for bad in (
        "http://evil.example/hub/oauth_callback",
        "http://127.0.0.1:8082/hub/oauth_callback",
        "http://127.0.0.1:8081/hub/oauth_callback2",
        "http://127.0.0.1:8081/hub/oauth_callback/../admin",
        "https://127.0.0.1:8081/hub/oauth_callback",
    ):
        resp = authorize(github, redirect_uri=bad, state="s1")
        assert resp.status_code == 302
        # GitHub sends the error to the *registered* callback, never to the requested one
        assert resp.headers["Location"].startswith(CALLBACK + "?")
        params = redirect_params(resp)
        assert params["error"] == "redirect_uri_mismatch"
        assert params["state"] == "s1"
        assert "code" not in params
    assert github.codes == {}

    # a sub-path of the registered callback is allowed (GitHub's rule) ...
    sub = CALLBACK + "/sub"
    resp = authorize(github, redirect_uri=sub)
    assert resp.headers["Location"].startswith(sub + "?")
    code = redirect_params(resp)["code"]
    # ... but the token request must then name the same redirect_uri
    assert_token_error(exchange(github, code, None), "redirect_uri_mismatch")

    # unknown client: GitHub shows a 404 page and redirects nowhere
    resp = authorize(github, client_id="nope")
    assert resp.status_code == 404
    assert "Location" not in resp.headers


def test_plain_or_missing_pkce_method_is_rejected(github: FakeGitHub) -> None:
    github.next_login = "alice"
    verifier, _ = pkce_pair()
    for method in ("plain", None):  # absent means plain per RFC 7636
        resp = authorize(github, code_challenge=verifier, code_challenge_method=method, state="s2")
        params = redirect_params(resp)
        assert params["error"] == "invalid_request"
        assert params["state"] == "s2"
        assert "code" not in params
    params = redirect_params(authorize(github, code_challenge="too-short", code_challenge_method="S256"))
    assert params["error"] == "invalid_request"
    assert github.codes == {}


def test_client_credentials_are_checked(github: FakeGitHub) -> None:
    code, verifier = code_for(github, "alice")
    assert_token_error(exchange(github, code, verifier, client_secret="wrong"), "incorrect_client_credentials")
    assert_token_error(exchange(github, code, verifier, client_secret=None), "incorrect_client_credentials")
    assert_token_error(
        exchange(github, code, verifier, client_id="other-app", client_secret="other-secret"),
        "bad_verification_code",  # a code is bound to the client it was issued to
    )

    # HTTP Basic credentials + JSON body; a bad Basic secret is refused too
    code, verifier = code_for(github, "alice")
    url = f"{github.url}/login/oauth/access_token"
    body = {"code": code, "code_verifier": verifier, "redirect_uri": CALLBACK}
    bad = requests.post(
        url, json=body, auth=(CLIENT_ID, "wrong"), headers={"Accept": "application/json"}, timeout=TIMEOUT
    )
    assert_token_error(bad, "incorrect_client_credentials")
    good = requests.post(
        url, json=body, auth=(CLIENT_ID, CLIENT_SECRET), headers={"Accept": "application/json"}, timeout=TIMEOUT
    )
    assert good.json()["access_token"].startswith("gho_")


def test_token_endpoint_answers_form_encoded_without_accept_json(github: FakeGitHub) -> None:
    code, verifier = code_for(github, "alice")
    resp = requests.post(
        f"{github.url}/login/oauth/access_token",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code, "code_verifier": verifier},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    body = parse_qs(resp.text)
    assert body["access_token"][0].startswith("gho_")
    assert body["token_type"] == ["bearer"]
    assert body["scope"] == ["read:org,user:email"]


def test_unknown_scopes_are_dropped(github: FakeGitHub) -> None:
    code, verifier = code_for(github, "alice", scope="read:org,bogus:scope user:email")
    assert exchange(github, code, verifier).json()["scope"] == "read:org,user:email"


# --------------------------------------------------------------------------- REST API


def test_user_requires_valid_token(github: FakeGitHub) -> None:
    anonymous = api(github, "/user")
    assert anonymous.status_code == 401
    assert anonymous.json()["message"] == "Requires authentication"

    bogus = api(github, "/user", "gho_" + "x" * 36)
    assert bogus.status_code == 401
    assert bogus.json() == {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}

    token = login_token(github, "alice")
    for scheme in ("token", "Bearer", "bearer"):
        resp = api(github, "/user", token, scheme=scheme)
        assert resp.status_code == 200
    body = resp.json()
    assert body["login"] == "alice"
    assert body["name"] == "Alice Liddell"
    assert body["email"] is None  # private email is not on /user
    assert isinstance(body["id"], int)
    assert body["avatar_url"].startswith(github.url)
    assert resp.headers["X-OAuth-Scopes"] == "read:org, user:email"

    assert api(github, "/user", github.issue_token("carol", CLIENT_ID)).json()["email"] == "carol@titan.example"

    assert github.revoke_token(token) is True
    revoked = api(github, "/user", token)
    assert revoked.status_code == 401
    assert revoked.json()["message"] == "Bad credentials"

    no_agent = requests.get(f"{github.api_url}/user", headers={"User-Agent": ""}, timeout=TIMEOUT)
    assert no_agent.status_code == 403


def test_user_emails_scope_gating_and_noreply(github: FakeGitHub) -> None:
    alice = github.get_user("alice")
    assert alice is not None
    no_scope = api(github, "/user/emails", github.issue_token("alice", CLIENT_ID, ["read:org", "read:user"]))
    assert no_scope.status_code == 404

    for scopes in (["user:email"], ["user"]):
        resp = api(github, "/user/emails", github.issue_token("alice", CLIENT_ID, scopes))
        assert resp.status_code == 200
        emails = resp.json()
        assert {"email": "alice@titan.example", "primary": True, "verified": True, "visibility": "private"} in emails
        assert {
            "email": f"{alice.id}+alice@users.noreply.github.com",
            "primary": False,
            "verified": True,
            "visibility": None,
        } in emails

    # a user without an email still has a (primary) noreply address
    erin_user = github.get_user("erin")
    assert erin_user is not None
    erin = api(github, "/user/emails", github.issue_token("erin", CLIENT_ID, ["user:email"])).json()
    assert [e["email"] for e in erin if e["primary"]] == [erin_user.noreply_email]


def test_user_teams_paginates_with_link_headers(github: FakeGitHub) -> None:
    token = github.issue_token("erin", CLIENT_ID, ["read:org"])
    url: str | None = f"{github.api_url}/user/teams?per_page=2"
    pages: list[list[dict[str, Any]]] = []
    link_headers: list[str] = []
    while url is not None:
        resp = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=TIMEOUT)
        assert resp.status_code == 200
        pages.append(resp.json())
        link_headers.append(resp.headers.get("Link", ""))
        links = {link["rel"]: link["url"] for link in parse_header_links(resp.headers["Link"])}
        url = links.get("next")
        assert len(pages) <= 3

    assert [len(p) for p in pages] == [2, 2, 1]
    teams = [t for p in pages for t in p]
    assert [(t["organization"]["login"], t["slug"]) for t in teams] == [
        ("titan-org", "t1"),
        ("titan-org", "t2"),
        ("titan-org", "t3"),
        ("other-org", "t4"),
        ("other-org", "t5"),
    ]
    assert all(t["name"] == t["slug"] for t in teams)

    first = {link["rel"]: link["url"] for link in parse_header_links(link_headers[0])}
    assert set(first) == {"next", "last"}
    assert first["next"] == f"{github.api_url}/user/teams?per_page=2&page=2"
    assert first["last"] == f"{github.api_url}/user/teams?per_page=2&page=3"
    last = {link["rel"]: link["url"] for link in parse_header_links(link_headers[2])}
    assert set(last) == {"prev", "first"}

    # one page, no Link header
    single = api(github, "/user/teams", token, params={"per_page": "100"})
    assert len(single.json()) == 5
    assert "Link" not in single.headers

    # read:org (or user/repo) is required
    denied = api(github, "/user/teams", github.issue_token("erin", CLIENT_ID, ["user:email"]))
    assert denied.status_code == 403


def test_user_orgs(github: FakeGitHub) -> None:
    orgs = api(github, "/user/orgs", github.issue_token("alice", CLIENT_ID, ["read:org"])).json()
    assert [o["login"] for o in orgs] == ["titan-org"]
    assert api(github, "/user/orgs", github.issue_token("alice", CLIENT_ID, [])).status_code == 403


def test_org_membership_check(github: FakeGitHub) -> None:
    member = github.issue_token("alice", CLIENT_ID, ["read:org"])
    assert api(github, "/orgs/titan-org/members/carol", member).status_code == 204
    assert api(github, "/orgs/titan-org/members/alice", member).status_code == 204
    assert api(github, "/orgs/TITAN-ORG/members/Alice", member).status_code == 204  # logins are case-insensitive
    assert api(github, "/orgs/titan-org/members/bob", member).status_code == 404
    assert api(github, "/orgs/titan-org/members/nobody", member).status_code == 404
    assert api(github, "/orgs/no-such-org/members/alice", member).status_code == 404

    # requester outside the org (or without read:org): GitHub redirects to public_members
    outsider = github.issue_token("bob", CLIENT_ID, ["read:org"])
    redirect = api(github, "/orgs/titan-org/members/alice", outsider, allow_redirects=False)
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == f"{github.api_url}/orgs/titan-org/public_members/alice"
    assert api(github, "/orgs/titan-org/members/alice", outsider).status_code == 404  # concealed
    assert api(github, "/orgs/titan-org/members/carol", outsider).status_code == 204  # public
    no_scope = github.issue_token("alice", CLIENT_ID, ["user:email"])
    assert api(github, "/orgs/titan-org/members/alice", no_scope, allow_redirects=False).status_code == 302

    github.remove_member("titan-org", "carol")
    assert api(github, "/orgs/titan-org/members/carol", member).status_code == 404


def test_team_membership(github: FakeGitHub) -> None:
    token = github.issue_token("carol", CLIENT_ID, ["read:org"])
    resp = api(github, "/orgs/titan-org/teams/data-science/memberships/alice", token)
    assert resp.status_code == 200
    assert resp.json()["state"] == "active"
    assert resp.json()["role"] == "member"
    assert api(github, "/orgs/titan-org/teams/data-science/memberships/carol", token).status_code == 404
    assert api(github, "/orgs/titan-org/teams/data-science/members/alice", token).status_code == 204
    assert api(github, "/orgs/titan-org/teams/data-science/members/carol", token).status_code == 404
    assert api(github, "/orgs/titan-org/teams/no-team/members/alice", token).status_code == 404

    members = api(github, "/orgs/titan-org/teams/data-science/members", token, params={"per_page": "1"})
    assert [m["login"] for m in members.json()] == ["alice"]

    # outsiders cannot see the team at all
    outsider = github.issue_token("bob", CLIENT_ID, ["read:org"])
    assert api(github, "/orgs/titan-org/teams/data-science/memberships/alice", outsider).status_code == 404

    github.remove_team_member("titan-org", "data-science", "alice")
    assert api(github, "/orgs/titan-org/teams/data-science/members/alice", token).status_code == 404


def test_token_check_and_revocation(github: FakeGitHub) -> None:
    token = login_token(github, "alice")
    url = f"{github.api_url}/applications/{CLIENT_ID}/token"

    check = requests.post(url, json={"access_token": token}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=TIMEOUT)
    assert check.status_code == 200
    info = check.json()
    assert info["token"] == token
    assert info["scopes"] == ["read:org", "user:email"]
    assert info["app"]["client_id"] == CLIENT_ID
    assert info["user"]["login"] == "alice"

    wrong_secret = requests.delete(url, json={"access_token": token}, auth=(CLIENT_ID, "nope"), timeout=TIMEOUT)
    assert wrong_secret.status_code == 401
    other_app = requests.delete(url, json={"access_token": token}, auth=("other-app", "other-secret"), timeout=TIMEOUT)
    assert other_app.status_code == 404
    missing = requests.delete(url, json={}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=TIMEOUT)
    assert missing.status_code == 422
    assert api(github, "/user", token).status_code == 200

    revoke = requests.delete(url, json={"access_token": token}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=TIMEOUT)
    assert revoke.status_code == 204
    assert api(github, "/user", token).status_code == 401
    again = requests.post(url, json={"access_token": token}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=TIMEOUT)
    assert again.status_code == 404


def test_request_log_and_unknown_api_routes(github: FakeGitHub) -> None:
    token = github.issue_token("alice", CLIENT_ID, ["read:org"])
    github.requests.clear()
    assert api(github, "/user", token).status_code == 200
    missing = api(github, "/no/such/endpoint", token)
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"
    assert github.requests == [("GET", "/api/v3/user"), ("GET", "/api/v3/no/such/endpoint")]
    assert github.request_log[0].headers["Authorization"] == f"token {token}"


class GitInfoRefsStub(FakeGitHubHandler):
    """Stands in for the later git smart-HTTP piece: token auth the way git sends it."""

    def get(self, owner: str, repo: str) -> None:
        token = self.fake.token_for_authorization(self.request.headers.get("Authorization"))
        if token is None:
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Basic realm="GitHub"')
            self.finish()
            return
        self.finish(f"{owner}/{repo} for {token.login}")


def test_extension_handlers_can_be_added(github: FakeGitHub) -> None:
    github.add_handlers([(r"/([^/]+)/([^/]+)\.git/info/refs", GitInfoRefsStub)])  # after start()
    token = github.issue_token("alice", CLIENT_ID, ["repo"])
    url = f"{github.url}/titan-org/notebooks.git/info/refs"
    assert requests.get(url, timeout=TIMEOUT).status_code == 401
    assert requests.get(url, auth=("x-access-token", "gho_bad"), timeout=TIMEOUT).status_code == 401
    resp = requests.get(url, auth=("x-access-token", token), timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.text == "titan-org/notebooks for alice"
    assert ("GET", "/titan-org/notebooks.git/info/refs") in github.requests

    # rules given before start() are served too
    fresh = FakeGitHub()
    fresh.add_handlers([(r"/([^/]+)/([^/]+)\.git/info/refs", GitInfoRefsStub)])
    with fresh:
        assert requests.get(f"{fresh.url}/o/r.git/info/refs", timeout=TIMEOUT).status_code == 401


# --------------------------------------------------------------------------- oauthenticator end to end


class LoginHandlerShim:
    """Runs oauthenticator's real ``OAuthLoginHandler.get`` without a Tornado app around it."""

    get = OAuthLoginHandler.get
    _generate_pkce_params = OAuthLoginHandler._generate_pkce_params
    _generate_state_id = OAuthLoginHandler._generate_state_id
    _get_next_url = OAuthLoginHandler._get_next_url
    authorize_redirect = OAuth2Mixin.authorize_redirect

    def __init__(self, authenticator: GitHubOAuthenticator) -> None:
        self.authenticator = authenticator
        self.log = log
        self.state_cookie: str | None = None
        self.redirect_url: str | None = None

    @property
    def _OAUTH_AUTHORIZE_URL(self) -> str:  # noqa: N802 - tornado's name
        return self.authenticator.authorize_url

    def get_argument(self, name: str, default: str | None = None) -> str | None:
        return default

    def set_state_cookie(self, value: str) -> None:
        self.state_cookie = value

    def redirect(self, url: str) -> None:
        self.redirect_url = url


_REQUIRED = object()


class CallbackHandlerShim:
    """What ``OAuthCallbackHandler`` exposes to ``authenticate``: arguments and the state cookie."""

    check_arguments = OAuthCallbackHandler.check_arguments
    check_error = OAuthCallbackHandler.check_error
    check_code = OAuthCallbackHandler.check_code
    check_state = OAuthCallbackHandler.check_state
    get_state_url = OAuthCallbackHandler.get_state_url

    def __init__(self, location: str, state_cookie: str) -> None:
        self.arguments = dict(parse_qsl(urlsplit(location).query))
        self._state_cookie = state_cookie
        self.log = log

    def get_argument(self, name: str, default: Any = _REQUIRED) -> Any:
        if name in self.arguments:
            return self.arguments[name]
        if default is _REQUIRED:
            raise MissingArgumentError(name)
        return default

    def get_state_cookie(self) -> str:
        return self._state_cookie


def make_authenticator(github: FakeGitHub, **config: Any) -> GitHubOAuthenticator:
    return GitHubOAuthenticator(
        github_url=github.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        oauth_callback_url=CALLBACK,
        scope=["read:org", "user:email"],
        populate_teams_in_auth_state=True,
        **config,
    )


async def hub_login(github: FakeGitHub, authenticator: GitHubOAuthenticator, login: str) -> dict[str, Any] | None:
    """The hub's /oauth_login -> GitHub authorize -> /oauth_callback -> login_user path."""
    github.next_login = login
    login_handler = LoginHandlerShim(authenticator)
    login_handler.get()
    assert login_handler.redirect_url is not None
    assert login_handler.state_cookie is not None
    assert login_handler.redirect_url.startswith(f"{github.url}/login/oauth/authorize?")
    sent = dict(parse_qsl(urlsplit(login_handler.redirect_url).query))
    assert sent["code_challenge_method"] == "S256"  # oauthenticator's PKCE is really exercised

    resp = await asyncio.to_thread(requests.get, login_handler.redirect_url, allow_redirects=False, timeout=TIMEOUT)
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(CALLBACK + "?")

    callback = CallbackHandlerShim(location, login_handler.state_cookie)
    callback.check_arguments()  # oauthenticator's own state/code/error checks
    return await authenticator.get_authenticated_user(callback, None)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("allowed", "member", "outsider"),
    [({"titan-org"}, "alice", "bob"), ({"titan-org:data-science"}, "alice", "carol")],
    ids=["org", "org-team"],
)
async def test_github_oauthenticator_end_to_end(
    github: FakeGitHub, allowed: set[str], member: str, outsider: str
) -> None:
    authenticator = make_authenticator(github, allowed_organizations=allowed)
    assert authenticator.authorize_url == f"{github.url}/login/oauth/authorize"
    assert authenticator.token_url == f"{github.url}/login/oauth/access_token"
    assert authenticator.userdata_url == f"{github.url}/api/v3/user"

    model = await hub_login(github, authenticator, member)
    assert model is not None
    assert model["name"] == member
    auth_state = model["auth_state"]
    token = auth_state["access_token"]
    assert token.startswith("gho_")
    assert auth_state["token_response"]["access_token"] == token
    assert auth_state["github_user"]["login"] == member
    assert {(t["organization"]["login"], t["slug"]) for t in auth_state["teams"]} == {("titan-org", "data-science")}
    active = github.active_token(token)
    assert active is not None
    assert active.login == member
    assert active.scopes == ["read:org", "user:email"]
    (org_team,) = allowed
    if ":" in org_team:
        assert ("GET", f"/api/v3/orgs/titan-org/teams/data-science/members/{member}") in github.requests
    else:
        assert ("GET", f"/api/v3/orgs/titan-org/members/{member}") in github.requests

    github.requests.clear()
    refused = await hub_login(github, authenticator, outsider)
    assert refused is None
    checked = [p for m, p in github.requests if p.startswith("/api/v3/orgs/")]
    assert checked, "the membership of the outsider must have been checked against the API"
    assert all(p.endswith(f"/{outsider}") for p in checked)


@pytest.mark.asyncio
async def test_oauthenticator_17_4_scope_quirk_and_user_emails(github: FakeGitHub) -> None:
    """oauthenticator 17.4.0 splits the token ``scope`` on spaces, but GitHub separates with commas.

    So ``auth_state["scope"]`` is one unsplit string and ``update_auth_model``
    never calls ``/user/emails``: a private email stays None.  A
    ``modify_auth_state_hook`` that re-splits the scopes makes it reach
    ``/user/emails``.  If this test starts failing, oauthenticator fixed it.
    """
    plain = make_authenticator(github, allowed_organizations={"titan-org"})
    model = await hub_login(github, plain, "alice")
    assert model is not None
    assert model["auth_state"]["scope"] == ["read:org,user:email"]
    assert model["auth_state"]["github_user"]["email"] is None
    assert ("GET", "/api/v3/user/emails") not in github.requests

    def split_scopes(authenticator: GitHubOAuthenticator, auth_state: dict[str, Any]) -> dict[str, Any]:
        auth_state["scope"] = [s for chunk in auth_state["scope"] for s in chunk.split(",") if s]
        return auth_state

    fixed = make_authenticator(github, allowed_organizations={"titan-org"}, modify_auth_state_hook=split_scopes)
    model = await hub_login(github, fixed, "alice")
    assert model is not None
    assert model["auth_state"]["scope"] == ["read:org", "user:email"]
    assert model["auth_state"]["github_user"]["email"] == "alice@titan.example"
    assert ("GET", "/api/v3/user/emails") in github.requests
