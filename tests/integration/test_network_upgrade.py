"""A hub that dies and comes back keeps every route to the servers on users' networks; a server
still running on the host network (Titan before per-user networks, left running because its hub
died rather than stopped) is retired at the next start, its home kept, and starts again on its
user's network."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import wait_for
from tests.integration.hub import Hub, containers, exec_in, remove_deployment, restart_hub, start_hub, stop_hub
from tests.integration.servers import new_user, server_container

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def hub_box(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[dict[str, Any]]:
    root: Path = tmp_path_factory.mktemp("upgrade-hub")
    box: dict[str, Any] = {"hub": start_hub(root)}
    try:
        yield box
    finally:
        stop_hub(box["hub"])
        remove_deployment(box["hub"].deployment)


def kill_hub(hub: Hub) -> None:
    """SIGKILL the hub with its proxy and services (its process group); containers stay."""
    os.killpg(hub.process.pid, signal.SIGKILL)
    hub.process.wait(30)


def status(hub: Hub, user: str, token: str) -> int:
    return requests.get(f"{hub.url}/user/{user}/api/status", headers={"Authorization": f"token {token}"},
                        timeout=30).status_code


def test_a_hub_restart_keeps_every_route(hub_box: dict[str, Any]) -> None:
    hub: Hub = hub_box["hub"]
    users = [new_user(hub, "alice"), new_user(hub, "bob")]
    tokens = {}
    for user in users:
        hub.admin.spawn(user, "", {"profile": "small"})
        tokens[user] = hub.admin.user_token(user)
        assert status(hub, user, tokens[user]) == 200
    before = {c["Id"] for c in containers(hub.deployment, all_states=False)}
    kill_hub(hub)
    hub = hub_box["hub"] = restart_hub(hub)
    for user in users:
        assert status(hub, user, tokens[user]) == 200, user
    assert {c["Id"] for c in containers(hub.deployment, all_states=False)} == before  # the same servers
    hub_box["users"], hub_box["tokens"] = users, tokens


def test_a_server_on_the_old_host_network_is_retired_and_starts_again_on_its_network(
        hub_box: dict[str, Any], built_images: dict[str, str]) -> None:
    hub: Hub = hub_box["hub"]
    alice = hub_box["users"][0]
    name = server_container(hub, alice)
    assert exec_in(name, "sh", "-c", "echo kept > /home/jovyan/before-upgrade.txt").returncode == 0
    old = next(c for c in containers(hub.deployment, all_states=False) if c["Name"] == f"/{name}")
    kill_hub(hub)
    # What the old release left running: the same container name and labels, on the host network.
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=True)
    labels = [arg for key, value in old["Config"]["Labels"].items() for arg in ("--label", f"{key}={value}")]
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", *labels,
                    "-v", f"{hub.deployment}-home-{alice}:/home/jovyan", built_images["minimal"], "sleep", "600"],
                   capture_output=True, check=True)
    hub = hub_box["hub"] = restart_hub(hub)
    wait_for(lambda: not hub.admin.server(alice), 60, "the old-model server to be retired")
    assert not any(c["Name"] == f"/{name}" for c in containers(hub.deployment))
    assert "runs on the host network" in hub.log_path.read_text(errors="replace")
    # Bob's server, on his network, was left alone.
    bob = hub_box["users"][1]
    assert status(hub, bob, hub_box["tokens"][bob]) == 200
    # Alice starts again: on her own network, with her home as it was.
    hub.admin.spawn(alice, "", {"profile": "small"})
    again = next(c for c in containers(hub.deployment, all_states=False) if c["Name"] == f"/{name}")
    assert list(again["NetworkSettings"]["Networks"]) == [f"{hub.deployment}-user-{alice}"]
    assert exec_in(name, "cat", "/home/jovyan/before-upgrade.txt").stdout.strip() == "kept"
