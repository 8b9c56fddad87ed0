"""What JupyterHub needs to run the gateway as its managed service, built from titan.yaml.

jupyterhub_config.py only hands these to the hub: the service entry (command, URL, environment),
the scopes users and their servers' tokens need, and what the spawner needs (addresses for the
servers' environment, the control URL and token for stopping a server's clusters).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from core.endpoints import SERVER_STOPPED_PATH
from core.settings import Settings
from core.state import ensure_state_dir, secret_file
from core.supervise import supervised

SERVICE_NAME = "dask-gateway"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}"
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
CONFIG_FILE = Path(__file__).resolve().parent / "config.py"

# What a server's own token needs: the defaults of JupyterHub's `server` role, access to the
# gateway, and the user's groups (for per-group limits).
SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", ACCESS_SCOPE, "read:users:groups!user"]

# Variables the gateway process needs from the hub's environment (a managed service gets
# almost none by default).
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")


def listen_address(settings: Settings, titan_address: str) -> str:
    """Where the gateway's proxies listen and servers and schedulers reach them: the Titan address on
    one host; on Swarm (``engine: swarm``), the hub host's address on the nodes' network
    (``swarm.hub_address``), since servers and schedulers run on the nodes."""
    return str(settings.swarm["hub_address"]) if settings.engine == "swarm" else titan_address


def control_token(settings: Settings) -> str:
    """The secret the hub shows the gateway when a server stops (state/, mode 0600)."""
    return secret_file(ensure_state_dir(settings.state_dir) / "dask-gateway-control-token")


def service(settings: Settings, address: str) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry: the hub starts, restarts and stops the gateway, whose
    HTTP and TLS proxies listen on the Titan ``address`` (core.network), where containers reach them."""
    gateway = settings.gateway
    address = listen_address(settings, address)
    environment = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    environment.update({"TITAN_SETTINGS": settings.source, "TITAN_STATE_DIR": str(settings.state_dir),
                        "TITAN_ADDRESS": address})
    return {
        "name": SERVICE_NAME,
        "display": False,
        "url": f"http://{address}:{gateway['proxy_port']}",
        # Dask dashboards are served to their owner after a hub login (gateway.dashboards).
        "oauth_no_confirm": True,
        "command": supervised(settings.state_dir, SERVICE_NAME,
                              [sys.executable, "-m", "dask_gateway_server", "-f", str(CONFIG_FILE)]),
        "cwd": str(settings.state_dir),
        "environment": environment,
    }


def spawner_link(settings: Settings, titan_address: str) -> dict[str, str]:
    """``c.TitanDockerSpawner.dask_gateway``: read by spawner.dask_env and spawner.clusters. Servers
    reach the gateway at the Titan address; the hub reaches its control route on 127.0.0.1."""
    gateway = settings.gateway
    titan_address = listen_address(settings, titan_address)
    address = f"http://{titan_address}:{gateway['proxy_port']}{SERVICE_PREFIX}"
    return {
        "address": address,
        "proxy_address": f"gateway://{titan_address}:{gateway['scheduler_proxy_port']}",
        "public_address": settings.public_url + SERVICE_PREFIX,
        "control_url": f"http://127.0.0.1:{gateway['api_port']}{SERVER_STOPPED_PATH}",
        "control_token": control_token(settings),
    }


def with_user_access(roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``load_roles`` with the ``user`` role also granting access to the gateway (servers' tokens
    only get scopes their user holds)."""
    roles = [dict(r) for r in roles]
    user = next((r for r in roles if r.get("name") == "user"), None)
    if user is None:
        roles.append({"name": "user", "description": "Standard user privileges, and Dask Gateway",
                      "scopes": ["self", ACCESS_SCOPE]})
    elif ACCESS_SCOPE not in user.get("scopes", []):
        user["scopes"] = [*user.get("scopes", ["self"]), ACCESS_SCOPE]
    return roles


def with_server_token_scopes(scopes: list[str]) -> list[str]:
    return [*scopes, *(s for s in SERVER_TOKEN_SCOPES if s not in scopes)]
