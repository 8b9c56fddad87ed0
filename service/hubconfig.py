"""What JupyterHub needs to run the Titan service, built from titan.yaml.

jupyterhub_config.py only hands these to the hub: the managed-service entry (command, URL,
environment), the service's least-privilege role, and users' access to the service.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from titan.settings import Settings
from titan.supervise import supervised

SERVICE_NAME = "titan"
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


def command(settings: Settings, address: str) -> list[str]:
    autosave = settings.service
    state = settings.state_dir / "service"
    args = [
        sys.executable, "-m", "service",
        f"--TitanService.ip={address}",
        f"--TitanService.port={autosave['port']}",
        f"--TitanService.state_dir={state}",
        f"--TitanService.github_url={settings.github['url']}",
        f"--TitanService.home_volume_template={settings.home_volume_template}",
        f"--TitanService.profiles_dir={settings.profiles_dir}",
        f"--TitanService.deployment={settings.deployment}",
        f"--TitanService.branch_template={autosave['branch_template']}",
        f"--TitanService.default_interval={autosave['interval']}",
        f"--TitanService.min_interval={autosave['min_interval']}",
        f"--TitanService.check_interval={autosave['check_interval']}",
        f"--TitanService.max_file_size={int(float(autosave['max_file_size_mb']) * 1024 * 1024)}",
        f"--TitanService.max_body_mb={autosave['max_body_mb']}",
        f"--Application.log_level={autosave['log_level']}",
    ]
    sharing = settings.sharing
    args += [
        f"--TitanService.public_links={sharing['public_links']}",
        f"--TitanService.frame_ancestors={json.dumps(list(sharing['frame_ancestors']))}",
        f"--TitanService.max_notebook_mb={sharing['max_notebook_mb']}",
        f"--TitanService.versions_kept={sharing['versions_kept']}",
        f"--TitanService.dashboard_profile={sharing['dashboard_profile']}",
        f"--TitanService.guess_limit={sharing['guess_limit']}",
        f"--TitanService.guess_window={sharing['guess_window']}",
        f"--TitanService.public_dashboard_port={sharing['public_dashboard_port']}",
        f"--TitanService.public_dashboard_url={sharing['public_dashboard_url']}",
        f"--TitanService.hub_public_url={settings.public_url}",
    ]
    if settings.gateway["enabled"]:  # the admin page stops Dask clusters through the gateway's control route
        args += [f"--Operations.gateway_url=http://127.0.0.1:{settings.gateway['api_port']}",
                 f"--Operations.gateway_token_file={settings.state_dir / 'dask-gateway-control-token'}"]
    if autosave["db_url"]:
        args.append(f"--TitanService.db_url={autosave['db_url']}")
    return args


def service(settings: Settings, address: str) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry: the hub starts, restarts and stops the service, which
    listens on the Titan ``address`` (core.network), where containers reach it."""
    environment = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    environment.update({"TITAN_SETTINGS": settings.source, "TITAN_STATE_DIR": str(settings.state_dir),
                        "PYTHONPATH": os.pathsep.join(p for p in (str(_repo_root()),) if p)})
    return {
        "name": SERVICE_NAME,
        "display": True,
        "info": {"description": "Git autosave of your repositories, and share links"},
        "url": f"http://{address}:{settings.service['port']}",
        "command": supervised(settings.state_dir, SERVICE_NAME, command(settings, address)),
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
    from titan.settings import REPO_ROOT

    return str(REPO_ROOT)
