"""A GitHub-protocol peer for tests, shaped like GitHub Enterprise Server.

The server speaks the parts of GitHub's OAuth and REST protocols that
JupyterHub's ``GitHubOAuthenticator`` (oauthenticator 17.4.0) and Titan use:

* ``GET  /login/oauth/authorize`` and ``POST /login/oauth/access_token``
  (authorization-code grant, PKCE with ``S256`` only, GitHub's error shapes),
* the REST API under ``/api/v3`` (``/user``, ``/user/emails``, ``/user/teams``,
  ``/user/orgs``, org and team membership checks, app token check/revocation).

It is a protocol peer, not a bypass: bad client credentials, reused or expired
codes, mismatched redirect URIs, wrong PKCE verifiers, missing scopes, revoked
tokens and non-members are refused the way GitHub refuses them.

There is no human at the authorize endpoint, so the test picks who is "signed
in": the ``fake_github_user`` cookie (set by ``GET /fake/login-as/{login}``)
wins, then ``FakeGitHub.next_login``; with neither, the authorize endpoint
answers 401 with a small sign-in page.

Extension point: ``build_handlers`` returns the handler list and
``FakeGitHub.add_handlers`` lets another module (e.g. git smart HTTP under
``/{owner}/{repo}.git/...``) add its own rules; such handlers can subclass
``FakeGitHubHandler`` (which receives ``fake``) and authenticate with
``FakeGitHub.token_for_authorization``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import itertools
import json
import re
import secrets
import socket
import string
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote, urlencode, urlsplit

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest, url_concat
from tornado.netutil import bind_sockets
from tornado.web import Application, HTTPError, RequestHandler

API_PREFIX = "/api/v3"
LOGIN_COOKIE = "fake_github_user"
CODE_TTL_SECONDS = 600.0
DOCS_URL = "https://docs.github.com/rest"
TOKEN_ERRORS_DOC = (
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
)
AUTHORIZE_ERRORS_DOC = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100

# OAuth app scopes GitHub knows; unknown requested scopes are dropped like GitHub does.
KNOWN_SCOPES: frozenset[str] = frozenset(
    {
        "repo", "repo:status", "repo_deployment", "public_repo", "repo:invite", "security_events",
        "admin:repo_hook", "write:repo_hook", "read:repo_hook",
        "admin:org", "write:org", "read:org",
        "admin:public_key", "write:public_key", "read:public_key",
        "admin:org_hook", "gist", "notifications",
        "user", "read:user", "user:email", "user:follow",
        "project", "read:project", "delete_repo",
        "write:packages", "read:packages", "delete:packages",
        "admin:gpg_key", "write:gpg_key", "read:gpg_key",
        "admin:ssh_signing_key", "write:ssh_signing_key", "read:ssh_signing_key",
        "codespace", "workflow", "write:discussion", "read:discussion",
        "admin:enterprise", "manage_runners:enterprise", "manage_billing:enterprise", "read:enterprise",
        "audit_log", "read:audit_log", "copilot", "site_admin",
    }
)  # fmt: skip

# Parent scope -> scopes it grants (GitHub's scope hierarchy).
SCOPE_IMPLIES: dict[str, frozenset[str]] = {
    "repo": frozenset({"repo:status", "repo_deployment", "public_repo", "repo:invite", "security_events"}),
    "admin:repo_hook": frozenset({"write:repo_hook", "read:repo_hook"}),
    "write:repo_hook": frozenset({"read:repo_hook"}),
    "admin:org": frozenset({"write:org", "read:org"}),
    "write:org": frozenset({"read:org"}),
    "admin:public_key": frozenset({"write:public_key", "read:public_key"}),
    "write:public_key": frozenset({"read:public_key"}),
    "user": frozenset({"read:user", "user:email", "user:follow"}),
    "project": frozenset({"read:project"}),
    "write:packages": frozenset({"read:packages"}),
    "admin:gpg_key": frozenset({"write:gpg_key", "read:gpg_key"}),
    "write:gpg_key": frozenset({"read:gpg_key"}),
    "admin:ssh_signing_key": frozenset({"write:ssh_signing_key", "read:ssh_signing_key"}),
    "write:ssh_signing_key": frozenset({"read:ssh_signing_key"}),
    "write:discussion": frozenset({"read:discussion"}),
    "admin:enterprise": frozenset({"manage_runners:enterprise", "manage_billing:enterprise", "read:enterprise"}),
    "audit_log": frozenset({"read:audit_log"}),
}

_LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_TOKEN_ALPHABET = string.ascii_letters + string.digits


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Return ``scopes`` plus every scope they imply (``user`` -> ``user:email`` ...)."""
    result: set[str] = set()
    pending = list(scopes)
    while pending:
        scope = pending.pop()
        if scope not in result:
            result.add(scope)
            pending.extend(SCOPE_IMPLIES.get(scope, ()))
    return frozenset(result)


def parse_scope_param(value: str | None) -> list[str]:
    """Parse an authorize ``scope`` parameter (space- or comma-separated), dropping unknown scopes."""
    seen: list[str] = []
    for scope in re.split(r"[\s,]+", value or ""):
        if scope in KNOWN_SCOPES and scope not in seen:
            seen.append(scope)
    return seen


def pkce_s256(verifier: str) -> str:
    """The RFC 7636 S256 code challenge for ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"04:{kind}{ident}".encode()).decode("ascii")


# --------------------------------------------------------------------------- model


@dataclass
class User:
    login: str
    id: int
    name: str | None = None
    email: str | None = None
    email_private: bool = False
    created_at: float = field(default_factory=time.time)

    @property
    def noreply_email(self) -> str:
        return f"{self.id}+{self.login}@users.noreply.github.com"

    @property
    def public_email(self) -> str | None:
        return None if self.email_private else self.email


@dataclass
class Team:
    slug: str
    name: str
    id: int
    org: str
    members: dict[str, str] = field(default_factory=dict)  # lower(login) -> "member" | "maintainer"
    created_at: float = field(default_factory=time.time)


@dataclass
class Org:
    login: str
    id: int
    members: dict[str, bool] = field(default_factory=dict)  # lower(login) -> public membership?
    teams: dict[str, Team] = field(default_factory=dict)  # slug -> team
    created_at: float = field(default_factory=time.time)


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    redirect_uri: str
    name: str


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    login: str
    redirect_uri: str
    scopes: list[str]
    code_challenge: str | None
    expires_at: float
    used: bool = False
    token: str | None = None


@dataclass
class Token:
    token: str
    id: int
    login: str
    client_id: str
    scopes: list[str]
    created_at: float
    revoked: bool = False

    @property
    def effective_scopes(self) -> frozenset[str]:
        return expand_scopes(self.scopes)

    def has_any_scope(self, *scopes: str) -> bool:
        return bool(self.effective_scopes.intersection(scopes))


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]


HandlerRule = tuple[Any, ...]


class FakeGitHub:
    """In-memory GitHub state plus an HTTP server on 127.0.0.1 serving it.

    Seed it, ``start()`` it (or use it as a context manager), point clients at
    ``url`` (``github_url``) / ``api_url``, and ``stop()`` it.  All methods are
    safe to call from the test thread while the server thread is running.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.orgs: dict[str, Org] = {}
        self.apps: dict[str, OAuthApp] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: dict[str, Token] = {}
        #: Who the authorize endpoint treats as signed in when no login cookie is sent.
        self.next_login: str | None = None
        #: When true, the authorize endpoint answers as if the user clicked "Cancel".
        self.deny_authorization = False
        #: (method, path) of every request received, in order.
        self.requests: list[tuple[str, str]] = []
        #: Same requests with query string and headers.
        self.request_log: list[RecordedRequest] = []
        #: Time source for code expiry; tests may replace it.
        self.clock: Callable[[], float] = time.time
        self.url: str | None = None
        self._ids = itertools.count(1001)
        self._extra_handlers: list[HandlerRule] = []
        self._app: Application | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    # ------------------------------------------------------------------ seeding

    def _next_id(self) -> int:
        return next(self._ids)

    def add_user(
        self,
        login: str,
        name: str | None = None,
        email: str | None = None,
        email_private: bool = False,
        id: int | None = None,  # noqa: A002 - mirrors GitHub's field name
    ) -> User:
        if not _LOGIN_RE.match(login):
            raise ValueError(f"invalid GitHub login {login!r}")
        with self.lock:
            key = login.lower()
            if key in self.users or key in self.orgs:
                raise ValueError(f"login {login!r} is already taken")
            user = User(
                login=login,
                id=id if id is not None else self._next_id(),
                name=name,
                email=email,
                email_private=email_private,
                created_at=self.clock(),
            )
            self.users[key] = user
            return user

    def add_org(self, org: str) -> Org:
        if not _LOGIN_RE.match(org):
            raise ValueError(f"invalid organization name {org!r}")
        with self.lock:
            key = org.lower()
            if key in self.users or key in self.orgs:
                raise ValueError(f"login {org!r} is already taken")
            obj = Org(login=org, id=self._next_id(), created_at=self.clock())
            self.orgs[key] = obj
            return obj

    def add_member(self, org: str, login: str, public: bool = False) -> None:
        """Make ``login`` a member of ``org``; ``public`` publicizes the membership."""
        with self.lock:
            self._org(org).members[self._user(login).login.lower()] = public

    def remove_member(self, org: str, login: str) -> None:
        with self.lock:
            org_obj = self._org(org)
            key = login.lower()
            org_obj.members.pop(key, None)
            for team in org_obj.teams.values():
                team.members.pop(key, None)

    def add_team(self, org: str, team_slug: str, name: str | None = None) -> Team:
        if not _SLUG_RE.match(team_slug):
            raise ValueError(f"invalid team slug {team_slug!r}")
        with self.lock:
            org_obj = self._org(org)
            if team_slug in org_obj.teams:
                raise ValueError(f"team {org}/{team_slug} already exists")
            team = Team(
                slug=team_slug,
                name=name or team_slug,
                id=self._next_id(),
                org=org_obj.login,
                created_at=self.clock(),
            )
            org_obj.teams[team_slug] = team
            return team

    def add_team_member(self, org: str, team_slug: str, login: str, role: str = "member") -> None:
        """Add ``login`` to a team; like GitHub, a team member is always an org member."""
        if role not in ("member", "maintainer"):
            raise ValueError(f"invalid team role {role!r}")
        with self.lock:
            team = self._team(org, team_slug)
            key = self._user(login).login.lower()
            self._org(org).members.setdefault(key, False)
            team.members[key] = role

    def remove_team_member(self, org: str, team_slug: str, login: str) -> None:
        with self.lock:
            self._team(org, team_slug).members.pop(login.lower(), None)

    def register_app(self, client_id: str, client_secret: str, redirect_uri: str, name: str | None = None) -> OAuthApp:
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"callback URL must be an absolute http(s) URL: {redirect_uri!r}")
        with self.lock:
            app = OAuthApp(client_id, client_secret, redirect_uri, name or client_id)
            self.apps[client_id] = app
            return app

    def issue_token(self, login: str, client_id: str, scopes: Iterable[str] = ()) -> str:
        """Mint an access token as if ``login`` had authorized ``client_id`` for ``scopes``."""
        scope_list = list(dict.fromkeys(scopes))
        unknown = [s for s in scope_list if s not in KNOWN_SCOPES]
        if unknown:
            raise ValueError(f"unknown GitHub scopes: {unknown}")
        with self.lock:
            user = self._user(login)
            if client_id not in self.apps:
                raise KeyError(f"no OAuth app registered with client_id {client_id!r}")
            value = "gho_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
            self.tokens[value] = Token(
                token=value,
                id=self._next_id(),
                login=user.login,
                client_id=client_id,
                scopes=scope_list,
                created_at=self.clock(),
            )
            return value

    def revoke_token(self, token: str) -> bool:
        """Revoke ``token``; returns whether an active token was revoked."""
        with self.lock:
            tok = self.tokens.get(token)
            if tok is None or tok.revoked:
                return False
            tok.revoked = True
            return True

    # ------------------------------------------------------------------ lookups

    def _user(self, login: str) -> User:
        try:
            return self.users[login.lower()]
        except KeyError:
            raise KeyError(f"no such user {login!r}") from None

    def _org(self, org: str) -> Org:
        try:
            return self.orgs[org.lower()]
        except KeyError:
            raise KeyError(f"no such organization {org!r}") from None

    def _team(self, org: str, team_slug: str) -> Team:
        try:
            return self._org(org).teams[team_slug.lower()]
        except KeyError:
            raise KeyError(f"no such team {org}/{team_slug}") from None

    def get_user(self, login: str) -> User | None:
        return self.users.get(login.lower())

    def get_org(self, org: str) -> Org | None:
        return self.orgs.get(org.lower())

    def get_team(self, org: str, team_slug: str) -> Team | None:
        org_obj = self.get_org(org)
        return None if org_obj is None else org_obj.teams.get(team_slug.lower())

    def active_token(self, token: str) -> Token | None:
        """The token record if ``token`` exists, is not revoked and its user still exists."""
        with self.lock:
            tok = self.tokens.get(token)
            if tok is None or tok.revoked or tok.login.lower() not in self.users:
                return None
            return tok

    def token_for_authorization(self, header: str | None) -> Token | None:
        """Resolve an ``Authorization`` header the way GitHub does for OAuth tokens.

        Accepts ``token X``, ``Bearer X`` and HTTP Basic where the password (or,
        with password ``x-oauth-basic``/empty, the username) is the token, which
        is what git over HTTPS sends.  Returns None when missing or invalid.
        """
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme in ("token", "bearer"):
            return self.active_token(value) if value else None
        if scheme == "basic":
            creds = _decode_basic(value)
            if creds is None:
                return None
            username, password = creds
            if password and password != "x-oauth-basic":
                return self.active_token(password)
            return self.active_token(username) if username else None
        return None

    def orgs_of(self, login: str) -> list[Org]:
        key = login.lower()
        return [o for o in self.orgs.values() if key in o.members]

    def teams_of(self, login: str) -> list[Team]:
        key = login.lower()
        return [t for o in self.orgs.values() for t in o.teams.values() if key in t.members]

    # ------------------------------------------------------------------ server

    @property
    def api_url(self) -> str:
        if self.url is None:
            raise RuntimeError("FakeGitHub is not started")
        return self.url + API_PREFIX

    def add_handlers(self, rules: Sequence[HandlerRule]) -> None:
        """Add tornado rules ``(pattern, handler_class[, kwargs])`` served before the defaults.

        Handlers subclassing ``FakeGitHubHandler`` get ``fake=self`` injected.
        May be called before or after ``start()``.
        """
        prepared = [_inject_fake(rule, self) for rule in rules]
        with self.lock:
            self._extra_handlers.extend(prepared)
            if self._app is not None:
                self._app.add_handlers(r".*", prepared)

    def start(self) -> str:
        """Serve on 127.0.0.1 at a free port from a background thread; returns the base URL."""
        if self._thread is not None:
            raise RuntimeError("FakeGitHub already started")
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        with self.lock:
            self._app = make_app(self, self._extra_handlers)
        app = self._app
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve(app, sockets, ready))
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name=f"fake-github-{port}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            self._thread = None
            for sock in sockets:
                sock.close()
            raise RuntimeError(f"fake GitHub failed to start: {errors!r}")
        return self.url

    async def _serve(self, app: Application, sockets: list[socket.socket], ready: threading.Event) -> None:
        server = HTTPServer(app)
        server.add_sockets(sockets)
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.stop()
            await server.close_all_connections()

    def stop(self) -> None:
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        thread.join(10)
        self._thread = None
        self._loop = None
        self._stop_event = None
        self._app = None

    def __enter__(self) -> FakeGitHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, request: HTTPServerRequest) -> None:
        self.requests.append((request.method or "", request.path))
        self.request_log.append(
            RecordedRequest(request.method or "", request.path, request.query, dict(request.headers.items()))
        )


def _decode_basic(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    return username, password


def _inject_fake(rule: HandlerRule, fake: FakeGitHub) -> HandlerRule:
    if len(rule) >= 2 and isinstance(rule[1], type) and issubclass(rule[1], FakeGitHubHandler):
        kwargs = dict(rule[2]) if len(rule) > 2 else {}
        kwargs.setdefault("fake", fake)
        return (rule[0], rule[1], kwargs, *rule[3:])
    return rule


# --------------------------------------------------------------------------- handlers

F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """Run a handler method while holding the model lock (the test thread may mutate it)."""

    @functools.wraps(method)
    def wrapper(self: FakeGitHubHandler, *args: Any, **kwargs: Any) -> Any:
        with self.fake.lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class FakeGitHubHandler(RequestHandler):
    """Base for every fake GitHub handler (and for handlers added by extensions)."""

    fake: FakeGitHub

    def initialize(self, fake: FakeGitHub) -> None:
        self.fake = fake

    def set_default_headers(self) -> None:
        self.set_header("Server", "GitHub.com")
        self.set_header("X-GitHub-Request-Id", secrets.token_hex(8).upper())

    @property
    def base_url(self) -> str:
        return f"{self.request.protocol}://{self.request.host}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    def check_xsrf_cookie(self) -> None:  # GitHub's endpoints take no XSRF token
        return


class NotFoundPageHandler(FakeGitHubHandler):
    def prepare(self) -> None:
        raise HTTPError(404)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(f"<!DOCTYPE html><title>{status_code}</title><h1>{status_code} - {self._reason}</h1>")


# ----------------------------------------------------------------- OAuth (web flow)


def redirect_uri_allowed(registered: str, requested: str) -> bool:
    """GitHub's rule: same scheme, host and port; path equal to or below the registered one."""
    reg, req = urlsplit(registered), urlsplit(requested)
    if (reg.scheme.lower(), reg.netloc.lower()) != (req.scheme.lower(), req.netloc.lower()) or req.fragment:
        return False
    if any(seg in (".", "..") for seg in unquote(req.path).split("/")):
        return False
    reg_path, req_path = reg.path.rstrip("/"), req.path.rstrip("/")
    return req_path == reg_path or req_path.startswith(reg_path + "/")


class AuthorizeHandler(FakeGitHubHandler):
    """``GET /login/oauth/authorize``: signs in the chosen user and redirects back with a code."""

    def _redirect_error(self, target: str, error: str, description: str, state: str | None) -> None:
        params = {
            "error": error,
            "error_description": description,
            "error_uri": AUTHORIZE_ERRORS_DOC + "#" + error.replace("_", "-"),
        }
        if state is not None:
            params["state"] = state
        self.redirect(url_concat(target, params))

    def _signed_in_login(self) -> str | None:
        """The session cookie wins, then ``FakeGitHub.next_login``; unknown logins are ignored."""
        for candidate in (self.get_cookie(LOGIN_COOKIE), self.fake.next_login):
            user = self.fake.get_user(candidate) if candidate else None
            if user is not None:
                return user.login
        return None

    @locked
    def get(self) -> None:
        fake = self.fake
        client_id = self.get_query_argument("client_id", None)
        app = fake.apps.get(client_id or "")
        if app is None:
            self.set_status(404)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish("<!DOCTYPE html><title>Not Found</title><h1>404 - Not Found</h1>")
            return
        state = self.get_query_argument("state", None)
        requested_redirect = self.get_query_argument("redirect_uri", None)
        if requested_redirect is not None and not redirect_uri_allowed(app.redirect_uri, requested_redirect):
            self._redirect_error(
                app.redirect_uri,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                state,
            )
            return
        target = requested_redirect or app.redirect_uri

        response_type = self.get_query_argument("response_type", None)
        if response_type not in (None, "code"):
            self._redirect_error(target, "unsupported_response_type", "Only response_type=code is supported.", state)
            return

        challenge = self.get_query_argument("code_challenge", None)
        method = self.get_query_argument("code_challenge_method", None)
        if challenge is None and method is not None:
            self._redirect_error(target, "invalid_request", "code_challenge is required.", state)
            return
        if challenge is not None:
            if method != "S256":  # absent means "plain" (RFC 7636 4.3); GitHub accepts only S256
                self._redirect_error(
                    target, "invalid_request", "Only the S256 code_challenge_method is supported.", state
                )
                return
            if not _CHALLENGE_RE.match(challenge):
                self._redirect_error(target, "invalid_request", "code_challenge is malformed.", state)
                return

        login = self._signed_in_login()
        if login is None:
            self.set_status(401)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(
                "<!DOCTYPE html><title>Sign in to GitHub</title><h1>Sign in to GitHub</h1>"
                "<p>fake GitHub: nobody is signed in. Visit <code>/fake/login-as/LOGIN</code> "
                "or set <code>FakeGitHub.next_login</code>.</p>"
            )
            return
        if fake.deny_authorization:
            self._redirect_error(target, "access_denied", "The user has denied your application access.", state)
            return

        code = secrets.token_hex(10)
        fake.codes[code] = AuthorizationCode(
            code=code,
            client_id=app.client_id,
            login=login,
            redirect_uri=target,
            scopes=parse_scope_param(self.get_query_argument("scope", None)),
            code_challenge=challenge,
            expires_at=fake.clock() + CODE_TTL_SECONDS,
        )
        params = {"code": code}
        if state is not None:
            params["state"] = state
        self.redirect(url_concat(target, params))


class LoginAsHandler(FakeGitHubHandler):
    """``GET /fake/login-as/{login}``: set the browser session cookie for the authorize endpoint."""

    @locked
    def get(self, login: str) -> None:
        user = self.fake.get_user(login)
        if user is None:
            raise HTTPError(404)
        self.set_cookie(LOGIN_COOKIE, user.login, path="/", httponly=True)
        next_url = self.get_query_argument("next", None)
        if next_url and next_url.startswith("/") and not next_url.startswith("//"):
            self.redirect(next_url)
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"signed in as {user.login}\n")


class LogoutHandler(FakeGitHubHandler):
    def get(self) -> None:
        self.clear_cookie(LOGIN_COOKIE, path="/")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("signed out\n")


class AccessTokenHandler(FakeGitHubHandler):
    """``POST /login/oauth/access_token``: exchange a code; errors are HTTP 200 like GitHub's."""

    _DESCRIPTIONS = {
        "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
        "bad_verification_code": "The code passed is incorrect or expired.",
        "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this application.",
        "unsupported_grant_type": "The grant type is not supported.",
    }

    def _params(self) -> dict[str, str]:
        params = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                body = {}
            if isinstance(body, dict):
                params.update({str(k): str(v) for k, v in body.items() if v is not None})
        else:
            params.update({k: self.get_body_argument(k) for k in self.request.body_arguments})
        return params

    def _respond(self, payload: dict[str, str]) -> None:
        if "application/json" in self.request.headers.get("Accept", ""):
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps(payload))
        else:
            self.set_header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
            self.finish(urlencode(payload))

    def _error(self, error: str) -> None:
        self._respond(
            {
                "error": error,
                "error_description": self._DESCRIPTIONS[error],
                "error_uri": TOKEN_ERRORS_DOC + "#" + error.replace("_", "-"),
            }
        )

    def _client_credentials(self, params: dict[str, str]) -> tuple[str, str] | None:
        body_creds = (params.get("client_id"), params.get("client_secret"))
        header = self.request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            creds = _decode_basic(header[6:])
            if creds is None:
                return None
            basic = (unquote(creds[0].replace("+", " ")), unquote(creds[1].replace("+", " ")))
            if body_creds[0] is not None and body_creds[0] != basic[0]:
                return None
            if body_creds[1] is not None and body_creds[1] != basic[1]:
                return None
            return basic
        if body_creds[0] is None or body_creds[1] is None:
            return None
        return body_creds[0], body_creds[1]

    @locked
    def post(self) -> None:
        fake = self.fake
        params = self._params()
        creds = self._client_credentials(params)
        app = fake.apps.get(creds[0]) if creds else None
        if creds is None or app is None or not hmac.compare_digest(app.client_secret, creds[1]):
            self._error("incorrect_client_credentials")
            return
        if params.get("grant_type", "authorization_code") != "authorization_code":
            self._error("unsupported_grant_type")
            return
        code = fake.codes.get(params.get("code", ""))
        if code is None or code.client_id != app.client_id:
            self._error("bad_verification_code")
            return
        if code.used:
            # RFC 6749 4.1.2: a replayed code revokes what it was exchanged for.
            if code.token:
                fake.revoke_token(code.token)
            self._error("bad_verification_code")
            return
        code.used = True  # any attempt by the right client burns the code
        if fake.clock() >= code.expires_at:
            self._error("bad_verification_code")
            return
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is not None and redirect_uri != code.redirect_uri:
            self._error("redirect_uri_mismatch")
            return
        verifier = params.get("code_verifier")
        if code.code_challenge is not None:
            if (
                verifier is None
                or not _VERIFIER_RE.match(verifier)
                or not hmac.compare_digest(pkce_s256(verifier), code.code_challenge)
            ):
                self._error("bad_verification_code")
                return
        elif verifier is not None:
            # PKCE downgrade protection: a verifier without a challenge is refused.
            self._error("bad_verification_code")
            return
        if fake.get_user(code.login) is None:
            self._error("bad_verification_code")
            return
        token = fake.issue_token(code.login, app.client_id, code.scopes)
        code.token = token
        self._respond({"access_token": token, "token_type": "bearer", "scope": ",".join(code.scopes)})


# ----------------------------------------------------------------- REST API


class APIError(HTTPError):
    def __init__(self, status_code: int, message: str, **extra: Any) -> None:
        super().__init__(status_code, reason=None)
        self.message = message
        self.extra = extra


def user_json(user: User, handler: FakeGitHubHandler, full: bool = False) -> dict[str, Any]:
    api, base = handler.api_base, handler.base_url
    data: dict[str, Any] = {
        "login": user.login,
        "id": user.id,
        "node_id": _node_id("User", user.id),
        "avatar_url": f"{base}/avatars/u/{user.id}",
        "gravatar_id": "",
        "url": f"{api}/users/{user.login}",
        "html_url": f"{base}/{user.login}",
        "followers_url": f"{api}/users/{user.login}/followers",
        "organizations_url": f"{api}/users/{user.login}/orgs",
        "repos_url": f"{api}/users/{user.login}/repos",
        "type": "User",
        "site_admin": False,
    }
    if full:
        data.update(
            {
                "name": user.name,
                "company": None,
                "blog": "",
                "location": None,
                "email": user.public_email,
                "hireable": None,
                "bio": None,
                "twitter_username": None,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": _now_iso(user.created_at),
                "updated_at": _now_iso(user.created_at),
            }
        )
    return data


def org_json(org: Org, handler: FakeGitHubHandler) -> dict[str, Any]:
    api, base = handler.api_base, handler.base_url
    return {
        "login": org.login,
        "id": org.id,
        "node_id": _node_id("Organization", org.id),
        "url": f"{api}/orgs/{org.login}",
        "repos_url": f"{api}/orgs/{org.login}/repos",
        "events_url": f"{api}/orgs/{org.login}/events",
        "hooks_url": f"{api}/orgs/{org.login}/hooks",
        "issues_url": f"{api}/orgs/{org.login}/issues",
        "members_url": f"{api}/orgs/{org.login}/members{{/member}}",
        "public_members_url": f"{api}/orgs/{org.login}/public_members{{/member}}",
        "avatar_url": f"{base}/avatars/u/{org.id}",
        "description": None,
    }


def team_json(team: Team, handler: FakeGitHubHandler, with_org: bool = False) -> dict[str, Any]:
    api, base = handler.api_base, handler.base_url
    org = handler.fake.get_org(team.org)
    assert org is not None
    data: dict[str, Any] = {
        "name": team.name,
        "id": team.id,
        "node_id": _node_id("Team", team.id),
        "slug": team.slug,
        "description": None,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "url": f"{api}/organizations/{org.id}/team/{team.id}",
        "html_url": f"{base}/orgs/{org.login}/teams/{team.slug}",
        "members_url": f"{api}/organizations/{org.id}/team/{team.id}/members{{/member}}",
        "repositories_url": f"{api}/organizations/{org.id}/team/{team.id}/repos",
        "permission": "pull",
        "parent": None,
    }
    if with_org:
        data.update(
            {
                "members_count": len(team.members),
                "repos_count": 0,
                "created_at": _now_iso(team.created_at),
                "updated_at": _now_iso(team.created_at),
                "organization": org_json(org, handler),
            }
        )
    return data


class APIHandler(FakeGitHubHandler):
    """Base for ``/api/v3`` handlers: token auth, JSON errors, pagination."""

    #: Endpoints GitHub serves anonymously (bad credentials are still refused).
    auth_optional = False
    #: Value of ``X-Accepted-OAuth-Scopes``.
    accepted_scopes: tuple[str, ...] = ()
    token: Token | None = None

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("X-GitHub-Media-Type", "github.v3; format=json")
        self.set_header("X-GitHub-Enterprise-Version", "3.14.0")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any]
        if isinstance(exc, APIError):
            body = {"message": exc.message, **exc.extra, "documentation_url": DOCS_URL}
        else:
            body = {"message": self._reason, "documentation_url": DOCS_URL}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    @locked
    def prepare(self) -> None:
        if not self.request.headers.get("User-Agent"):
            raise APIError(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
            )
        header = self.request.headers.get("Authorization")
        self.token = self.fake.token_for_authorization(header)
        if self.token is None and header:
            raise APIError(401, "Bad credentials")
        if self.token is None and not self.auth_optional:
            raise APIError(401, "Requires authentication")
        if self.token is not None:
            self.set_header("X-OAuth-Scopes", ", ".join(self.token.scopes))
            self.set_header("X-Accepted-OAuth-Scopes", ", ".join(self.accepted_scopes))

    # helpers --------------------------------------------------------------

    @property
    def me(self) -> User:
        assert self.token is not None
        user = self.fake.get_user(self.token.login)
        assert user is not None
        return user

    def not_found(self) -> APIError:
        return APIError(404, "Not Found")

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    def no_content(self) -> None:
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    def sees_private_membership(self, org: Org) -> bool:
        """GitHub shows concealed members to org members whose token has ``read:org``."""
        return (
            self.token is not None and self.token.login.lower() in org.members and self.token.has_any_scope("read:org")
        )

    def paginate(self, items: Sequence[Any]) -> list[Any]:
        """Slice ``items`` per ``page``/``per_page`` and emit GitHub's RFC 8288 ``Link`` header."""

        def int_arg(name: str, default: int) -> int:
            try:
                return int(self.get_query_argument(name, str(default)))
            except ValueError:
                return default

        per_page = int_arg("per_page", DEFAULT_PER_PAGE)
        per_page = DEFAULT_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE)
        page = max(int_arg("page", 1), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        other = [
            (k, v.decode("utf-8", "replace"))
            for k, values in self.request.query_arguments.items()
            if k not in ("page", "per_page")
            for v in values
        ]

        def link(target: int) -> str:
            query = urlencode([*other, ("per_page", str(per_page)), ("page", str(target))])
            return f"<{self.base_url}{self.request.path}?{query}>"

        links = []
        if page > 1:
            links.append(f'{link(min(page - 1, last))}; rel="prev"')
        if page < last:
            links.append(f'{link(page + 1)}; rel="next"')
            links.append(f'{link(last)}; rel="last"')
        if page > 1:
            links.append(f'{link(1)}; rel="first"')
        if links:
            self.set_header("Link", ", ".join(links))
        start = (page - 1) * per_page
        return list(items[start : start + per_page])


class UserHandler(APIHandler):
    @locked
    def get(self) -> None:
        data = user_json(self.me, self, full=True)
        if self.token is not None and self.token.has_any_scope("user"):
            data.update({"private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0,
                         "two_factor_authentication": False})  # fmt: skip
        self.write_json(data)


class UserEmailsHandler(APIHandler):
    accepted_scopes = ("user", "user:email")

    @locked
    def get(self) -> None:
        assert self.token is not None
        if not self.token.has_any_scope("user:email"):
            raise self.not_found()
        user = self.me
        emails: list[dict[str, Any]] = []
        if user.email:
            emails.append(
                {
                    "email": user.email,
                    "primary": True,
                    "verified": True,
                    "visibility": "private" if user.email_private else "public",
                }
            )
        emails.append({"email": user.noreply_email, "primary": not user.email, "verified": True, "visibility": None})
        self.write_json(self.paginate(emails))


class UserTeamsHandler(APIHandler):
    accepted_scopes = ("read:org", "repo", "user", "write:org")

    @locked
    def get(self) -> None:
        assert self.token is not None
        if not self.token.has_any_scope("read:org", "repo", "user"):
            raise APIError(403, "You need at least read:org scope or user scope to list your teams.")
        teams = self.fake.teams_of(self.me.login)
        self.write_json([team_json(t, self, with_org=True) for t in self.paginate(teams)])


class UserOrgsHandler(APIHandler):
    accepted_scopes = ("admin:org", "read:org", "repo", "user", "write:org")

    @locked
    def get(self) -> None:
        assert self.token is not None
        if not self.token.has_any_scope("read:org", "user"):
            raise APIError(403, "You need at least read:org scope or user scope to list your organizations.")
        orgs = self.fake.orgs_of(self.me.login)
        self.write_json([org_json(o, self) for o in self.paginate(orgs)])


class UserOrgMembershipHandler(APIHandler):
    """``GET /user/memberships/orgs/{org}``."""

    @locked
    def get(self, org_name: str) -> None:
        assert self.token is not None
        org = self.fake.get_org(org_name)
        if org is None or self.me.login.lower() not in org.members or not self.token.has_any_scope("read:org"):
            raise self.not_found()
        self.write_json(
            {
                "url": f"{self.api_base}/orgs/{org.login}/memberships/{self.me.login}",
                "state": "active",
                "role": "member",
                "organization_url": f"{self.api_base}/orgs/{org.login}",
                "organization": org_json(org, self),
                "user": user_json(self.me, self),
            }
        )


class UsersHandler(APIHandler):
    auth_optional = True

    @locked
    def get(self, login: str) -> None:
        user = self.fake.get_user(login)
        if user is None:
            raise self.not_found()
        self.write_json(user_json(user, self, full=True))


class OrgHandler(APIHandler):
    auth_optional = True

    @locked
    def get(self, org_name: str) -> None:
        org = self.fake.get_org(org_name)
        if org is None:
            raise self.not_found()
        data = org_json(org, self)
        data.update({"name": org.login, "type": "Organization", "html_url": f"{self.base_url}/{org.login}"})
        self.write_json(data)


class OrgMembersHandler(APIHandler):
    """``GET /orgs/{org}/members``: everyone for members with read:org, else public members."""

    auth_optional = True

    @locked
    def get(self, org_name: str) -> None:
        org = self.fake.get_org(org_name)
        if org is None:
            raise self.not_found()
        everyone = self.sees_private_membership(org)
        logins = [k for k, public in org.members.items() if everyone or public]
        users = [u for u in (self.fake.get_user(k) for k in logins) if u is not None]
        self.write_json([user_json(u, self) for u in self.paginate(users)])


class OrgMemberCheckHandler(APIHandler):
    """``GET /orgs/{org}/members/{user}``: 204/404, or 302 to public_members for outsiders."""

    accepted_scopes = ("read:org",)

    @locked
    def get(self, org_name: str, login: str) -> None:
        org = self.fake.get_org(org_name)
        if org is None:
            raise self.not_found()
        if not self.sees_private_membership(org):
            self.set_status(302)
            self.set_header("Location", f"{self.api_base}/orgs/{org.login}/public_members/{login}")
            self.clear_header("Content-Type")
            self.finish()
            return
        if login.lower() in org.members:
            self.no_content()
            return
        raise APIError(404, "User does not exist or is not a member of the organization")


class OrgPublicMemberCheckHandler(APIHandler):
    auth_optional = True

    @locked
    def get(self, org_name: str, login: str) -> None:
        org = self.fake.get_org(org_name)
        if org is None or not org.members.get(login.lower(), False):
            raise self.not_found()
        self.no_content()


class OrgMembershipHandler(APIHandler):
    """``GET /orgs/{org}/memberships/{user}``."""

    @locked
    def get(self, org_name: str, login: str) -> None:
        org = self.fake.get_org(org_name)
        if org is None:
            raise self.not_found()
        if not self.sees_private_membership(org):
            raise APIError(403, f"You must be a member of {org.login} to see membership information for {login}.")
        user = self.fake.get_user(login)
        if user is None or user.login.lower() not in org.members:
            raise self.not_found()
        self.write_json(
            {
                "url": f"{self.api_base}/orgs/{org.login}/memberships/{user.login}",
                "state": "active",
                "role": "member",
                "organization_url": f"{self.api_base}/orgs/{org.login}",
                "organization": org_json(org, self),
                "user": user_json(user, self),
            }
        )


class TeamAPIHandler(APIHandler):
    accepted_scopes = ("read:org",)

    def visible_team(self, org_name: str, team_slug: str) -> Team:
        """The team, if the caller may see it (org member with read:org), else a 404."""
        org = self.fake.get_org(org_name)
        if org is None or not self.sees_private_membership(org):
            raise self.not_found()
        team = org.teams.get(team_slug.lower())
        if team is None:
            raise self.not_found()
        return team

    def team_by_id(self, team_id: str) -> Team:
        for org in self.fake.orgs.values():
            for team in org.teams.values():
                if str(team.id) == team_id:
                    return self.visible_team(org.login, team.slug)
        raise self.not_found()


class OrgTeamsHandler(TeamAPIHandler):
    @locked
    def get(self, org_name: str) -> None:
        org = self.fake.get_org(org_name)
        if org is None or not self.sees_private_membership(org):
            raise self.not_found()
        self.write_json([team_json(t, self) for t in self.paginate(list(org.teams.values()))])


class TeamHandler(TeamAPIHandler):
    @locked
    def get(self, org_name: str, team_slug: str) -> None:
        self.write_json(team_json(self.visible_team(org_name, team_slug), self, with_org=True))


class TeamMembersHandler(TeamAPIHandler):
    """``GET /orgs/{org}/teams/{team}/members`` (paged, optional ``role`` filter)."""

    @locked
    def get(self, org_name: str, team_slug: str) -> None:
        team = self.visible_team(org_name, team_slug)
        role = self.get_query_argument("role", "all")
        if role not in ("all", "member", "maintainer"):
            raise APIError(422, "Validation Failed")
        logins = [k for k, r in team.members.items() if role in ("all", r)]
        users = [u for u in (self.fake.get_user(k) for k in logins) if u is not None]
        self.write_json([user_json(u, self) for u in self.paginate(users)])


class TeamMemberCheckHandler(TeamAPIHandler):
    """``GET /orgs/{org}/teams/{team}/members/{user}`` (what oauthenticator 17.4.0 calls) -> 204/404."""

    @locked
    def get(self, org_name: str, team_slug: str, login: str) -> None:
        team = self.visible_team(org_name, team_slug)
        if login.lower() not in team.members:
            raise self.not_found()
        self.no_content()


class LegacyTeamMemberCheckHandler(TeamAPIHandler):
    """``GET /teams/{team_id}/members/{user}`` (legacy) -> 204/404."""

    @locked
    def get(self, team_id: str, login: str) -> None:
        team = self.team_by_id(team_id)
        if login.lower() not in team.members:
            raise self.not_found()
        self.no_content()


class TeamMembershipHandler(TeamAPIHandler):
    """``GET /orgs/{org}/teams/{team}/memberships/{user}`` -> 200 with state/role, or 404."""

    @locked
    def get(self, org_name: str, team_slug: str, login: str) -> None:
        team = self.visible_team(org_name, team_slug)
        role = team.members.get(login.lower())
        if role is None:
            raise self.not_found()
        self.write_json(
            {
                "url": f"{self.api_base}/organizations/{team.org}/team/{team.id}/memberships/{login}",
                "role": role,
                "state": "active",
            }
        )


class ApplicationAPIHandler(APIHandler):
    """``/applications/{client_id}/...``: authenticated with the app's client_id:client_secret."""

    auth_optional = True
    app: OAuthApp

    @locked
    def prepare(self) -> None:
        if not self.request.headers.get("User-Agent"):
            raise APIError(403, "Request forbidden by administrative rules.")
        header = self.request.headers.get("Authorization", "")
        if not header:
            raise APIError(401, "Requires authentication")
        creds = _decode_basic(header[6:]) if header.lower().startswith("basic ") else None
        app = self.fake.apps.get(creds[0]) if creds else None
        if creds is None or app is None or not hmac.compare_digest(app.client_secret, creds[1]):
            raise APIError(401, "Bad credentials")
        self.app = app

    def app_for(self, client_id: str) -> OAuthApp:
        if client_id != self.app.client_id:
            raise self.not_found()
        return self.app

    def access_token_arg(self) -> str:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise APIError(400, "Problems parsing JSON") from None
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise APIError(422, 'Invalid request.\n\n"access_token" wasn\'t supplied.')
        return value

    def owned_token(self, app: OAuthApp) -> Token:
        tok = self.fake.active_token(self.access_token_arg())
        if tok is None or tok.client_id != app.client_id:
            raise self.not_found()
        return tok

    def token_info(self, tok: Token, app: OAuthApp) -> dict[str, Any]:
        user = self.fake.get_user(tok.login)
        assert user is not None
        return {
            "id": tok.id,
            "url": f"{self.api_base}/authorizations/{tok.id}",
            "app": {"name": app.name, "url": app.redirect_uri, "client_id": app.client_id},
            "token": tok.token,
            "hashed_token": hashlib.sha256(tok.token.encode()).hexdigest(),
            "token_last_eight": tok.token[-8:],
            "note": None,
            "note_url": None,
            "created_at": _now_iso(tok.created_at),
            "updated_at": _now_iso(tok.created_at),
            "scopes": list(tok.scopes),
            "fingerprint": None,
            "expires_at": None,
            "user": user_json(user, self),
            "installation": None,
        }


class ApplicationTokenHandler(ApplicationAPIHandler):
    """Check (POST), reset (PATCH) and delete (DELETE) an OAuth app token."""

    @locked
    def post(self, client_id: str) -> None:
        app = self.app_for(client_id)
        self.write_json(self.token_info(self.owned_token(app), app))

    @locked
    def patch(self, client_id: str) -> None:
        app = self.app_for(client_id)
        old = self.owned_token(app)
        new_value = self.fake.issue_token(old.login, app.client_id, old.scopes)
        self.fake.revoke_token(old.token)
        self.write_json(self.token_info(self.fake.tokens[new_value], app))

    @locked
    def delete(self, client_id: str) -> None:
        app = self.app_for(client_id)
        self.fake.revoke_token(self.owned_token(app).token)
        self.no_content()


class ApplicationGrantHandler(ApplicationAPIHandler):
    """``DELETE /applications/{client_id}/grant``: revoke every token of that user for the app."""

    @locked
    def delete(self, client_id: str) -> None:
        app = self.app_for(client_id)
        login = self.owned_token(app).login
        for tok in list(self.fake.tokens.values()):
            if tok.client_id == app.client_id and tok.login == login:
                self.fake.revoke_token(tok.token)
        self.no_content()


class APINotFoundHandler(APIHandler):
    auth_optional = True

    def prepare(self) -> None:
        super().prepare()
        raise self.not_found()


# --------------------------------------------------------------------------- app


class _FakeGitHubApplication(Application):
    def __init__(self, fake: FakeGitHub, handlers: list[HandlerRule]) -> None:
        super().__init__(
            handlers,
            default_handler_class=NotFoundPageHandler,
            default_handler_args={"fake": fake},
            xsrf_cookies=False,
            log_function=lambda handler: None,
        )
        self.fake = fake

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        self.fake._record(request)
        return super().find_handler(request, **kwargs)


def build_handlers(fake: FakeGitHub, extra: Sequence[HandlerRule] = ()) -> list[HandlerRule]:
    """The full handler list: ``extra`` rules first, then OAuth, the REST API and a JSON 404.

    A later module (e.g. git smart HTTP under ``/{owner}/{repo}.git/...``) passes
    its rules via ``FakeGitHub.add_handlers`` rather than editing this list.
    """
    kw = {"fake": fake}
    seg = r"([^/]+)"
    api = re.escape(API_PREFIX)
    rules: list[HandlerRule] = [_inject_fake(rule, fake) for rule in extra]
    rules += [
        (r"/login/oauth/authorize/?", AuthorizeHandler, kw),
        (r"/login/oauth/access_token/?", AccessTokenHandler, kw),
        (rf"/fake/login-as/{seg}", LoginAsHandler, kw),
        (r"/fake/logout", LogoutHandler, kw),
        (rf"{api}/user/?", UserHandler, kw),
        (rf"{api}/user/emails/?", UserEmailsHandler, kw),
        (rf"{api}/user/teams/?", UserTeamsHandler, kw),
        (rf"{api}/user/orgs/?", UserOrgsHandler, kw),
        (rf"{api}/user/memberships/orgs/{seg}", UserOrgMembershipHandler, kw),
        (rf"{api}/users/{seg}", UsersHandler, kw),
        (rf"{api}/orgs/{seg}", OrgHandler, kw),
        (rf"{api}/orgs/{seg}/members", OrgMembersHandler, kw),
        (rf"{api}/orgs/{seg}/members/{seg}", OrgMemberCheckHandler, kw),
        (rf"{api}/orgs/{seg}/public_members/{seg}", OrgPublicMemberCheckHandler, kw),
        (rf"{api}/orgs/{seg}/memberships/{seg}", OrgMembershipHandler, kw),
        (rf"{api}/orgs/{seg}/teams", OrgTeamsHandler, kw),
        (rf"{api}/orgs/{seg}/teams/{seg}", TeamHandler, kw),
        (rf"{api}/orgs/{seg}/teams/{seg}/members", TeamMembersHandler, kw),
        (rf"{api}/orgs/{seg}/teams/{seg}/members/{seg}", TeamMemberCheckHandler, kw),
        (rf"{api}/orgs/{seg}/teams/{seg}/memberships/{seg}", TeamMembershipHandler, kw),
        (rf"{api}/teams/(\d+)/members/{seg}", LegacyTeamMemberCheckHandler, kw),
        (rf"{api}/applications/{seg}/token", ApplicationTokenHandler, kw),
        (rf"{api}/applications/{seg}/grant", ApplicationGrantHandler, kw),
        (rf"{api}(?:/.*)?", APINotFoundHandler, kw),
    ]
    return rules


def make_app(fake: FakeGitHub, extra: Sequence[HandlerRule] = ()) -> Application:
    return _FakeGitHubApplication(fake, build_handlers(fake, extra))


__all__ = [
    "API_PREFIX",
    "LOGIN_COOKIE",
    "APIHandler",
    "AuthorizationCode",
    "FakeGitHub",
    "FakeGitHubHandler",
    "OAuthApp",
    "Org",
    "RecordedRequest",
    "Team",
    "Token",
    "User",
    "build_handlers",
    "expand_scopes",
    "make_app",
    "parse_scope_param",
    "pkce_s256",
    "redirect_uri_allowed",
]
