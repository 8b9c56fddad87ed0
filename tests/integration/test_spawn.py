"""Spawning real servers through the real hub and proxy, checked with ``docker inspect``."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.helpers import wait_for
from tests.integration.hub import Hub, containers, exec_in

pytestmark = [pytest.mark.docker, pytest.mark.hub]

GIB = 1024**3


@pytest.fixture
def user(hub: Hub) -> Iterator[str]:
    """A fresh user whose servers are all stopped after the test."""
    name = "u" + secrets.token_hex(3)
    hub.admin.create_user(name)
    yield name
    model = hub.admin.api("GET", f"/users/{name}").json()
    for server in model.get("servers", {}):
        hub.admin.api("DELETE", f"/users/{name}/servers/{server}")
    wait_for(lambda: not [c for c in containers(hub.deployment) if c["Config"]["Labels"]["titan.owner"] == name],
             60, f"{name}'s containers to go")


def container_of(hub: Hub, user: str, server: str = "") -> dict[str, Any]:
    found = [c for c in owned_containers(hub, user) if c["Config"]["Labels"].get("titan.server") == server]
    assert len(found) == 1, f"expected one container for {user}/{server}, found {len(found)}"
    return found[0]


def owned_containers(hub: Hub, user: str) -> list[dict[str, Any]]:
    return [c for c in containers(hub.deployment) if c["Config"]["Labels"].get("titan.owner") == user]


@pytest.mark.parametrize(("profile", "cpus", "memory"), [("small", 1, 2 * GIB), ("medium", 2, 8 * GIB)])
def test_cpu_profiles_this_host_can_satisfy_get_their_limits(hub: Hub, user: str, profile: str, cpus: int,
                                                             memory: int) -> None:
    hub.admin.spawn(user, "", {"profile": profile})
    config = container_of(hub, user)["HostConfig"]
    assert config["Memory"] == memory
    assert config["MemorySwap"] == memory  # swap included: no swap on top of the limit
    assert config["CpuQuota"] == cpus * config["CpuPeriod"]
    assert config["NetworkMode"] == f"{hub.deployment}-user-{user}"  # the user's own network
    assert config["PidsLimit"] == 4096 and config["CapDrop"] == ["ALL"]
    assert config["SecurityOpt"] == ["no-new-privileges:true"]
    labels = container_of(hub, user)["Config"]["Labels"]
    assert labels["titan.profile"] == profile and labels["titan.owner"] == user


@pytest.mark.parametrize(("options", "reason"), [
    ({"profile": "large"}, "needs 4 CPUs; this host has 2 CPUs"),
    ({"profile": "high-memory"}, "of memory; this host has"),
    ({"profile": "high-memory", "memory": "96G"}, "needs 96 GiB of memory"),
    ({"profile": "gpu", "gpu_type": "H100"}, "this host has no NVIDIA H100 GPU"),
])
def test_profiles_this_host_cannot_satisfy_are_refused_with_the_reason(hub: Hub, user: str,
                                                                      options: dict[str, str], reason: str) -> None:
    response = hub.admin.api("POST", f"/users/{user}/servers/big", json=options)
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert owned_containers(hub, user) == []


BAD_OPTIONS = [
    ({"profile": "nosuch"}, "Unknown profile 'nosuch'"),
    ({"profile": "small", "colour": "red"}, "Unknown option(s) for profile 'small': 'colour'"),
    ({"profile": "small", "image": "gentoo"}, "'gentoo' is not a choice for Environment"),
    ({"profile": "high-memory", "memory": "lots"}, "Type an amount between 64G and 512G"),
    ({"profile": 7}, "Option 'profile' must be a string"),
    ({"profile": "team-only"}, "Profile 'team-only' is not available to you"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_rest_options_get_400_and_create_nothing(hub: Hub, user: str, options: dict[str, Any],
                                                     message: str) -> None:
    response = hub.admin.api("POST", f"/users/{user}/servers/bad", json=options)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert owned_containers(hub, user) == []
    server = hub.admin.server(user, "bad")
    assert not server or not server.get("ready")


def test_a_body_that_is_not_an_object_gets_400(hub: Hub, user: str) -> None:
    response = hub.admin.api("POST", f"/users/{user}/servers/bad", data="[1, 2]")
    assert response.status_code == 400
    assert owned_containers(hub, user) == []


def test_server_api_through_the_proxy_with_the_users_token(hub: Hub, user: str) -> None:
    hub.admin.spawn(user, "", {"profile": "small"})
    token = hub.admin.user_token(user)
    status = requests.get(f"{hub.url}/user/{user}/api/status", headers={"Authorization": f"token {token}"},
                          timeout=30)
    assert status.status_code == 200
    assert "kernels" in status.json()


def test_another_users_token_cannot_reach_the_server(hub: Hub, user: str) -> None:
    hub.admin.spawn(user, "", {"profile": "small"})
    intruder = "x" + secrets.token_hex(3)
    hub.admin.create_user(intruder)
    token = hub.admin.user_token(intruder)
    response = requests.get(f"{hub.url}/user/{user}/api/contents", headers={"Authorization": f"token {token}"},
                            timeout=30, allow_redirects=False)
    assert response.status_code in (302, 403, 404)
    assert "content" not in response.text


def test_each_user_gets_a_network_and_an_address_of_their_own(hub: Hub, user: str) -> None:
    """Two users never share a network or an address: the hub must route each user to their own server."""
    other = "p" + secrets.token_hex(3)
    hub.admin.create_user(other)
    try:
        first = hub.admin.spawn(user, "", {"profile": "small"})
        second = hub.admin.spawn(other, "", {"profile": "small"})
        routes = {first["url"], second["url"]}
        assert len(routes) == 2
        token = hub.admin.user_token(other)
        me = requests.get(f"{hub.url}/user/{other}/api/me", headers={"Authorization": f"token {token}"}, timeout=30)
        assert me.status_code == 200 and me.json()["identity"]["name"] == other
        addresses = set()
        for name in (user, other):
            networks = container_of(hub, name)["NetworkSettings"]["Networks"]
            assert list(networks) == [f"{hub.deployment}-user-{name}"]
            addresses.add(networks[f"{hub.deployment}-user-{name}"]["IPAddress"])
            env = dict(e.split("=", 1) for e in container_of(hub, name)["Config"]["Env"])
            assert not env["JUPYTERHUB_API_URL"].startswith("http://127.0.0.1")  # the hub's Titan address
        assert len(addresses) == 2
    finally:
        hub.admin.api("DELETE", f"/users/{other}/server")


def test_memory_hog_is_killed_inside_the_container_and_nothing_else(hub: Hub, user: str) -> None:
    hub.admin.spawn(user, "", {"profile": "small"})
    name = container_of(hub, user)["Name"].lstrip("/")
    hog = exec_in(name, "python3", "-c", "x = b'\\x01' * (3 * 1024**3); print('survived')")
    assert hog.returncode == 137, (hog.returncode, hog.stdout, hog.stderr)  # SIGKILL from the OOM killer
    assert "survived" not in hog.stdout
    assert container_of(hub, user)["State"]["Running"]
    token = hub.admin.user_token(user)
    status = requests.get(f"{hub.url}/user/{user}/api/status", headers={"Authorization": f"token {token}"},
                          timeout=30)
    assert status.status_code == 200
    assert hub.admin.api("GET", "/").status_code == 200


def test_two_named_servers_with_different_profiles_and_a_shared_home(hub: Hub, user: str,
                                                                     built_images: dict[str, str]) -> None:
    hub.admin.spawn(user, "analysis", {"profile": "small", "image": "minimal"})
    hub.admin.spawn(user, "modelling", {"profile": "medium", "image": "datascience"})
    analysis, modelling = container_of(hub, user, "analysis"), container_of(hub, user, "modelling")
    assert analysis["Config"]["Image"] == built_images["minimal"]
    assert modelling["Config"]["Image"] == built_images["datascience"]
    assert analysis["HostConfig"]["Memory"] == 2 * GIB and modelling["HostConfig"]["Memory"] == 8 * GIB
    volumes = {m["Name"] for c in (analysis, modelling) for m in c["Mounts"] if m["Type"] == "volume"}
    assert volumes == {f"{hub.deployment}-home-{user}"}

    written = exec_in(analysis["Name"].lstrip("/"), "sh", "-c", "echo kept-across-servers > /home/jovyan/note.txt")
    assert written.returncode == 0, written.stderr
    hub.admin.stop(user, "analysis")
    assert [c for c in owned_containers(hub, user) if c["Config"]["Labels"]["titan.server"] == "analysis"] == []
    volume = exec_in(modelling["Name"].lstrip("/"), "cat", "/home/jovyan/note.txt")
    assert volume.stdout.strip() == "kept-across-servers"

    hub.admin.stop(user, "modelling")
    assert owned_containers(hub, user) == []
    hub.admin.spawn(user, "again", {"profile": "small"})
    again = exec_in(container_of(hub, user, "again")["Name"].lstrip("/"), "cat", "/home/jovyan/note.txt")
    assert again.stdout.strip() == "kept-across-servers"


def test_named_server_limit(hub: Hub, user: str) -> None:
    for name in ("one", "two", "three"):
        response = hub.admin.api("POST", f"/users/{user}/servers/{name}", json={"profile": "small"})
        assert response.status_code in (201, 202)
    fourth = hub.admin.api("POST", f"/users/{user}/servers/four", json={"profile": "small"})
    assert fourth.status_code == 400
    assert "maximum of 3 named servers" in fourth.json()["message"]


def test_progress_reports_the_real_stages(hub: Hub, user: str) -> None:
    """Events come from the spawner while the spawn is pending, and survive JSON."""
    spawning = threading.Thread(
        target=hub.admin.api, args=("POST", f"/users/{user}/servers/watched"), kwargs={"json": {"profile": "small"}})
    spawning.start()
    wait_for(lambda: (s := hub.admin.server(user, "watched")) and s.get("pending") == "spawn", 30, "spawn pending")
    events: list[dict[str, Any]] = []
    with hub.admin.session.get(f"{hub.url}/hub/api/users/{user}/servers/watched/progress", stream=True,
                               timeout=120) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                events.append(event)
                if event.get("ready") or event.get("failed"):
                    break
    messages = [e["message"] for e in events]
    assert any(m.startswith("Checking image titan/minimal:") for m in messages), messages
    assert "Creating the container" in messages
    assert any(m.startswith("Starting container") for m in messages)
    assert any(m.startswith("Preparing your network") for m in messages), messages
    assert any("waiting for JupyterLab on 10." in m for m in messages)
    spawning.join(120)
    assert events[-1].get("ready") is True
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and all(isinstance(p, int) for p in progress)


def test_spawn_form_shows_allowed_profiles_escaped(hub: Hub, user: str) -> None:
    session = hub.login(user)
    page = session.get(f"{hub.url}/hub/spawn/{user}/formtest", timeout=30)
    assert page.status_code == 200
    html = page.text
    assert 'value="small"' in html and 'value="medium"' in html
    assert "Unavailable: needs 4 CPUs" in html  # large, disabled with its reason
    assert "team-only" not in html  # gated by group
    assert "<script>alert('titan')</script>" not in html
    assert "&lt;script&gt;alert(&#39;titan&#39;)&lt;/script&gt;" in html
    assert "Tricky &lt;b&gt;name&lt;/b&gt;" in html


def test_form_submission_spawns_and_bad_form_is_refused(hub: Hub, user: str) -> None:
    session = hub.login(user)
    form_url = f"{hub.url}/hub/spawn/{user}/viaform"
    session.get(form_url, timeout=30)
    bad = session.post(form_url, data={"_xsrf": hub.xsrf(session), "profile": "small",
                                       "profile-option-small--image": "gentoo"}, timeout=60)
    assert bad.status_code == 400
    assert "is not a choice for Environment" in bad.text
    assert owned_containers(hub, user) == []
    good = session.post(form_url, data={"_xsrf": hub.xsrf(session), "profile": "medium",
                                        "profile-option-medium--image": "datascience"}, timeout=60)
    assert good.status_code == 200
    server = wait_for(lambda: (s := hub.admin.server(user, "viaform")) and s.get("ready") and s, 120, "form spawn")
    assert server["user_options"] == {"profile": "medium", "image": "datascience"}
    assert container_of(hub, user, "viaform")["HostConfig"]["Memory"] == 8 * GIB


def test_group_member_sees_and_may_use_the_gated_profile(hub: Hub, user: str) -> None:
    hub.admin.api("POST", "/groups/data-team")
    added = hub.admin.api("POST", "/groups/data-team/users", json={"users": [user]})
    assert added.status_code == 200, added.text
    html = hub.login(user).get(f"{hub.url}/hub/spawn/{user}/gated", timeout=30).text
    assert 'value="team-only"' in html
    hub.admin.spawn(user, "gated", {"profile": "team-only"})
    assert container_of(hub, user, "gated")["HostConfig"]["Memory"] == 1 * GIB
