"""``HubAuthenticator``: dask-gateway's JupyterHub authenticator with JupyterHub 5+'s answers.

The stock one asks ``GET /hub/api/user`` with the caller's token and turns a 403 into a 500
("Permission failure verifying user's JupyterHub API token"). Current JupyterHub answers 403 to
a token it does not know, so a mistyped or expired token gave a server error. Here any 401/403/404
from the hub means the caller is not authenticated (401). The scope check is the stock one: only
tokens holding ``access:services!service=<jupyterhub_service_name>`` (or ``access:services``) get in.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from dask_gateway_server.auth import JupyterHubAuthenticator, unauthorized
from dask_gateway_server.models import User

NOT_AUTHENTICATED = frozenset({401, 403, 404})


class HubAuthenticator(JupyterHubAuthenticator):
    async def authenticate(self, request: web.Request) -> User:
        token = self.get_token(request)
        if token is None:
            raise unauthorized("jupyterhub")
        response = await self.session.get(f"{self.jupyterhub_api_url}/user",
                                          headers={"Authorization": f"token {token}"}, ssl=self.ssl_context)
        async with response:
            if response.status in NOT_AUTHENTICATED:
                raise unauthorized("jupyterhub")
            if response.status >= 400:
                self.log.error("The hub answered %d to verifying a token", response.status)
                raise web.HTTPBadGateway(reason="Upstream failure verifying your JupyterHub API token")
            data: dict[str, Any] = await response.json()
        name = data["name"]
        if data.get("kind") != "user" or ":" in name:
            name = f"{data.get('kind')}:{name}"  # services and odd names never collide with users
        if self.use_service_access_scopes:
            wanted = {"access:services", f"access:services!service={self.jupyterhub_service_name}"}
            if not wanted.intersection(data.get("scopes", [])):
                self.log.info("Token of %s lacks access to the %s service", name, self.jupyterhub_service_name)
                raise unauthorized("jupyterhub")
        return User(name, groups=data.get("groups", []), admin=data.get("admin", False))
