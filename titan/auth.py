"""GitHub login for Titan: ``TitanGitHubOAuthenticator``.

oauthenticator's ``GitHubOAuthenticator`` with Titan's rules:

* nobody gets in unless an allow rule says so (organizations, ``org:team`` entries, users, admins),
  and start-up says plainly when no rule is configured;
* the user's GitHub teams become JupyterHub groups named ``org:team`` (lower case), replaced at
  every login and every refresh, so profile access written against teams follows GitHub;
* an optional admin team whose members are hub admins (and stop being admins when they leave it);
* the token is re-checked every ``auth_refresh_age`` seconds and before each spawn: a revoked
  token, or a user no longer allowed, must log in again instead of meeting an error page;
* the access token lives only in the encrypted ``auth_state``: it is never logged, never put in
  an error message and never handed to the spawner's environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from inspect import isawaitable
from typing import Any

from oauthenticator.github import GitHubOAuthenticator
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Unicode, default, validate

#: Scopes every Titan login asks for: team membership (org gating, groups) and the private email.
BASE_SCOPES: tuple[str, ...] = ("read:org", "user:email")
#: Extra scope for autosave's ``git push`` to the user's repositories.
PUSH_SCOPE = "repo"

_ORG_TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*:[A-Za-z0-9._-]+$")

FORBIDDEN_MESSAGE = (
    "Your GitHub account is not allowed on Titan. Titan lets in members of the GitHub organizations "
    "and teams its admins chose. Ask a Titan admin to add you to one of them (or to approve the Titan "
    "OAuth app for your organization), then sign in again."
)


def requested_scopes(autosave_push: bool) -> list[str]:
    """The OAuth scopes Titan asks GitHub for: ``repo`` only when autosave may push."""
    return [*BASE_SCOPES, PUSH_SCOPE] if autosave_push else list(BASE_SCOPES)


def scopes_need_split(scopes: Any) -> bool:
    """True when a granted-scope value still holds GitHub's comma-joined form (``"a,b"``)."""
    if isinstance(scopes, str):
        return "," in scopes
    return any(isinstance(s, str) and "," in s for s in scopes or [])


def split_scopes(scopes: str | Iterable[str] | None) -> list[str]:
    """``"read:org,user:email"`` or ``["read:org,user:email"]`` -> ``["read:org", "user:email"]``.

    GitHub separates granted scopes with commas, OAuth with spaces; both are accepted. Order is
    kept, duplicates and empty entries are dropped.
    """
    chunks = [scopes] if isinstance(scopes, str) else list(scopes or [])
    result: list[str] = []
    for chunk in chunks:
        for scope in re.split(r"[\s,]+", str(chunk)):
            if scope and scope not in result:
                result.append(scope)
    return result


def team_group(org: str, team_slug: str) -> str:
    """The JupyterHub group name of a GitHub team: ``org:team``, lower case like GitHub's URLs."""
    return f"{org}:{team_slug}".lower()


def team_groups(teams: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """Group names (sorted, unique) from GitHub's ``GET /user/teams`` answer."""
    names = set()
    for team in teams or []:
        org = (team.get("organization") or {}).get("login")
        slug = team.get("slug")
        if org and slug:
            names.add(team_group(org, slug))
    return sorted(names)


class TitanGitHubOAuthenticator(GitHubOAuthenticator):
    """GitHub login with organization/team gating, teams as groups and token re-checks."""

    admin_team = Unicode(
        "",
        config=True,
        help="""GitHub team, as ``org:team`` (the names in the team's URL), whose members are
        JupyterHub admins. Checked at every login and refresh: a member who leaves the team stops
        being an admin, unless listed in ``admin_users``. Members of this team may log in (admins
        always may). Empty (the default): admin status comes from ``admin_users`` only.
        Example: c.TitanGitHubOAuthenticator.admin_team = "my-org:platform-admins"
        """,
    ).tag(allow_config=True)

    autosave_push = Bool(
        False,
        config=True,
        help="""Ask GitHub for the ``repo`` scope as well, so autosave can push users' work to
        their repositories with their token. Off by default: only ``read:org`` and
        ``user:email`` are requested. Users who logged in before it was turned on get the new
        scope at their next login.
        """,
    )

    @validate("admin_team")
    def _validate_admin_team(self, proposal: Any) -> str:
        value = str(proposal.value).strip()
        if value and not _ORG_TEAM.match(value):
            raise ValueError(f"admin_team must look like 'org:team', not {value!r}")
        return value

    @default("scope")
    def _default_scope(self) -> list[str]:
        return requested_scopes(self.autosave_push)

    @default("populate_teams_in_auth_state")
    def _default_populate_teams(self) -> bool:
        return True

    @default("manage_groups")
    def _default_manage_groups(self) -> bool:
        return True

    @default("enable_auth_state")
    def _default_enable_auth_state(self) -> bool:
        return True

    @default("refresh_pre_spawn")
    def _default_refresh_pre_spawn(self) -> bool:
        return True

    @default("allow_existing_users")
    def _default_allow_existing_users(self) -> bool:
        # Being in the hub's database must not outlive leaving the organization.
        return False

    @default("custom_403_message")
    def _default_custom_403_message(self) -> str:
        return FORBIDDEN_MESSAGE

    # ---- start-up -----------------------------------------------------------------------

    def allow_rules(self) -> list[str]:
        """Human-readable allow rules, for the start-up log."""
        rules = []
        if self.allowed_organizations:
            rules.append("organizations/teams " + ", ".join(sorted(self.allowed_organizations)))
        if self.allowed_users:
            rules.append("users " + ", ".join(sorted(self.allowed_users)))
        if self.admin_users:
            rules.append("admin users " + ", ".join(sorted(self.admin_users)))
        if self.admin_team:
            rules.append(f"admin team {self.admin_team}")
        if self.manage_groups and self.allowed_groups:
            rules.append("groups " + ", ".join(sorted(self.allowed_groups)))
        return rules

    def check_allow_config(self) -> None:
        """Say at start-up who can log in; warn loudly when that is nobody (or everybody)."""
        if self.allow_all:
            self.log.warning(
                "GitHub login: allow_all is True, so EVERY GitHub account can log in to Titan. "
                "Set auth.github.allowed_organizations instead."
            )
            return
        rules = self.allow_rules()
        if not rules:
            self.log.warning(
                "GitHub login: no allow rule is configured, so NOBODY can log in. Set "
                "auth.github.allowed_organizations (org or org:team entries) or auth.github.allowed_users "
                "in titan.yaml."
            )
        elif not (self.allowed_organizations or self.allowed_users or self.allowed_groups):
            self.log.warning("GitHub login: only admins can log in (%s).", "; ".join(rules))
        else:
            self.log.info("GitHub login allows: %s.", "; ".join(rules))

    # ---- login and refresh --------------------------------------------------------------

    async def build_auth_state_dict(self, token_info: dict[str, Any], user_info: dict[str, Any]) -> dict[str, Any]:
        auth_state = super().build_auth_state_dict(token_info, user_info)
        if isawaitable(auth_state):
            auth_state = await auth_state
        # Workaround for oauthenticator 17.4.0: it splits the token response's ``scope`` on
        # spaces, but GitHub joins scopes with commas, so ``user:email`` is never seen as granted
        # and update_auth_model never fetches a private email (fixed upstream in PR #820,
        # unreleased). Detected by behaviour, not version: only a comma-joined entry is split,
        # so with a fixed oauthenticator this does nothing and can be deleted.
        if scopes_need_split(auth_state.get("scope")):
            auth_state["scope"] = split_scopes(auth_state["scope"])
        return dict(auth_state)

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        """oauthenticator fetches the email and teams; Titan decides admin from the admin team."""
        auth_model = await super().update_auth_model(auth_model)
        if self.admin_team and auth_model.get("admin") is not True:
            groups = team_groups(auth_model["auth_state"].get("teams"))
            auth_model["admin"] = self.admin_team.lower() in groups
        return auth_model

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        """The user's GitHub teams as ``org:team`` groups (replacing the previous set)."""
        return set(team_groups(auth_state.get("teams")))

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """Re-check the stored token against GitHub ``/user`` and the allow rules.

        Returns the fresh auth model (new teams/groups and admin status), or False when the
        token no longer works (revoked, expired) or the user is no longer allowed, which makes
        JupyterHub send a browser back to the login page.
        """
        refreshed = await self._refresh_user(user, handler, **kwargs)
        if refreshed is False and handler is not None and not hasattr(handler, "_token_authenticated"):
            # JupyterHub 6.1.1's BaseHandler.refresh_auth reads handler._token_authenticated after a
            # failed refresh, but only token-authenticated requests set it: a cookie request (the
            # browser case) raised AttributeError, logged as "Failed to get current user". Setting
            # the value it would have leaves the outcome as intended (the user must log in again)
            # and does nothing on a JupyterHub that sets it itself.
            handler._token_authenticated = False
        return refreshed

    async def _refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
        except HTTPClientError as error:
            # oauthenticator already turns 4xx from /user into False; a 4xx from a later call
            # (e.g. /user/teams) means the same thing. The error names no token.
            if error.code is not None and 400 <= error.code < 500:
                self.log.info("GitHub refused %s's token on refresh (HTTP %s): login required", user.name,
                              error.code)
                return False
            raise
        if not isinstance(refreshed, dict):
            return refreshed
        name = refreshed.get("name", user.name)
        if not await self._still_allowed(name, refreshed):
            self.log.warning("%s is no longer allowed by GitHub membership: login required", name)
            return False
        return refreshed

    async def _still_allowed(self, name: str, auth_model: dict[str, Any]) -> bool:
        blocked_pass = self.check_blocked_users(name, auth_model)
        if isawaitable(blocked_pass):
            blocked_pass = await blocked_pass
        if not blocked_pass:
            return False
        if self.allow_all:
            return True
        return bool(await self.check_allowed(name, auth_model))
