"""Every user in their own network: probes from inside real containers on a real hub.

Alice has a server and a Dask cluster (scheduler and a worker); bob has a server. From inside bob's
server, a TCP connection is tried to every socket that alice's containers listen on (read from
their own ``/proc/net/tcp`` and ``tcp6``), at every address they have: none connects. The same probe
from alice's own server reaches her scheduler (the probe works). Alice's Dask dashboard opens for
her in a logged-in browser session and is refused to anonymous clients and to bob (token, session,
and from inside his container). Containers reach the hub API, the gateway and the Titan service at
the addresses in their environment. A fork loop in a server stops at the profile's process limit.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.helpers import free_port, wait_for
from tests.integration.hub import Hub, containers, networks, remove_deployment, running_hub, start_hub, stop_hub
from tests.integration.servers import dask_containers, new_user, run_in_server, server_container

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DASK = {
    "worker_cores": {"choices": [0.5], "default": 0.5},
    "worker_memory": {"choices": ["768M"], "default": "768M"},
    "scheduler": {"cores": 0.5, "memory": "512M"},
    "limits": {"max_clusters": 1, "max_cores": 2, "max_memory": "3G", "max_workers": 1},
}
FORKY = {"profiles": [{"display_name": "Forky", "slug": "forky", "description": "A low process limit.",
                       "image": "minimal", "resources": {"cpu": 1, "memory": "1G", "processes": 200}}]}

LISTENING = """
import json, socket, struct
found = set()
for path, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
    try:
        lines = open(path).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state != "0A":  # LISTEN
            continue
        address, port = local.split(":")
        if family == 4:
            host = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(address, 16)))
        else:
            raw = bytes.fromhex(address)
            host = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
        found.add((host, int(port, 16)))
print(json.dumps(sorted(found)))
"""

PROBE = """
import json, socket
connected = []
for host, port in ARGS["targets"]:
    try:
        with socket.create_connection((host, port), timeout=2):
            connected.append([host, port])
    except OSError:
        pass
print(json.dumps({"tried": len(ARGS["targets"]), "connected": connected}))
"""

NEW_CLUSTER = """
import gc
import numpy as np, pandas as pd, dask.dataframe as dd
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster(shutdown_on_close=False)
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=180)
rng = np.random.default_rng(7)
pdf = pd.DataFrame({"k": rng.integers(1, 50, 20_000), "v": rng.gamma(2.0, 1.5, 20_000)})
got = dd.from_pandas(pdf, npartitions=4).groupby("k").v.mean().compute().sort_index()
expected = pdf.groupby("k").v.mean().sort_index()
same = bool(got.index.equals(expected.index) and np.allclose(got.values, expected.values))
print(json.dumps({"name": cluster.name, "same_as_pandas": same}))
client.close()
gateway.close()
gc.collect()
"""


def listening(container: str) -> list[tuple[str, int]]:
    result = subprocess.run(["docker", "exec", container, "python", "-c", LISTENING], capture_output=True,
                            text=True, check=True, timeout=60)
    return [(host, port) for host, port in json.loads(result.stdout)]


def addresses(container: dict[str, Any]) -> list[str]:
    return [n["IPAddress"] for n in container["NetworkSettings"]["Networks"].values() if n["IPAddress"]]


def namespace_of(container: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The container whose network namespace ``container`` runs in: itself, or for a Dask scheduler
    or worker (``network_mode: container:<id>``) its server."""
    mode = container["HostConfig"]["NetworkMode"]
    return by_id[mode.removeprefix("container:")] if mode.startswith("container:") else container


def targets_of(container: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Every (address, port) the container listens on, at every address its namespace has on a
    network. (Its loopback is its namespace's own: no other namespace can address it.)"""
    mine = addresses(namespace_of(container, by_id))
    assert mine, f"{container['Name']} has no address"
    found = []
    for host, port in listening(container["Id"]):
        if host in ("0.0.0.0", "::"):
            found += [[a, port] for a in mine]
        elif host in mine:
            found.append([host, port])
    return found


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    root: Path = tmp_path_factory.mktemp("isolation-hub")
    (root / "profiles").mkdir()
    (root / "profiles" / "30-dask.yaml").write_text(yaml.safe_dump({"dask": DASK}))
    (root / "profiles" / "40-forky.yaml").write_text(yaml.safe_dump(FORKY))
    gateway = {"api_port": free_port(), "proxy_port": free_port(), "scheduler_proxy_port": free_port()}
    with running_hub(root, {"gateway": gateway}) as running:
        running.extra["gateway"] = gateway
        yield running


@pytest.fixture(scope="module")
def alice(hub: Hub) -> dict[str, Any]:
    user = new_user(hub, "alice")
    hub.admin.spawn(user, "", {"profile": "small", "image": "datascience"})
    container = server_container(hub, user)
    result = run_in_server(container, NEW_CLUSTER, timeout=300)
    assert result["same_as_pandas"]
    return {"user": user, "container": container, "cluster": result["name"], "token": hub.admin.user_token(user)}


@pytest.fixture(scope="module")
def bob(hub: Hub) -> dict[str, Any]:
    user = new_user(hub, "bob")
    hub.admin.spawn(user, "", {"profile": "small", "image": "datascience"})
    return {"user": user, "container": server_container(hub, user), "token": hub.admin.user_token(user)}


def test_bob_cannot_connect_to_any_socket_of_alices_server_scheduler_or_worker(
        hub: Hub, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    everyone = {c["Id"]: c for c in containers(hub.deployment, all_states=False)}
    alices = [c for c in everyone.values() if c["Config"]["Labels"].get("titan.owner") == alice["user"]]
    roles = sorted(c["Config"]["Labels"].get("titan.dask.role", "server") for c in alices)
    assert roles == ["scheduler", "server", "worker"]
    # The scheduler and the worker run in the namespace of the server the cluster belongs to.
    assert {namespace_of(c, everyone)["Name"].lstrip("/") for c in alices} == {alice["container"]}
    targets = sorted({tuple(t) for c in alices for t in targets_of(c, everyone)})
    ports = {port for _, port in targets}
    assert 8888 in ports and len(targets) >= 6, targets  # JupyterLab, the scheduler's and worker's ports
    from_bob = run_in_server(bob["container"], PROBE, targets=targets)
    assert from_bob == {"tried": len(targets), "connected": []}
    # The same probe from alice's own server reaches every one of them: it does detect an open port.
    from_alice = run_in_server(alice["container"], PROBE, targets=targets)
    assert len(from_alice["connected"]) == len(targets)
    print(f"\n[isolation] bob tried {len(targets)} sockets of alice's 3 containers: 0 connected; "
          f"alice reached {len(targets)} of {len(targets)}")


def test_kernels_listen_on_their_containers_loopback_only(hub: Hub, alice: dict[str, Any]) -> None:
    token = alice["token"]
    url = f"{hub.url}/user/{alice['user']}/api/kernels"
    before = set(listening(alice["container"]))  # JupyterLab, and Docker's resolver on 127.0.0.11
    kernel = requests.post(url, headers={"Authorization": f"token {token}"}, json={"name": "python3"}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    try:
        def kernel_ports() -> list[tuple[str, int]]:
            return [socket for socket in listening(alice["container"]) if socket not in before]
        found: list[tuple[str, int]] = wait_for(lambda: kernel_ports() if len(kernel_ports()) >= 5 else None, 60,
                                                "the kernel's ports")
        assert {host for host, _ in found} == {"127.0.0.1"}, found
    finally:
        requests.delete(f"{url}/{kernel.json()['id']}", headers={"Authorization": f"token {token}"}, timeout=30)


def test_each_user_has_one_network_and_no_container_joins_the_deployments_own(
        hub: Hub, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    names = set(networks(hub.deployment))
    assert {f"{hub.deployment}-titan", f"{hub.deployment}-user-{alice['user']}",
            f"{hub.deployment}-user-{bob['user']}"} <= names
    everyone = {c["Id"]: c for c in containers(hub.deployment, all_states=False)}
    for container in everyone.values():
        owner = container["Config"]["Labels"]["titan.owner"]
        namespace = namespace_of(container, everyone)  # a Dask container: its server's
        assert namespace["Config"]["Labels"]["titan.owner"] == owner
        assert "titan.dask.role" not in namespace["Config"]["Labels"]
        assert list(namespace["NetworkSettings"]["Networks"]) == [f"{hub.deployment}-user-{owner}"]


def dashboard_url(hub: Hub, cluster: str) -> str:
    return f"{hub.url}/services/dask-gateway/clusters/{cluster}/status"


def test_alices_dashboard_is_hers_after_a_hub_login(hub: Hub, alice: dict[str, Any]) -> None:
    session = hub.login(alice["user"])
    page = session.get(dashboard_url(hub, alice["cluster"]), timeout=60)
    assert page.status_code == 200, (page.status_code, page.url, page.text[:300])
    assert page.url == dashboard_url(hub, alice["cluster"])  # back where she started, after the hub's login
    assert "bokeh" in page.text.lower() or "dask" in page.text.lower()
    with_token = requests.get(dashboard_url(hub, alice["cluster"]),
                              headers={"Authorization": f"token {alice['token']}"}, timeout=60)
    assert with_token.status_code == 200


def test_alices_dashboard_is_refused_to_anonymous_clients_and_to_bob(
        hub: Hub, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    url = dashboard_url(hub, alice["cluster"])
    anonymous = requests.get(url, timeout=60)  # a browser with no session: sent to the hub's login
    assert anonymous.status_code == 200 and "/hub/login" in anonymous.url and "bokeh" not in anonymous.text.lower()
    assert requests.get(url, allow_redirects=False, timeout=60).status_code == 302
    assert requests.get(url, headers={"Authorization": "token not-a-token"}, timeout=60).status_code == 401
    assert requests.get(url, headers={"Authorization": f"token {bob['token']}"}, timeout=60).status_code == 403
    assert hub.login(bob["user"]).get(url, timeout=60).status_code == 403
    # From inside bob's container, through the gateway's proxy on the Titan address: the same gate.
    inside = run_in_server(bob["container"], """
        import os, urllib.request, urllib.error
        base = os.environ["DASK_GATEWAY__ADDRESS"]
        class Stay(urllib.request.HTTPRedirectHandler):  # report a redirect instead of following it
            def redirect_request(self, *args, **kwargs):
                return None
        opener = urllib.request.build_opener(Stay)
        codes = {}
        mine = {"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}
        for who, headers in (("anonymous", {}), ("bob", mine)):
            request = urllib.request.Request(f"{base}/clusters/{ARGS['cluster']}/status", headers=headers)
            try:
                codes[who] = opener.open(request, timeout=30).status
            except urllib.error.HTTPError as error:
                codes[who] = error.code
        print(json.dumps(codes))
    """, cluster=alice["cluster"])
    assert inside == {"anonymous": 302, "bob": 403}, inside  # anonymous: sent to the hub's login


def test_containers_reach_the_hub_the_gateway_and_the_service_at_their_addresses(
        hub: Hub, bob: dict[str, Any]) -> None:
    seen = run_in_server(bob["container"], """
        import os, urllib.request, urllib.error
        def status(url, token=True):
            headers = {"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]} if token else {}
            try:
                return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30).status
            except urllib.error.HTTPError as error:
                return error.code
        print(json.dumps({
            "env": {k: os.environ.get(k, "") for k in ("JUPYTERHUB_API_URL", "DASK_GATEWAY__ADDRESS",
                                                       "TITAN_SERVICE_URL")},
            "hub": status(os.environ["JUPYTERHUB_API_URL"] + "/user"),
            "gateway": status(os.environ["DASK_GATEWAY__ADDRESS"] + "/api/health", token=False),
            "service": status(os.environ["TITAN_SERVICE_URL"] + "api/openapi.json", token=False),
            "service_as_owner": status(os.environ["TITAN_SERVICE_URL"] + "api/openapi.json"),
        }))
    """)
    address = hub.titan_address
    assert all(value.startswith(f"http://{address}:") for value in seen["env"].values()), seen
    assert seen["hub"] == 200 and seen["gateway"] == 200
    assert seen["service"] == 403, seen  # reached: the service itself refuses an anonymous call
    assert seen["service_as_owner"] == 200, seen  # and answers the server's own token (its owner)


def test_nothing_of_the_deployment_listens_on_every_interface(hub: Hub) -> None:
    import psutil

    pids = {hub.process.pid, *(c.pid for c in psutil.Process(hub.process.pid).children(recursive=True))}
    listening = [(c.laddr, c.pid) for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    wide = [(address[0], address[1], pid) for address, pid in listening
            if pid in pids and address and address[0] in ("0.0.0.0", "::")]
    assert wide == []


FORK_LOOP = """
import errno, json, os, time
forked = refused = 0
end = time.monotonic() + ARGS["seconds"]
while time.monotonic() < end:
    try:
        pid = os.fork()
    except OSError as error:
        assert error.errno == errno.EAGAIN, error
        refused += 1
        time.sleep(0.01)
        continue
    if pid == 0:  # a child holds its place a while, then goes: the loop ends by itself
        time.sleep(ARGS["seconds"] + 5)
        os._exit(0)
    forked += 1
print(json.dumps({"forked": forked, "refused": refused}), flush=True)
os._exit(0)
"""


def test_a_fork_loop_stops_at_the_process_limit_and_nobody_else_notices(
        hub: Hub, bob: dict[str, Any]) -> None:
    user = new_user(hub, "fork")
    hub.admin.spawn(user, "", {"profile": "forky"})
    container = server_container(hub, user)
    token = hub.admin.user_token(user)
    inspect = subprocess.run(["docker", "inspect", container, "--format", "{{.HostConfig.PidsLimit}}"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert inspect == "200"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loop = pool.submit(run_in_server, container, FORK_LOOP, 120, seconds=12)
        time.sleep(6)
        # During the loop: the forking user's own server and bob's still answer through the proxy.
        during = {name: requests.get(f"{hub.url}/user/{name}/api/status", timeout=30,
                                     headers={"Authorization": f"token {key}"}).status_code
                  for name, key in ((user, token), (bob["user"], bob["token"]))}
        result = loop.result()
    assert during == {user: 200, bob["user"]: 200}
    assert result["refused"] > 0 and result["forked"] < 200, result
    print(f"\n[isolation] fork loop: {result['forked']} forks, then {result['refused']} refused (pids.max 200)")
    hub.admin.stop(user)
    assert not [c for c in containers(hub.deployment) if c["Config"]["Labels"].get("titan.owner") == user]


def test_the_last_container_of_a_user_takes_their_network_with_it(hub: Hub) -> None:
    user = new_user(hub, "net")
    hub.admin.spawn(user, "", {"profile": "small"})
    assert f"{hub.deployment}-user-{user}" in networks(hub.deployment)
    hub.admin.stop(user)
    wait_for(lambda: f"{hub.deployment}-user-{user}" not in networks(hub.deployment), 30,
             "the user's network to go")


def test_two_deployments_on_one_engine_never_share_a_network(
        hub: Hub, tmp_path: Path, alice: dict[str, Any]) -> None:
    other = start_hub(tmp_path)
    try:
        user = alice["user"]  # the same user name in both deployments
        other.admin.create_user(user)
        other.admin.spawn(user, "", {"profile": "small"})
        theirs = [c for c in containers(other.deployment, all_states=False)
                  if c["Config"]["Labels"].get("titan.owner") == user]
        assert len(theirs) == 1
        mine = [c for c in containers(hub.deployment, all_states=False)
                if c["Config"]["Labels"].get("titan.owner") == user and "titan.server" in c["Config"]["Labels"]]
        assert list(theirs[0]["NetworkSettings"]["Networks"]) != list(mine[0]["NetworkSettings"]["Networks"])
        assert other.titan_address != hub.titan_address
        assert not set(networks(other.deployment)) & set(networks(hub.deployment))
        # Same user, other deployment: still no way in.
        targets = targets_of(mine[0], {c["Id"]: c for c in mine})  # a server: its own namespace
        result = run_in_server(str(theirs[0]["Name"]).lstrip("/"), PROBE, targets=targets)
        assert result["connected"] == []
    finally:
        stop_hub(other)
        remove_deployment(other.deployment)
    assert networks(other.deployment) == []
    assert dask_containers(hub, user=alice["user"])  # the first deployment's cluster is untouched
