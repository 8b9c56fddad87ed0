"""The service's one client of the hub's REST API (``HubClient``), and its error (``HubError``).

Everything the service asks the hub goes through here: the active servers (the hub watcher, the
admin overview), a user's model and GitHub token, server starts and stops, shares. The token is
fetched fresh for each push through ``GET /hub/api/users/{name}`` with the service's own token,
whose role holds ``admin:auth_state`` (JupyterHub 6.1.1 returns ``auth_state`` only there, not
from ``/hub/api/user``). It is returned to the caller and never logged or stored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable


class HubError(Exception):
    """The hub answered an error where the service needed an answer (``status``: its HTTP status)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class HubUnreachable(HubError, ConnectionError):
    """The hub did not answer at all (it is restarting, or the network failed); status 0."""


@dataclass(frozen=True)
class GitHubCredentials:
    token: str
    login: str
    id: int | None
    name: str
    email: str | None  # from auth_state (may be a private address: not used as the author)

    def __repr__(self) -> str:  # never print the token
        return f"GitHubCredentials(login={self.login!r}, id={self.id!r})"


#: The hub's models: user -> server name ("" the default server) -> the hub's server model.
ActiveServers = dict[str, dict[str, dict[str, Any]]]


class HubClient(LoggingConfigurable):
    """The hub's REST API with the service's token (``$JUPYTERHUB_API_TOKEN``, never logged)."""

    api_url = Unicode(
        help="""The hub's REST API. Default: $JUPYTERHUB_API_URL, which the hub gives its managed services,
        else http://127.0.0.1:8081/hub/api. Example: http://10.213.0.1:8081/hub/api""",
    ).tag(config=True)

    @default("api_url")
    def _default_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    api_token = Unicode(help="The service's hub token. Default: $JUPYTERHUB_API_TOKEN (not a config setting).")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    request_timeout = Float(
        60.0, help="""Seconds a request to the hub may take before it counts as unanswered (HubUnreachable).
        Default 60.""",
    ).tag(config=True)

    async def request(self, method: str, path: str, body: Any = None, accept: str = "application/json",
                      ) -> tuple[int, Any]:
        """Any hub API call: (status, parsed JSON body or None). Error statuses come back as they are
        (the caller branches on them); only a hub that does not answer raises (HubUnreachable)."""
        payload = None if body is None else json.dumps(body)
        request = HTTPRequest(f"{self.api_url.rstrip('/')}{path}", method=method, body=payload,
                              request_timeout=self.request_timeout, allow_nonstandard_methods=True,
                              headers={"Authorization": f"token {self.api_token}", "Accept": accept,
                                       "Content-Type": "application/json"})
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as error:  # refused, reset, timed out (599): no answer
            raise HubUnreachable(f"the hub did not answer: {error}") from None
        try:
            data = json.loads(response.body) if response.body else None
        except ValueError:
            data = None
        return response.code, data

    async def _get(self, path: str, accept: str = "application/json") -> dict[str, Any] | None:
        """A JSON object from the hub; None on 404; HubError on any other error status."""
        status, data = await self.request("GET", path, accept=accept)
        if status == 404:
            return None
        if status >= 400 or not isinstance(data, dict):
            raise HubError(f"GET {path.split('?')[0]}: the hub answered {status}", status)
        return data

    async def user(self, name: str) -> dict[str, Any] | None:
        return await self._get(f"/users/{quote(name, safe='')}")

    async def active_servers(self) -> ActiveServers:
        """Every user's active servers: user -> server name ("" default) -> the hub's server model
        (``ready``, ``started``, ``pending``, ``user_options``...). One paginated ``GET /users?state=active``."""
        result: ActiveServers = {}
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

    async def stop_server(self, user: str, server: str) -> int:
        """Ask the hub to stop ``user``'s server (``""``: the default one); the hub's status code."""
        path = (f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}" if server
                else f"/users/{quote(user, safe='')}/server")
        status, _ = await self.request("DELETE", path)
        return status

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
