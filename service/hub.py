"""What the service asks the hub and GitHub: users' servers, their GitHub token and identity.

The token is fetched fresh for each push through ``GET /hub/api/users/{name}`` with the service's
own token, whose role holds ``admin:auth_state`` (JupyterHub 6.1.1 returns ``auth_state`` only
there, not from ``/hub/api/user``). It is returned to the caller and never logged or stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


@dataclass(frozen=True)
class GitHubCredentials:
    token: str
    login: str
    id: int | None
    name: str
    email: str | None  # from auth_state (may be a private address: not used as the author)

    def __repr__(self) -> str:  # never print the token
        return f"GitHubCredentials(login={self.login!r}, id={self.id!r})"


class HubClient:
    def __init__(self, api_url: str, api_token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = api_token

    async def _get(self, path: str, accept: str = "application/json") -> dict[str, Any] | None:
        request = HTTPRequest(f"{self.api_url}{path}", request_timeout=30,
                              headers={"Authorization": f"token {self._token}", "Accept": accept})
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            if error.code == 404:
                return None
            raise
        data: dict[str, Any] = json.loads(response.body)
        return data

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Any hub API call: (status, parsed JSON body or None). Errors come back as their status
        (the caller branches on it); only a network failure raises."""
        payload = None if body is None else json.dumps(body)
        request = HTTPRequest(f"{self.api_url}{path}", method=method, body=payload, request_timeout=60,
                              allow_nonstandard_methods=True,
                              headers={"Authorization": f"token {self._token}", "Content-Type": "application/json"})
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as error:
            raise ConnectionError(f"the hub did not answer: {error}") from None
        try:
            data = json.loads(response.body) if response.body else None
        except ValueError:
            data = None
        return response.code, data

    async def user(self, name: str) -> dict[str, Any] | None:
        return await self._get(f"/users/{quote(name, safe='')}")

    async def running_servers(self, name: str) -> set[str] | None:
        """Names of the user's servers that are running or stopping ("" is the default server);
        None when the user does not exist."""
        model = await self.user(name)
        if model is None:
            return None
        servers = model.get("servers") or {}
        return {key for key, server in servers.items() if server.get("ready") or server.get("started")}

    async def active_servers(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every user's active servers: user -> server name ("" default) -> the hub's server model
        (``ready``, ``user_options``...). One paginated ``GET /users?state=active``."""
        result: dict[str, dict[str, dict[str, Any]]] = {}
        offset = 0
        while True:
            page = await self._get(f"/users?state=active&offset={offset}&limit=200",
                                   accept="application/jupyterhub-pagination+json") or {}
            for user in page.get("items") or []:
                result[str(user["name"])] = dict(user.get("servers") or {})
            following = (page.get("_pagination") or {}).get("next")
            if not following or not page.get("items"):
                return result
            offset = int(following["offset"])

    async def github_credentials(self, name: str) -> GitHubCredentials | None:
        """The user's GitHub token and account from auth_state, or None when there is none."""
        model = await self.user(name)
        state = (model or {}).get("auth_state") or {}
        token = state.get("access_token")
        if not token:
            return None
        github_user = state.get("github_user") or {}
        login = str(github_user.get("login") or name)
        return GitHubCredentials(token=str(token), login=login, id=github_user.get("id"),
                                 name=str(github_user.get("name") or login), email=github_user.get("email"))


def github_api_url(github_url: str) -> str:
    """github.com's API is on api.github.com; GitHub Enterprise's under /api/v3."""
    base = github_url.rstrip("/")
    return "https://api.github.com" if base in ("https://github.com", "http://github.com") else base + "/api/v3"


async def github_user(github_url: str, token: str) -> tuple[int, dict[str, Any]]:
    """``GET /user`` with the token: (HTTP status, body). 401 means the token no longer works."""
    request = HTTPRequest(f"{github_api_url(github_url)}/user", request_timeout=30,
                          headers={"Authorization": f"token {token}", "Accept": "application/vnd.github+json",
                                   "User-Agent": "titan-autosave"})
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as error:
        return error.code, {}
    except OSError:  # unreachable: the push reports the network error
        return 0, {}
    body: dict[str, Any] = json.loads(response.body)
    return response.code, body
