"""Helpers for tests that work inside users' servers: make users, start servers, run Python in
them, find their Dask containers."""

from __future__ import annotations

import json
import secrets
import subprocess
import textwrap
from typing import Any

from core.labels import LABEL_CLUSTER
from tests.integration.hub import Hub, containers


def server_container(hub: Hub, user: str, server: str = "") -> str:
    found = [c for c in containers(hub.deployment, all_states=False)
             if c["Config"]["Labels"].get("titan.owner") == user
             and c["Config"]["Labels"].get("titan.server") == server]
    assert len(found) == 1, f"expected one server container for {user}/{server}"
    return str(found[0]["Name"]).lstrip("/")


def dask_containers(hub: Hub, user: str | None = None, cluster: str | None = None) -> list[dict[str, Any]]:
    return [c for c in containers(hub.deployment)
            if LABEL_CLUSTER in c["Config"]["Labels"]
            and (user is None or c["Config"]["Labels"]["titan.owner"] == user)
            and (cluster is None or c["Config"]["Labels"][LABEL_CLUSTER] == cluster)]


def run_in_server(container: str, code: str, timeout: float = 240, **args: Any) -> dict[str, Any]:
    """Run ``code`` with python inside the server container (its own environment, as jovyan);
    ``args`` arrive as the dict ``ARGS``; the script's last printed line is JSON."""
    script = "import json, sys\nARGS = json.loads(sys.argv[1])\n" + textwrap.dedent(code)
    result = subprocess.run(["docker", "exec", container, "python", "-c", script, json.dumps(args)],
                            capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def new_user(hub: Hub, prefix: str, groups: tuple[str, ...] = ()) -> str:
    name = prefix + secrets.token_hex(2)
    hub.admin.create_user(name)
    for group in groups:
        hub.admin.api("POST", f"/groups/{group}")
        response = hub.admin.api("POST", f"/groups/{group}/users", json={"users": [name]})
        assert response.status_code == 200, response.text
    return name


def spawn(hub: Hub, user: str, image: str = "minimal") -> str:
    hub.admin.spawn(user, "", {"profile": "small", "image": image})
    return server_container(hub, user)
