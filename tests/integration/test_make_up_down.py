"""The README's commands for operators, run as an admin runs them: ``scripts/titan.sh up``, ``status``
and ``down`` (what ``make up`` and friends call), driven by a titan.yaml of its own (another URL,
state directory and deployment than the defaults), with servers running, and after a hub crash."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import yaml

from tests.helpers import free_port, wait_for
from tests.integration.hub import REPO, HubClient, containers, remove_deployment, write_test_profiles

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def titan(command: str, settings: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "JUPYTERHUB_", "TITAN_"))}
    env["TITAN_SETTINGS"] = str(settings)
    return subprocess.run(["bash", str(REPO / "scripts" / "titan.sh"), command], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


@pytest.fixture
def deployment(tmp_path: Path, built_images: dict[str, str]) -> Iterator[dict[str, Any]]:
    name = "titanops-" + secrets.token_hex(3)
    write_test_profiles(tmp_path / "profiles")
    port = free_port()
    document = {
        "deployment": name, "state_dir": str(tmp_path / "state"),
        "hub": {"public_url": f"http://127.0.0.1:{port}", "hub_port": free_port(), "proxy_api_port": free_port()},
        "spawner": {"profiles_dir": str(tmp_path / "profiles")},
        "gateway": {"api_port": free_port(), "proxy_port": free_port(), "scheduler_proxy_port": free_port()},
        "service": {"port": free_port()},
    }
    settings = tmp_path / "titan.yaml"
    settings.write_text(yaml.safe_dump(document))
    box = {"name": name, "settings": settings, "url": f"http://127.0.0.1:{port}", "state": tmp_path / "state",
           "root": tmp_path}
    try:
        yield box
    finally:
        titan("down", settings, timeout=120)
        remove_deployment(name)


def pids(state: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in (state / "pids").glob("*.pid")}


def all_four(state: Path) -> dict[str, int] | None:
    """The pid files of the proxy and the three services, once all are written."""
    found = pids(state)
    return found if len(found) == 4 else None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_up_status_and_down_follow_titan_yaml_and_down_leaves_nothing(
        deployment: dict[str, Any], tmp_path: Path) -> None:
    up = titan("up", deployment["settings"])
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"Titan is running at {deployment['url']}" in up.stdout
    assert requests.get(f"{deployment['url']}/hub/api", timeout=10).status_code == 200
    status = titan("status", deployment["settings"])
    assert f"running at {deployment['url']}" in status.stdout and str(deployment["state"]) in status.stdout
    # Another titan.yaml (another state directory) is another deployment: not this hub.
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "other-state"),
                                     "hub": {"public_url": f"http://127.0.0.1:{free_port()}"}}))
    assert "not running" in titan("status", other).stdout
    assert "not running" in titan("down", other).stdout
    assert requests.get(f"{deployment['url']}/hub/api", timeout=10).status_code == 200  # untouched
    admin = HubClient(deployment["url"], (deployment["state"] / "admin-token").read_text().strip())
    for user in ("ann", "ben", "cat"):
        admin.create_user(user)
        admin.spawn(user, "", {"profile": "small"})
    processes = wait_for(lambda: all_four(deployment["state"]), 60, "the hub's proxy and three services")
    assert set(processes) == {"proxy", "dask-gateway", "titan", "idle-culler"}
    started = time.monotonic()
    down = titan("down", deployment["settings"], timeout=120)
    took = time.monotonic() - started
    print(f"\n[operations] make down with 3 servers: {took:.1f} s\n{down.stdout}")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no process of this deployment is left and its ports are free" in down.stdout
    assert not [p for p in processes.values() if alive(p)]
    assert containers(deployment["name"], all_states=True) == []
    deployment["down_seconds"] = took
    # make up after make down: at once, no port still held.
    again = titan("up", deployment["settings"])
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_hub_crash_leaves_nothing_and_the_next_up_starts_clean(deployment: dict[str, Any]) -> None:
    assert titan("up", deployment["settings"]).returncode == 0
    hub_pid = int((deployment["state"] / "jupyterhub.pid").read_text())
    children = wait_for(lambda: all_four(deployment["state"]), 60, "the hub to start its proxy and three services")
    assert set(children) == {"proxy", "dask-gateway", "titan", "idle-culler"}
    os.kill(hub_pid, signal.SIGKILL)
    wait_for(lambda: not [p for p in children.values() if alive(p)], 20,
             "the proxy and the services to end with the hub")
    left = [name for name, pid in children.items() if alive(pid)]
    print(f"\n[operations] processes left 20 s after kill -9 of the hub: {len(left)}")
    up = titan("up", deployment["settings"])
    assert up.returncode == 0, up.stdout + up.stderr
    log = (deployment["state"] / "jupyterhub.log").read_text(errors="replace")
    assert "address already in use" not in log.lower()
    again = wait_for(lambda: all_four(deployment["state"]), 60, "the new hub's proxy and services")
    assert all(alive(pid) for pid in again.values()) and set(again) == set(children)
    marker = str(deployment["state"] / "pids" / "idle-culler.pid")
    supervisors = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
    assert len(supervisors) == 1  # one culler, not two
    assert ["jupyterhub_idle_culler" in " ".join(c.cmdline()) for c in supervisors[0].children()] == [True]
    down = titan("down", deployment["settings"], timeout=120)
    assert down.returncode == 0 and "no process of this deployment is left" in down.stdout, down.stdout
