"""Creating users without reading their GitHub tokens.

JupyterHub creates a user only for a holder of ``admin:users``, which includes ``admin:auth_state``:
whoever may create users may read every user's GitHub token. Titan's automation token
(``state/admin-token``) needs the first and must not have the second, so the hub gets one more route,
``POST /hub/api/titan/users/<name>``, for holders of the custom scope ``custom:titan:create-users``:
it does what ``POST /hub/api/users/<name>`` does (the same 201 and user model, 409 when the user
exists, the authenticator's ``add_user``), except granting admin rights, which it never does.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.utils import maybe_future
from tornado import web

CREATE_USERS_SCOPE = "custom:titan:create-users"
CUSTOM_SCOPES: dict[str, dict[str, str]] = {
    CREATE_USERS_SCOPE: {"description": "Create users (never admins), without access to their auth state."},
}
ROUTE = r"/api/titan/users/([^/]+)"


class CreateUserHandler(APIHandler):
    async def post(self, user_name: str) -> None:
        if self.current_user is None or CREATE_USERS_SCOPE not in self.expanded_scopes:
            raise web.HTTPError(403, f"Creating users needs the scope {CREATE_USERS_SCOPE}.")
        data: Any = self.get_json_body() or {}
        if not isinstance(data, dict) or data.get("admin"):
            raise web.HTTPError(400, "This route creates plain users: send no body, or {} (never admin).")
        if self.find_user(user_name) is not None:
            raise web.HTTPError(409, f"User {user_name} already exists")
        user = self.user_from_username(user_name)
        self.db.commit()
        try:
            await maybe_future(self.authenticator.add_user(user))
        except Exception:
            self.log.exception("Failed to create user %s", user_name)
            self.users.delete(user)
            raise web.HTTPError(400, f"Failed to create user: {user_name}") from None
        self.log.info("%s created user %s", self.current_user.name, user_name)
        self.write(json.dumps(self.user_model(user)))
        self.set_status(201)

