"""Titan on a real Docker Swarm (titan.yaml ``engine: swarm``): the real hub and proxy on this host,
servers as services on two worker nodes of a three-node swarm (tests/swarm/testbed.py; the manager
drained, as in production), each node keeping its own firewall that admits only the hub host to the
servers' published ports.

Images come from the registry on the manager (pushed as `scripts/titan.sh images` pushes them), homes
from the hub host's homes directory, which every node mounts over the network (sshfs here, NFS in
production). Three users spawn through the hub's REST API; the proxy reaches each server on its node; tokens are
checked across users; servers of different users cannot reach each other on one node or across
nodes while one user's servers reach each other; profiles are placed by node pool and by GPUs (fake
generic resources), and what no node can hold is refused with the reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import pytest
import requests
import yaml

from core.engine.swarm import SwarmEngine
from core.images import image_tag
from core.labels import NODE_POOL
from core.registry import registry_digest, registry_image
from service.dockerhost import DockerHost
from tests.helpers import wait_for
from tests.integration.hub import Hub, start_hub, stop_hub
from tests.swarm.host import can_run
from tests.swarm.registry import push_to_bed
from tests.swarm.testbed import Testbed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

USERS = ("alice", "bob", "carol")
PORTS = (30000, 30999)
PROBE = ("import json, socket, sys\nfrom concurrent.futures import ThreadPoolExecutor\n"
         "def reach(target):\n    host, port = target.rsplit(':', 1)\n"
         "    try:\n        socket.create_connection((host, int(port)), timeout=1.5).close()\n        return True\n"
         "    except OSError:\n        return False\n"
         "with ThreadPoolExecutor(16) as pool:\n"
         "    print(json.dumps(dict(zip(sys.argv[1:], pool.map(reach, sys.argv[1:])))))")
SWARM_PROFILES = {
    "profiles": [
        {"display_name": "Tiny", "slug": "tiny", "image": "minimal", "resources": {"cpu": 0.25, "memory": "768M"}},
        {"display_name": "Small pool", "slug": "small-pool", "image": "minimal",
         "resources": {"cpu": 0.25, "memory": "768M", "pool": "small"}},
        {"display_name": "Big pool", "slug": "big-pool", "image": "minimal",
         "resources": {"cpu": 0.25, "memory": "768M", "pool": "big"}},
        {"display_name": "Nowhere", "slug": "nowhere", "image": "minimal",
         "resources": {"cpu": 0.25, "memory": "768M", "pool": "nowhere"}},
        {"display_name": "One H100", "slug": "one-h100", "image": "minimal",
         "resources": {"cpu": 0.25, "memory": "768M", "gpu": {"type": "H100", "count": 1}}},
        {"display_name": "One T4", "slug": "one-t4", "image": "minimal",
         "resources": {"cpu": 0.25, "memory": "768M", "gpu": {"type": "T4", "count": 1}}},
    ]
}


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    why = can_run()
    if why:
        pytest.skip(why)
    testbed = Testbed(nodes=3, firewall=True, labels={2: {NODE_POOL: "small"}, 3: {NODE_POOL: "big"}},
                      resources={2: ["h100=fake-a", "h100=fake-b"]}, registry=True, homes=True)
    testbed.up()
    try:
        testbed.drain(1)
        testbed.admit_only(testbed.host_address, *PORTS)
        # What `scripts/titan.sh images` does on a swarm.
        pushed = push_to_bed(testbed.registry, ["minimal"], manager=testbed.manager)
        testbed.timings.update({f"push {k}": v for k, v in pushed.items()})
        print(f"\ntest bed {testbed.prefix}: " + ", ".join(f"{k} {v:.1f} s" for k, v in testbed.timings.items()))
        yield testbed
    finally:
        testbed.down()
        assert testbed.leftovers() == []


@pytest.fixture(scope="module")
def hub(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("swarm-hub")
    started = start_hub(root, {
        "engine": "swarm",
        "swarm": {"manager": bed.manager, "hub_address": bed.host_address, "published_ports": f"{PORTS[0]}-{PORTS[1]}",
                  "registry": bed.registry, "homes_root": str(bed.homes_root)},
        "spawner": {"poll_interval": 2},
        "service": {"enabled": False},
    })
    (started.profiles_dir / "30-swarm.yaml").write_text(yaml.safe_dump(SWARM_PROFILES, sort_keys=False))
    try:
        for user in USERS:
            started.admin.create_user(user)
        yield started
    finally:
        for user in USERS:
            for server in (started.admin.api("GET", f"/users/{user}").json().get("servers") or {}):
                started.admin.api("DELETE", f"/users/{user}/servers/{server}")
        stop_hub(started)


def services(bed: Testbed, hub: Hub) -> list[dict[str, Any]]:
    api = docker.APIClient(base_url=bed.manager, timeout=30)
    found: list[dict[str, Any]] = api.services(filters={"label": f"titan.deployment={hub.deployment}"})
    return found


class Server:
    """A user's server as the swarm runs it: its service, node and container."""

    def __init__(self, bed: Testbed, hub: Hub, user: str, name: str = "") -> None:
        self.bed, self.user, self.name = bed, user, name
        wanted = {"titan.owner": user, "titan.server": name, "titan.deployment": hub.deployment}
        service = next(s for s in services(bed, hub)
                       if all(s["Spec"]["Labels"].get(k) == v for k, v in wanted.items()))
        self.service_id = service["ID"]

        async def where() -> tuple[str, str, str]:
            engine = SwarmEngine(bed.manager)
            try:
                task = await engine.task(self.service_id)
                assert task is not None and task.state == "running", task
                node = await engine.node_of(self.service_id)
                return node.hostname, task.container_id, node.address
            finally:
                await engine.close()

        hostname, self.container_id, self.node_address = asyncio.run(where())
        self.node = next(i for i in range(1, bed.count + 1) if bed.namespace(i) == hostname)
        details = json.loads(bed.docker(self.node, "inspect", self.container_id))[0]
        self.env = dict(line.split("=", 1) for line in details["Config"]["Env"])
        self.addresses = [n["IPAddress"] for n in details["NetworkSettings"]["Networks"].values() if n["IPAddress"]]
        self.published = int(service["Endpoint"]["Ports"][0]["PublishedPort"])

    def probe(self, targets: list[str]) -> dict[str, bool]:
        out = self.bed.docker(self.node, "exec", self.container_id, "python3", "-c", PROBE, *targets, timeout=60)
        return dict(json.loads(out))


@pytest.fixture(scope="module")
def tokens(hub: Hub) -> dict[str, str]:
    return {user: hub.admin.user_token(user) for user in USERS}


@pytest.fixture(scope="module")
def servers(bed: Testbed, hub: Hub) -> dict[str, Server]:
    began = time.monotonic()
    # Placed by pool, not left to Swarm's spread: alice's two servers on different nodes, carol's next to
    # alice's second (an intruder on the same node), bob's wherever Swarm puts it. All four at once, as
    # a team starting its day: three users' overlays are made at the same moment.
    wanted = (("alice", "", "small-pool"), ("bob", "", "tiny"), ("carol", "", "big-pool"),
              ("alice", "second", "big-pool"))
    with ThreadPoolExecutor(len(wanted)) as pool:
        list(pool.map(lambda w: hub.admin.spawn(w[0], w[1], options={"profile": w[2]}), wanted))
    print(f"\n4 servers ready on the swarm in {time.monotonic() - began:.1f} s")
    found = {key: Server(bed, hub, *key.split("/")) for key in ("alice/", "bob/", "carol/", "alice/second")}
    api = docker.APIClient(base_url=bed.manager, timeout=30)
    subnets = [api.inspect_network(n["Id"])["IPAM"]["Config"][0]["Subnet"] for n in api.networks()
               if n["Name"].startswith(f"{hub.deployment}-user-")]
    assert len(subnets) == 3 and len(set(subnets)) == 3, subnets  # one overlay each, none overlapping
    return found


def test_servers_run_on_the_worker_nodes_and_the_proxy_reaches_each(bed: Testbed, hub: Hub,
                                                                     servers: dict[str, Server],
                                                                     tokens: dict[str, str]) -> None:
    assert {s.node for s in servers.values()} == {2, 3}, {k: s.node for k, s in servers.items()}
    # Each service names its image in the registry, pinned to the digest its tag names there.
    image = registry_image(image_tag("minimal"), bed.registry)
    pinned = f"{image}@{registry_digest(bed.registry, image_tag('minimal'))}"
    assert {s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] for s in services(bed, hub)} == {pinned}
    assert servers["alice/"].node == 2 and servers["carol/"].node == 3  # the small pool is node 2, the big 3
    assert servers["alice/second"].node == 3
    for key, server in servers.items():
        assert PORTS[0] <= server.published <= PORTS[1]
        path = f"/user/{server.user}/{server.name}/api/status" if server.name else f"/user/{server.user}/api/status"
        own = requests.get(hub.url + path, headers={"Authorization": f"token {tokens[server.user]}"}, timeout=30)
        assert own.status_code == 200, f"{key}: {own.status_code} {own.text[:200]}"
        other = "bob" if server.user != "bob" else "alice"
        crossed = requests.get(hub.url + path, headers={"Authorization": f"token {tokens[other]}"}, timeout=30,
                               allow_redirects=False)
        assert crossed.status_code == 403, f"{other} on {key}: {crossed.status_code}"


def test_a_users_servers_reach_each_other_across_nodes_and_nobody_elses_do(servers: dict[str, Server]) -> None:
    def targets(server: Server) -> list[str]:
        return [*(f"{a}:8888" for a in server.addresses), f"{server.node_address}:{server.published}"]

    first, second = servers["alice/"], servers["alice/second"]
    overlay = [f"{a}:8888" for a in second.addresses if a in _overlay_addresses(second)]
    reached = first.probe(overlay)
    assert overlay and all(reached.values()), reached
    for intruder in ("bob/", "carol/"):
        for victim in ("alice/", "alice/second"):
            reached = servers[intruder].probe(targets(servers[victim]))
            assert not any(reached.values()), f"{intruder} reached {victim}: {reached}"
    assert servers["carol/"].node == second.node  # so the same-node case above was tried


def _overlay_addresses(server: Server) -> list[str]:
    details = json.loads(server.bed.docker(server.node, "inspect", server.container_id))[0]
    return [n["IPAddress"] for name, n in details["NetworkSettings"]["Networks"].items()
            if name != "docker_gwbridge" and n["IPAddress"]]


def test_a_profile_no_node_can_hold_is_disabled_and_refused_with_the_reason(hub: Hub) -> None:
    session = hub.login("carol")
    form = session.get(f"{hub.url}/hub/spawn/carol/pooltest", timeout=30).text
    assert "no node is in the pool &#39;nowhere&#39;" in form or "no node is in the pool 'nowhere'" in form
    response = hub.admin.api("POST", "/users/carol/servers/pooltest", json={"profile": "nowhere"})
    assert response.status_code == 400
    assert "no node is in the pool 'nowhere'" in response.json()["message"]
    response = hub.admin.api("POST", "/users/carol/servers/t4", json={"profile": "one-t4"})
    assert response.status_code == 400
    assert "no node of the 2 nodes has 1 NVIDIA T4 GPUs" in response.json()["message"], response.text


def spawn_failure(hub: Hub, user: str, server: str, options: dict[str, Any]) -> tuple[str, list[str]]:
    """Start a server that must fail: (the failure's message, the progress messages seen before it)."""
    response = hub.admin.api("POST", f"/users/{user}/servers/{server}", json=options)
    if response.status_code >= 400:
        return str(response.json().get("message", "")), []
    assert response.status_code in (201, 202), response.text
    progress = hub.admin.session.get(f"{hub.url}/hub/api/users/{user}/servers/{server}/progress", stream=True,
                                     timeout=120)
    events = [json.loads(line[len("data:"):]) for line in progress.iter_lines(decode_unicode=True)
              if line and line.startswith("data:")]
    assert events and events[-1].get("failed"), events[-1:]
    return str(events[-1].get("message", "")), [str(e.get("message", "")) for e in events[:-1]]


def test_gpus_are_distinct_units_and_a_request_beyond_them_fails_with_the_reason(
        bed: Testbed, hub: Hub, servers: dict[str, Server]) -> None:
    with ThreadPoolExecutor(2) as pool:  # at once: two starts must never get the same GPU
        list(pool.map(lambda user: hub.admin.spawn(user, "gpu", options={"profile": "one-h100"}), ("alice", "bob")))
    units = [Server(bed, hub, user, "gpu") for user in ("alice", "bob")]
    assert {u.node for u in units} == {2}
    assert sorted(u.env["NVIDIA_VISIBLE_DEVICES"] for u in units) == ["fake-a", "fake-b"]
    began = time.monotonic()
    message, _ = spawn_failure(hub, "carol", "gpu", {"profile": "one-h100"})
    assert "No node has 1 H100 GPU(s) free now (0 of 2 in the swarm are free" in message, message
    assert time.monotonic() - began < 20
    assert not [s for s in services(bed, hub) if s["Spec"]["Labels"].get("titan.owner") == "carol"
                and s["Spec"]["Labels"].get("titan.server") == "gpu"]
    # A node update (here a label) must not touch running GPU servers (Swarm's enforcer would, had
    # Swarm reserved the GPUs as generic resources: core/engine/swarm_gpus.py).
    bed.docker(1, "node", "update", "--label-add", "titan.test=touched", bed.node_id(2))
    time.sleep(3)
    for unit in units:
        model = hub.admin.server(unit.user, "gpu")
        assert model and model["ready"], f"{unit.user}'s GPU server went"
        assert Server(bed, hub, unit.user, "gpu").container_id == unit.container_id
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda user: hub.admin.stop(user, "gpu"), ("alice", "bob")))


def test_a_server_that_fits_a_node_only_when_empty_waits_with_swarms_reason_then_fails(
        bed: Testbed, hub: Hub, servers: dict[str, Server]) -> None:
    async def largest_node_memory() -> int:
        engine = SwarmEngine(bed.manager)
        try:
            return max(room.memory for room in await engine.rooms(empty=True) if room.ready)
        finally:
            await engine.close()

    memory = asyncio.run(largest_node_memory()) // 1024**2 - 256
    assert memory > 1024
    profiles = {"profiles": [{"display_name": "Whole node", "slug": "whole-node", "image": "minimal",
                              "resources": {"cpu": 0.25, "memory": f"{memory}M"}}]}
    (hub.profiles_dir / "40-whole-node.yaml").write_text(yaml.safe_dump(profiles))
    began = time.monotonic()
    message, seen = spawn_failure(hub, "carol", "whole", {"profile": "whole-node"})
    assert any("waiting for a node with room for it: no suitable node" in m for m in seen), seen
    assert "No node of the swarm can run your server now: no node of the 2 nodes has" in message, message
    assert "GiB of memory free now" in message
    assert time.monotonic() - began < 60
    assert not [s for s in services(bed, hub) if s["Spec"]["Labels"].get("titan.server") == "whole"]


def test_a_home_written_on_one_node_is_there_on_the_other_and_on_the_hub_host(
        bed: Testbed, hub: Hub, servers: dict[str, Server]) -> None:
    first, second = servers["alice/"], servers["alice/second"]
    assert first.node != second.node
    bed.docker(first.node, "exec", first.container_id, "sh", "-c", "echo from-node-$HOSTNAME > ~/across.txt")
    seen = bed.docker(second.node, "exec", second.container_id, "cat", "/home/jovyan/across.txt").strip()
    assert seen.startswith("from-node-")
    on_hub = bed.homes_root / f"{hub.deployment}-home-alice" / "across.txt"
    assert on_hub.read_text().strip() == seen and on_hub.stat().st_uid == 1000
    assert not [p for i in (2, 3) for p in bed.local_homes(i).rglob("across.txt")]  # nothing on a node's own disk


# Run inside alice's server, as a notebook does: the server has DASK_GATEWAY__* and its token.
DASK_CLIENT = """
import json, random, sys, time
import dask.bag as db
from dask_gateway import Gateway

gateway = Gateway()
began = time.perf_counter()
cluster = gateway.new_cluster(worker_cores=0.5, worker_memory="512M", shutdown_on_close=False)
created = time.perf_counter() - began
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=150)
rng = random.Random(7)
rows = [(rng.randrange(40), round(rng.random() * 10, 6)) for _ in range(20000)]
folded = db.from_sequence(rows, npartitions=6).foldby(
    lambda row: row[0], lambda acc, row: (acc[0] + row[1], acc[1] + 1), (0.0, 0),
    lambda a, b: (a[0] + b[0], a[1] + b[1]), (0.0, 0)).compute()
means = {str(key): total / count for key, (total, count) in folded}
hosts = sorted({w["host"] for w in client.scheduler_info()["workers"].values()})
print(json.dumps({"name": cluster.name, "create_s": created, "means": means, "rows": rows, "hosts": hosts}))
"""


def test_a_dask_cluster_from_a_server_runs_across_nodes_and_computes_what_pandas_does(
        bed: Testbed, hub: Hub, servers: dict[str, Server], tokens: dict[str, str]) -> None:
    import pandas as pd

    from core.labels import LABEL_CLUSTER, LABEL_ROLE, WORKER

    alice = servers["alice/"]
    try:
        out = bed.docker(alice.node, "exec", alice.container_id, "python3", "-c", DASK_CLIENT, timeout=300)
    except Exception:
        _print_cluster_reachability(bed)
        raise
    result = json.loads(out.strip().splitlines()[-1])
    frame = pd.DataFrame(result["rows"], columns=["zone", "distance"])
    expected = frame.groupby("zone").distance.mean()
    got = pd.Series({int(k): v for k, v in result["means"].items()}).sort_index()
    assert len(got) == len(expected) and (got - expected).abs().max() < 1e-9
    print(f"\n[swarm dask] cluster created in {result['create_s']:.2f} s; 2 workers, groupby-mean of "
          f"{len(frame)} rows equal to pandas")
    name = result["name"]

    async def cluster_services() -> tuple[list[Any], dict[str, str], list[Any]]:
        engine = SwarmEngine(bed.manager)
        try:
            found = await engine.list_containers({LABEL_CLUSTER: name})
            nodes = {s.id: (await engine.node_of(s.id)).hostname for s in found}
            return found, nodes, await engine.list_secrets({LABEL_CLUSTER: name})
        finally:
            await engine.close()

    found, nodes, secrets = asyncio.run(cluster_services())
    workers = [s for s in found if s.labels.get(LABEL_ROLE) == WORKER]
    assert len(found) == 3 and len(workers) == 2, [s.name for s in found]
    # Each worker is a service of its own, which Swarm would place by room alone: the gateway puts it on
    # the node with room holding the fewest of its cluster's workers (gateway.swarm), so two are on two.
    placed = {nodes[w.id] for w in workers}
    assert placed == {bed.namespace(2), bed.namespace(3)}
    print(f"[swarm dask] workers on {sorted(placed)}, scheduler on "
          f"{[nodes[s.id] for s in found if s.labels.get(LABEL_ROLE) != WORKER]}")
    assert all(s.labels.get("titan.owner") == "alice" for s in found)
    assert len(secrets) == 6  # each service's certificate and key, Swarm secrets of its own
    # The Titan service's usage accounting reads them from the manager, as services.
    usage = DockerHost(swarm=True, manager=bed.manager, deployment=hub.deployment)
    counted = [c for c in usage.dask_containers() if c.cluster == name]
    assert sorted(c.role for c in counted) == ["scheduler", "worker", "worker"], counted
    assert all(c.user == "alice" and c.running and c.started is not None and c.cores > 0 and c.memory > 0
               for c in counted), counted
    api = docker.APIClient(base_url=bed.manager, timeout=30)
    overlay = f"{hub.deployment}-user-alice"
    for service in found:
        attached = [n["Target"] for n in api.inspect_service(service.id)["Spec"]["TaskTemplate"]["Networks"]]
        assert [api.inspect_network(n)["Name"] for n in attached] == [overlay]
    # Bob sees none of it, and cannot stop it.
    assert not [line for line in hub.log_path.read_text().splitlines() if "Could not remove network" in line]
    gateway_api = f"{hub.url}/services/dask-gateway/api/v1/clusters"
    as_bob = {"Authorization": f"jupyterhub {tokens['bob']}"}  # dask-gateway's JupyterHub auth
    listed = requests.get(f"{gateway_api}/", headers=as_bob, timeout=30)
    assert listed.status_code == 200 and name not in json.dumps(listed.json())
    assert requests.get(f"{gateway_api}/{name}", headers=as_bob, timeout=30).status_code in (403, 404)
    assert requests.delete(f"{gateway_api}/{name}", headers=as_bob, timeout=30).status_code in (403, 404)
    # Alice stops it: no service, no secret is left.
    as_alice = {"Authorization": f"jupyterhub {tokens['alice']}"}
    assert requests.delete(f"{gateway_api}/{name}", headers=as_alice, timeout=30).status_code in (200, 204)

    async def remaining() -> tuple[list[Any], list[Any]]:
        engine = SwarmEngine(bed.manager)
        try:
            return await engine.list_containers({LABEL_CLUSTER: name}), await engine.list_secrets({LABEL_CLUSTER: name})
        finally:
            await engine.close()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(asyncio.run(remaining())):
        time.sleep(1)
    assert asyncio.run(remaining()) == ([], [])
    assert not [c for c in usage.dask_containers() if c.cluster == name]  # gone with their services


def _print_cluster_reachability(bed: Testbed) -> None:
    """What a failed Dask test needs said: each Dask service's node and published ports, and whether
    the hub host reaches them."""
    import socket

    api = docker.APIClient(base_url=bed.manager, timeout=30)
    for service in api.services(filters={"label": "titan.dask.cluster"}):
        for task in api.tasks(filters={"service": service["ID"]}):
            node = api.inspect_node(task["NodeID"])["Status"]["Addr"] if task.get("NodeID") else "-"
            ports = (task["Status"].get("PortStatus") or {}).get("Ports") or []
            reach = {}
            for port in ports:
                try:
                    socket.create_connection((node, port["PublishedPort"]), timeout=3).close()
                    reach[port["PublishedPort"]] = True
                except OSError:
                    reach[port["PublishedPort"]] = False
            print(f"[dask diag] {service['Spec']['Name']} {task['Status']['State']} {task['Status'].get('Err', '')} "
                  f"on {node}: {reach}")


def test_stopping_every_server_leaves_no_service_and_no_network(bed: Testbed, hub: Hub,
                                                                 servers: dict[str, Server]) -> None:
    with ThreadPoolExecutor(len(servers)) as pool:
        list(pool.map(lambda key: hub.admin.stop(*key.split("/")), servers))
    assert services(bed, hub) == []
    api = docker.APIClient(base_url=bed.manager, timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and [n for n in api.networks() if n["Name"].startswith(hub.deployment)]:
        time.sleep(0.5)
    assert [n["Name"] for n in api.networks() if n["Name"].startswith(hub.deployment)] == []


def _wait_stopped(hub: Hub, user: str, name: str, within: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < within:
        model = hub.admin.server(user, name)
        if not model:
            return time.monotonic() - began
        time.sleep(0.5)
    raise AssertionError(f"{user}/{name} still shown running {within:.0f} s after its node died")


def _refused_while_lost(hub: Hub, bed: Testbed, user: str, node: int, lost_at: float, failure: str) -> None:
    """``user``'s server "lost" on ``node``: shown stopped, and a start refused while its old container
    may still run there."""
    _wait_stopped(hub, user, "lost", within=90)
    print(f"\n{failure}: {user}/lost shown stopped {time.monotonic() - lost_at:.1f} s after node {node} was lost")
    # "tiny" fits any node (the pool of the lost node has no other: its profile is refused first). A
    # 400 only while no node is ready at all (the other one still coming back from its own loss).
    deadline = time.monotonic() + 60
    while True:
        response = hub.admin.api("POST", f"/users/{user}/servers/lost", json={"profile": "tiny"})
        if response.status_code != 400 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert response.status_code == 409, response.text
    assert f"may still be running on node {bed.namespace(node)}, which stopped answering (Swarm marked it" in \
        response.json()["message"]


def _started_again(hub: Hub, bed: Testbed, old: Server, profile: str) -> None:
    """Once its node is back, the next start stops the stale container there first, then starts anew."""
    deadline = time.monotonic() + 90
    while True:
        response = hub.admin.api("POST", f"/users/{old.user}/servers/lost", json={"profile": profile})
        if response.status_code in (201, 202) or time.monotonic() > deadline:
            break
        # Until Swarm sees the node ready again: 409 (its old container may run there), or 400 while
        # the profile's pool has no node up ("no node of the pool 'big' is up now").
        assert response.status_code == 409 or "is up now" in response.text, response.text
        time.sleep(2)
    assert response.status_code in (201, 202), response.text
    wait_for(lambda: (model := hub.admin.server(old.user, "lost")) and model.get("ready"), 120,
             f"{old.user}/lost to be ready again")
    again = Server(bed, hub, old.user, "lost")
    assert again.container_id != old.container_id
    stale = bed.docker(old.node, "ps", "-q", "--no-trunc", "--filter", f"id={old.container_id}").strip()
    assert stale == "", f"the stale container of {old.user} still runs on node {old.node}"
    hub.admin.stop(old.user, "lost")


def test_a_lost_node_shows_its_servers_stopped_and_no_second_copy_starts_until_it_returns(
        bed: Testbed, hub: Hub) -> None:
    """Both ways a node is lost, one after the other so that a node is up at each step: node 2's engine
    killed (dave's server there); then, while node 2 comes back, node 3's link cut (erin's server)."""
    for user in ("dave", "erin"):
        hub.admin.create_user(user)
    wanted = (("dave", "small-pool"), ("erin", "big-pool"))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda w: hub.admin.spawn(w[0], "lost", options={"profile": w[1]}), wanted))
    dave, erin = (Server(bed, hub, user, "lost") for user in ("dave", "erin"))
    assert (dave.node, erin.node) == (2, 3)

    bed.kill_engine(2)
    try:
        _refused_while_lost(hub, bed, "dave", 2, time.monotonic(), "engine killed")
        assert len(services(bed, hub)) == 2  # its service stays while its container may run
    finally:
        bed.restart_engine(2)
    bed.cut_link(3)
    try:
        _refused_while_lost(hub, bed, "erin", 3, time.monotonic(), "link cut")
        _started_again(hub, bed, dave, "small-pool")
    finally:
        bed.cut_link(3, up=True)
    _started_again(hub, bed, erin, "big-pool")
    assert services(bed, hub) == []
