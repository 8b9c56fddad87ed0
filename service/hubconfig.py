"""What JupyterHub needs to run the Titan service, built from titan.yaml.

jupyterhub_config.py only hands these to the hub: the managed-service entry (command, URL,
environment), the service's least-privilege role, and users' access to the service. The service
reads its settings itself: ``python -m service -f service/config.py`` (service/configure.py), as
the gateway does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.supervise import supervised

SERVICE_NAME = "titan"
CONFIG_FILE = Path(__file__).resolve().parent / "config.py"
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"

#: The service's role, exactly: read users' server state and groups (to notice stops, schedule
#: passes, and check a link's groups), list users with an active server (to clone repositories when
#: a server starts), read their auth_state (the GitHub token, fetched fresh at each push or clone);
#: and for dashboards: start, stop and remove users' servers (a dashboard is its owner's named
#: server), grant and delete JupyterHub shares of them, which the hub allows only to a holder of
#: access:servers and read:users:name. Nothing else.
SERVICE_SCOPES = ["read:users", "list:users", "read:servers", "admin:auth_state",
                  "servers", "delete:servers", "shares", "access:servers", "read:users:name"]

#: Operations (service/admin.py) need no scope of their own: usage is read from the active servers
#: (list:users, read:servers), the admin page stops a server with delete:servers, and who is an
#: admin comes from the caller's own hub model.

_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")


def command() -> list[str]:
    """The service's command line: its configuration file, which reads titan.yaml (TITAN_SETTINGS)."""
    return [sys.executable, "-m", "service", "-f", str(CONFIG_FILE)]


def service(settings: Settings, address: str) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry: the hub starts, restarts and stops the service, which
    listens on the Titan ``address`` (core.network), where containers reach it."""
    environment = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    environment.update({"TITAN_SETTINGS": settings.source, "TITAN_STATE_DIR": str(settings.state_dir),
                        "TITAN_ADDRESS": address,
                        "PYTHONPATH": os.pathsep.join(p for p in (str(_repo_root()),) if p)})
    return {
        "name": SERVICE_NAME,
        "display": True,
        "info": {"description": "Git autosave of your repositories, and share links"},
        "url": f"http://{address}:{settings.service['port']}",
        "command": supervised(settings.state_dir, SERVICE_NAME, command()),
        "cwd": str(settings.state_dir),
        "environment": environment,
        "oauth_no_confirm": True,
    }


def role() -> dict[str, Any]:
    return {"name": "titan-service", "description": "Titan service: users' server state and GitHub tokens "
            "(auth_state) for autosave pushes; dashboard servers and their shares.",
            "scopes": list(SERVICE_SCOPES), "services": [SERVICE_NAME]}


def with_service_roles(roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``load_roles`` plus the service's role, and users (so their OAuth logins) allowed in."""
    roles = [dict(r) for r in roles if r.get("name") != "titan-service"] + [role()]
    user = next((r for r in roles if r.get("name") == "user"), None)
    if user is None:
        roles.append({"name": "user", "description": "Standard user privileges, and the Titan service",
                      "scopes": ["self", ACCESS_SCOPE]})
    elif ACCESS_SCOPE not in user.get("scopes", []):
        user["scopes"] = [*user.get("scopes", ["self"]), ACCESS_SCOPE]
    return roles


def _repo_root() -> str:
    from core.settings import REPO_ROOT

    return str(REPO_ROOT)


#: What a server's own token needs for Titan inside JupyterLab (images/minimal/titan_lab: Share…,
#: the autosave status): the defaults of JupyterHub's ``server`` role, and the service as the owner.
SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", ACCESS_SCOPE]


def with_server_token_scopes(scopes: list[str]) -> list[str]:
    """``Spawner.server_token_scopes`` plus what a server needs to call the service as its owner."""
    return [*scopes, *(s for s in SERVER_TOKEN_SCOPES if s not in scopes)]
