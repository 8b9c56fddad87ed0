"""Dask Gateway on a real three-node swarm (tests/swarm/testbed.py, each engine with its own firewall):
the real dask-gateway-server with Titan's backend (``engine_kind = "swarm"``) on the hub host, its
proxies on the hub host's address on the nodes' network.

The manager is drained (no task runs there, as on a manager-only host); nodes 2 and 3 run everything.
Alice's and bob's overlay networks, and a service standing in for each one's server on it (labelled as
Titan labels servers; the Swarm spawner will start the real ones). From inside alice's server, as a
notebook would: a new cluster, two workers, a groupby-mean equal to pandas' through the gateway's
proxy. Checked from outside: the scheduler and the workers are services on alice's network, the workers
on two nodes; each service's TLS certificate and key are Swarm secrets while the cluster runs, and no
service and no secret is left after it stops. Bob cannot see, scale or stop alice's cluster (403).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from core.engine.swarm import SwarmEngine
from core.images import image_tag
from core.labels import LABEL_CLUSTER, LABEL_ROLE, WORKER
from tests.helpers import wait_for
from tests.swarm.gateway import gateway_on, load_image, on_swarm, stand_in_servers
from tests.swarm.host import can_run
from tests.swarm.testbed import Testbed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = image_tag("datascience")  # the groupby needs pandas in the scheduler's and workers' image
DEPLOYMENT = "tgs"
PASSWORD = "swarm-test-password"
DASK = {
    "worker_cores": {"choices": [0.5, 1], "default": 0.5},
    "worker_memory": {"choices": ["768M", "1G"], "default": "768M"},
    "scheduler": {"cores": 0.5, "memory": "512M"},
    "limits": {"max_clusters": 1, "max_cores": 3, "max_memory": "4G", "max_workers": 2},
}

# Run inside alice's server, as a notebook does.
CREATE_AND_COMPUTE = """
import gc, json, sys, time
import numpy as np, pandas as pd, dask.dataframe as dd
from dask_gateway import BasicAuth, Gateway

gateway = Gateway(sys.argv[1], proxy_address=sys.argv[2], auth=BasicAuth("alice", sys.argv[3]))
t0 = time.perf_counter()
cluster = gateway.new_cluster(shutdown_on_close=False)
t1 = time.perf_counter()
ready_at = time.time()
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=120)
t2 = time.perf_counter()
rng = np.random.default_rng(7)
n = 300_000
pdf = pd.DataFrame({"PULocationID": rng.integers(1, 266, n), "trip_distance": rng.gamma(2.0, 1.6, n).round(2)})
got = dd.from_pandas(pdf, npartitions=6).groupby("PULocationID").trip_distance.mean().compute().sort_index()
expected = pdf.groupby("PULocationID").trip_distance.mean().sort_index()
same = bool(got.index.equals(expected.index) and np.allclose(got.values, expected.values))
t3 = time.perf_counter()
workers = client.scheduler_info()["workers"]
print(json.dumps({"name": cluster.name, "create_s": t1 - t0, "ready_at": ready_at, "scale_s": t2 - t1,
                  "groupby_s": t3 - t2, "same_as_pandas": same, "zones": len(got),
                  "worker_hosts": sorted({w.split("://")[1].rsplit(":", 1)[0] for w in workers})}))
client.close()
gc.collect()
"""

# Create-to-ready again, warm (the image's files in the nodes' page cache), then shut down.
CREATE_AGAIN = """
import gc, json, sys, time
from dask_gateway import BasicAuth, Gateway

gateway = Gateway(sys.argv[1], proxy_address=sys.argv[2], auth=BasicAuth("alice", sys.argv[3]))
times = []
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter()
    cluster = gateway.new_cluster()
    times.append(time.perf_counter() - t0)
    cluster.shutdown()
    gc.collect()
    time.sleep(1)
print(json.dumps(times))
"""


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    why = can_run()
    if why:
        pytest.skip(why)
    testbed = Testbed(nodes=3, firewall=True)
    testbed.up()
    try:
        # The manager runs no task (as a manager-only host would): the 2 GB image goes to the two
        # workers only, a third less to load and to remove.
        testbed.docker(1, "node", "update", "--availability", "drain", testbed.node_id(1))
        spent = load_image(testbed, IMAGE, (2, 3))
        print(f"\n[gateway-swarm] loading {IMAGE} into nodes 2 and 3: {spent:.1f} s")
        yield testbed
    finally:
        testbed.down()
        assert testbed.leftovers() == []


@pytest.fixture(scope="module")
def servers(bed: Testbed) -> dict[str, tuple[int, str]]:
    """Alice's and bob's overlay networks, each with a service standing in for their default server:
    (node, container id) of each."""
    return stand_in_servers(bed, DEPLOYMENT, ("alice", "bob"), IMAGE)


@pytest.fixture(scope="module")
def gateway(bed: Testbed, servers: dict[str, tuple[int, str]], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Any]]:
    """The real dask-gateway-server with Titan's backend on the swarm."""
    with gateway_on(bed, tmp_path_factory.mktemp("gateway-swarm"), DEPLOYMENT, PASSWORD, DASK) as running:
        try:
            yield running
        finally:
            events = ("Submitting", "submitted", "heartbeat [", "is running", "stopped", "Error", "Traceback")
            print("".join(line for line in running["log"].open() if any(e in line for e in events)))


def cluster_services(bed: Testbed, name: str) -> Any:
    async def listing(engine: SwarmEngine) -> Any:
        services = await engine.list_containers({LABEL_CLUSTER: name})
        nodes = {s.id: (await engine.node_of(s.id)).hostname for s in services if s.state == "running"}
        secrets = await engine.list_secrets({LABEL_CLUSTER: name})
        networks = {s.id: s.network_mode for s in services}
        named = {n.id: n.name for n in await engine.list_networks()}
        return services, nodes, secrets, {k: named.get(v, v) for k, v in networks.items()}
    return on_swarm(bed, listing)


def instant(stamp: str) -> float:
    """An RFC 3339 time of Docker's (nanoseconds, Z) as a POSIX time."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")


def phases(bed: Testbed, service_id: str, ready: float) -> str:
    """Seconds from the service's creation to its task running, its container started (the node's
    word) and the cluster ready (``ready``: a POSIX time). One kernel here: one clock."""
    service = json.loads(bed.docker(1, "service", "inspect", service_id))[0]
    task_id = bed.docker(1, "service", "ps", "-q", "--no-trunc", service_id).split()[0]
    task = json.loads(bed.docker(1, "inspect", task_id))[0]
    node = next(i for i in range(1, 4) if bed.node_id(i) == task["NodeID"])
    container = task["Status"]["ContainerStatus"]["ContainerID"]
    started = bed.docker(node, "inspect", container, "--format", "{{.State.StartedAt}}").strip()
    created = instant(service["CreatedAt"])
    return (f"task running +{instant(task['Status']['Timestamp']) - created:.2f} s, container started "
            f"+{instant(started) - created:.2f} s, cluster ready +{ready - created:.2f} s after the service was made")


def test_a_cluster_across_nodes_computes_a_groupby_mean_equal_to_pandas(
        bed: Testbed, servers: dict[str, tuple[int, str]], gateway: dict[str, Any]) -> None:
    node, container = servers["alice"]
    output = bed.docker(node, "exec", container, "python", "-c", CREATE_AND_COMPUTE, gateway["http"],
                        gateway["proxy"], PASSWORD, timeout=240)
    result = json.loads(output.strip().splitlines()[-1])
    print(f"\n[gateway-swarm] create-to-ready {result['create_s']:.2f} s, scale 0->2 {result['scale_s']:.2f} s, "
          f"groupby-mean on 300k rows {result['groupby_s']:.2f} s")
    assert result["same_as_pandas"] and result["zones"] == 265
    name = result["name"]

    services, nodes, secrets, networks = cluster_services(bed, name)
    workers = [s for s in services if s.labels.get(LABEL_ROLE) == WORKER]
    assert len(services) == 3 and len(workers) == 2 and all(s.state == "running" for s in services)
    assert set(networks.values()) == {f"{DEPLOYMENT}-user-alice"}  # alice's network, and no other
    assert len({nodes[w.id] for w in workers}) == 2, f"the workers are on {nodes}"
    assert all(not h.startswith("127.") for h in result["worker_hosts"]), result["worker_hosts"]
    # Each service's certificate and key, as Swarm secrets of its own, labelled with the cluster.
    expected = sorted(f"{s.name}-{file}" for s in services for file in ("dask.crt", "dask.pem"))
    assert sorted(s.name for s in secrets) == expected

    scheduler = next(s for s in services if s.labels.get(LABEL_ROLE) != WORKER)
    print(f"[gateway-swarm] first scheduler: {phases(bed, scheduler.id, result['ready_at'])}")

    # Bob: alice's cluster is not his to see, scale or stop.
    bob = ("bob", PASSWORD)
    url = f"{gateway['http']}/api/v1/clusters/{name}"
    assert requests.get(url, auth=bob, timeout=10).status_code == 403
    assert requests.post(f"{url}/scale", json={"count": 0}, auth=bob, timeout=10).status_code == 403
    assert requests.delete(url, auth=bob, timeout=10).status_code == 403
    assert requests.get(f"{gateway['http']}/api/v1/clusters/", auth=bob, timeout=10).json() == {}
    alice = ("alice", PASSWORD)
    assert requests.get(url, auth=alice, timeout=10).json()["status"] == "RUNNING"  # still running

    # Alice stops it: no service, no secret is left.
    assert requests.delete(url, auth=alice, timeout=10).status_code == 204
    start = time.monotonic()
    wait_for(lambda: cluster_services(bed, name)[0] == [] and cluster_services(bed, name)[2] == [], 60,
             "the cluster's services and secrets gone")
    print(f"[gateway-swarm] stop: services and secrets gone in {time.monotonic() - start:.1f} s")

    # Create-to-ready once the nodes are warm (each cluster stopped before the next: max_clusters 1).
    output = bed.docker(node, "exec", container, "python", "-c", CREATE_AGAIN, gateway["http"], gateway["proxy"],
                        PASSWORD, "3", timeout=180)
    times = json.loads(output.strip().splitlines()[-1])
    print(f"[gateway-swarm] create-to-ready, warm: {', '.join(f'{t:.2f}' for t in times)} s "
          f"(median {sorted(times)[1]:.2f} s)")
    wait_for(lambda: requests.get(f"{gateway['http']}/api/v1/clusters/", auth=alice, timeout=10).json() == {}, 60,
             "alice's clusters all stopped")
