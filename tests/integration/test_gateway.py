"""Dask Gateway end to end: a real hub running the gateway as its service, real user servers, and
scheduler and worker containers, driven from inside the servers with ``Gateway()`` and no
arguments (the way a notebook does). Checked with ``docker inspect``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import yaml
from dask_gateway_server.tls import new_keypair
from dask_gateway_server.utils import FrozenAttrDict

from core.engine.docker import DockerEngine
from core.engine.spec import ContainerSpec
from gateway.backend import DockerBackend, DockerClusterConfig
from gateway.tls import TlsFiles
from tests.helpers import free_port, wait_for
from tests.integration.hub import Hub, containers, remove_deployment, start_hub, stop_hub
from tests.integration.servers import dask_containers, new_user, run_in_server, server_container, spawn

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MIB = 1024**2
# Small sizes for a 2-CPU test host. The groupby test needs pandas: the datascience image.
DASK = {
    "worker_cores": {"choices": [0.5, 1], "default": 0.5},
    "worker_memory": {"choices": ["512M", "768M", "1G"], "default": "768M"},
    "scheduler": {"cores": 0.5, "memory": "512M"},
    "limits": {"max_clusters": 1, "max_cores": 3, "max_memory": "4G", "max_workers": 2},
    "group_limits": {"dask-big": {"max_clusters": 2}},
}


# ---- helpers --------------------------------------------------------------------------

def gateway_process(hub: Hub) -> psutil.Process:
    found = []
    for child in psutil.Process(hub.process.pid).children():
        try:
            if "dask_gateway_server" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # a child that just exited (zombie, gone)
            continue
    assert len(found) == 1, "the hub runs one gateway"
    return found[0]


# ---- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    """A hub of its own: gateway on free ports, test-sized Dask profile data."""
    root: Path = tmp_path_factory.mktemp("gateway-hub")
    (root / "profiles").mkdir()
    (root / "profiles" / "30-dask.yaml").write_text(yaml.safe_dump({"dask": DASK}))
    gateway = {"api_port": free_port(), "proxy_port": free_port(), "scheduler_proxy_port": free_port(),
               "server_check_period": 2, "idle_timeout": 600}
    running = start_hub(root, settings_overrides={"gateway": gateway})
    running.extra["gateway"] = gateway
    try:
        yield running
    finally:
        stop_hub(running)
        leftovers = dask_containers(running)
        remove_deployment(running.deployment)
        assert leftovers == [], "cluster containers outlived the hub"


CREATE_AND_COMPUTE = """
import gc, time
import numpy as np, pandas as pd, dask.dataframe as dd
from dask_gateway import Gateway

t0 = time.perf_counter()
gateway = Gateway()
cluster = gateway.new_cluster(shutdown_on_close=False)
t1 = time.perf_counter()
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=120)
t2 = time.perf_counter()

# Taxi-like data: mean trip distance by pick-up zone, on the cluster and with pandas.
rng = np.random.default_rng(7)
n = 300_000
pdf = pd.DataFrame({"PULocationID": rng.integers(1, 266, n),
                    "trip_distance": rng.gamma(2.0, 1.6, n).round(2),
                    "fare_amount": rng.gamma(3.0, 4.0, n).round(2)})
got = dd.from_pandas(pdf, npartitions=6).groupby("PULocationID").trip_distance.mean().compute().sort_index()
expected = pdf.groupby("PULocationID").trip_distance.mean().sort_index()
same = bool(got.index.equals(expected.index) and np.allclose(got.values, expected.values))
t3 = time.perf_counter()
workers = client.scheduler_info()["workers"]
print(json.dumps({"name": cluster.name, "create_s": t1 - t0, "scale_s": t2 - t1, "groupby_s": t3 - t2,
                  "same_as_pandas": same, "zones": len(got), "answer": client.submit(lambda: 42).result(),
                  "worker_hosts": sorted({w.split("://")[1].rsplit(":", 1)[0] for w in workers})}))
client.close()
cluster.close()
gc.collect()
"""


@pytest.fixture(scope="module")
def alice(hub: Hub) -> dict[str, Any]:
    """Alice's server (datascience image) and the cluster she made from it, already computed on."""
    user = new_user(hub, "alice")
    container = spawn(hub, user, image="datascience")
    result = run_in_server(container, CREATE_AND_COMPUTE)
    print(f"\n[dask-gateway] create {result['create_s']:.2f} s, scale 0->2 {result['scale_s']:.2f} s, "
          f"groupby-mean on 300k rows {result['groupby_s']:.2f} s (cluster {result['name'][:12]})")
    return {"user": user, "container": container, "deployment": hub.deployment, **result}


# ---- failure injection (Docker only, no hub) ------------------------------------------

def _cluster(deployment: str, image: str, server: str) -> types.SimpleNamespace:
    name = uuid.uuid4().hex
    cert, key = new_keypair(name)
    config = DockerClusterConfig(image=image, origin_server="", origin_container=server, worker_memory=512 * MIB,
                                 scheduler_memory=512 * MIB, worker_cores=0.5, scheduler_cores=0.5).to_dict()
    return types.SimpleNamespace(name=name, username="injected", token=uuid.uuid4().hex,
                                 config=FrozenAttrDict(config), tls_cert=cert, tls_key=key, state={},
                                 scheduler_address="tls://127.0.0.1:1")


@pytest.fixture(scope="module")
def server(built_images: dict[str, str]) -> Iterator[str]:
    """A running container standing in for the server whose network namespace a cluster's
    containers join (not labelled with the deployment: it is not the backend's to remove)."""
    container = subprocess.run(["docker", "run", "-d", "--rm", "--network", "none", built_images["minimal"],
                                "sleep", "infinity"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


class Injected(RuntimeError):
    pass


class FailingEngine(DockerEngine):
    """The real engine, whose ``stage`` (create or start) happens and then fails (the worst case
    for the clean-up)."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    async def create(self, spec: ContainerSpec) -> str:
        container_id = await super().create(spec)
        if self.stage == "create":
            raise Injected(self.stage)
        return container_id

    async def start(self, container_id: str) -> None:
        await super().start(container_id)
        if self.stage == "start":
            raise Injected(self.stage)


class FailingTls(TlsFiles):
    """The TLS files are written, then the step fails."""

    def write(self, cluster: str, cert: bytes, key: bytes) -> Path:
        super().write(cluster, cert, key)
        raise Injected("tls")


@pytest.mark.asyncio
@pytest.mark.parametrize("role", ["scheduler", "worker"])
@pytest.mark.parametrize("stage", ["tls", "create", "start", "later"])
async def test_a_failure_at_any_start_stage_leaves_no_container(built_images: dict[str, str], server: str,
                                                                role: str, stage: str) -> None:
    """As dask-gateway's base class does: run ``do_start_*`` and, when it fails (or the object
    fails later), stop it from the last state it yielded."""
    deployment = "titantest-" + secrets.token_hex(3)
    backend = DockerBackend(deployment=deployment, api_url="http://127.0.0.1:1/api")
    backend.engine = FailingEngine(stage)
    if stage == "tls":
        backend.tls_files = FailingTls(backend.tls_dir, backend.container_user, backend.log)
    cluster = _cluster(deployment, built_images["minimal"], server)
    worker = types.SimpleNamespace(name=uuid.uuid4().hex, cluster=cluster, state={})
    obj: Any = cluster if role == "scheduler" else worker
    start = backend.do_start_cluster(cluster) if role == "scheduler" else backend.do_start_worker(worker)
    try:
        with pytest.raises(Injected) if stage != "later" else contextlib.nullcontext():
            async for state in start:
                obj.state = state
        if stage == "later":  # started fine; it fails later (a timeout, a dead scheduler)
            assert len(containers(deployment)) == 1
        if stage in ("tls", "create"):
            assert obj.state == {}  # failed before its checkpoint: the clean-up finds it by label
        if role == "scheduler":
            await backend.do_stop_cluster(cluster)
            assert not backend.tls_source(cluster).exists()  # the key goes with the cluster
        else:
            await backend.do_stop_worker(worker)
        assert containers(deployment) == []
    finally:
        remove_deployment(deployment)
        await backend.do_cleanup()


# ---- a user's cluster -----------------------------------------------------------------

@pytest.mark.hub
def test_a_cluster_made_from_a_server_computes_what_pandas_does(alice: dict[str, Any]) -> None:
    assert alice["same_as_pandas"] and alice["zones"] == 265
    assert alice["answer"] == 42
    # Workers listen at the address of alice's server on her network (they share its namespace).
    (server,) = [c for c in containers(alice["deployment"]) if c["Name"] == f"/{alice['container']}"]
    address = server["NetworkSettings"]["Networks"][f"{alice['deployment']}-user-{alice['user']}"]["IPAddress"]
    assert alice["worker_hosts"] == [address]
    assert alice["create_s"] < 60 and alice["scale_s"] < 60


@pytest.mark.hub
def test_scheduler_and_workers_are_labelled_limited_containers_in_the_servers_image(
        hub: Hub, alice: dict[str, Any], built_images: dict[str, str]) -> None:
    found = dask_containers(hub, cluster=alice["name"])
    (server,) = [c for c in containers(hub.deployment) if c["Name"] == f"/{alice['container']}"]
    roles = sorted(c["Config"]["Labels"]["titan.dask.role"] for c in found if c["State"]["Running"])
    assert roles == ["scheduler", "worker", "worker"]
    for container in found:
        labels = container["Config"]["Labels"]
        host = container["HostConfig"]
        assert labels["titan.deployment"] == hub.deployment
        assert labels["titan.owner"] == alice["user"] and labels["titan.dask.server"] == ""
        assert "titan.server" not in labels
        assert container["Config"]["Image"] == built_images["datascience"]
        assert container["Name"].startswith(f"/{hub.deployment}-dask-{alice['user']}-{alice['name'][:12]}-")
        # In the namespace of the server the cluster belongs to: on alice's network, nowhere else.
        assert host["NetworkMode"] == f"container:{server['Id']}" and not host.get("PortBindings")
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"]
        assert host["PidsLimit"] == 4096
        assert container["Config"]["User"] == "1000:1000"
        scheduler = labels["titan.dask.role"] == "scheduler"
        memory = 512 * MIB if scheduler else 768 * MIB
        assert host["Memory"] == host["MemorySwap"] == memory
        assert host["NanoCpus"] == 500_000_000
        env = dict(e.split("=", 1) for e in container["Config"]["Env"])
        assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
        assert "PRIVATE KEY" not in json.dumps(container)  # the key is a 0600 file, in no env, label or config
        mounts = [m for m in container["Mounts"] if m["Destination"] == "/run/dask-gateway"]
        assert len(mounts) == 1 and mounts[0]["RW"] is False
        assert mounts[0]["Source"] == str(hub.root / "state" / "dask-tls" / alice["name"])
        if container["State"]["Running"]:
            seen = subprocess.run(["docker", "exec", container["Id"], "stat", "-c", "%a %u:%g %n",
                                   "/run/dask-gateway", "/run/dask-gateway/dask.crt", "/run/dask-gateway/dask.pem"],
                                  capture_output=True, text=True, check=True).stdout.split("\n")
            assert seen[:3] == ["700 1000:1000 /run/dask-gateway", "600 1000:1000 /run/dask-gateway/dask.crt",
                                "600 1000:1000 /run/dask-gateway/dask.pem"]


@pytest.mark.hub
def test_another_user_cannot_see_connect_to_or_stop_the_cluster(hub: Hub, alice: dict[str, Any]) -> None:
    bob = new_user(hub, "bob")
    container = spawn(hub, bob)
    result = run_in_server(container, """
        import gc
        from dask_gateway import Gateway
        gateway = Gateway()
        seen = [c.name for c in gateway.list_clusters()]
        errors = {}
        for what, call in (("connect", lambda: gateway.connect(ARGS["name"])),
                           ("stop", lambda: gateway.stop_cluster(ARGS["name"]))):
            try:
                call()
                errors[what] = None
            except Exception as error:
                errors[what] = str(error)
        gateway.close()
        gc.collect()
        print(json.dumps({"seen": seen, "errors": errors}))
    """, name=alice["name"])
    assert alice["name"] not in result["seen"]
    assert result["errors"]["connect"] and "403" in result["errors"]["connect"]
    assert result["errors"]["stop"] and "403" in result["errors"]["stop"]
    running = [c for c in dask_containers(hub, cluster=alice["name"]) if c["State"]["Running"]]
    assert len(running) == 3
    hub.admin.stop(bob)


@pytest.mark.hub
def test_only_tokens_with_the_gateway_scope_get_in(hub: Hub) -> None:
    user = new_user(hub, "tok")
    url = f"http://{hub.titan_address}:{hub.extra['gateway']['proxy_port']}/services/dask-gateway/api/v1/clusters/"

    def token(scopes: list[str]) -> str:
        response = hub.admin.api("POST", f"/users/{user}/tokens", json={"scopes": scopes, "note": "gateway test"})
        assert response.status_code == 201, response.text
        value: str = response.json()["token"]
        return value

    def status(value: str) -> int:
        return requests.get(url, headers={"Authorization": f"jupyterhub {value}"}, timeout=30).status_code

    assert status(token(["read:users:name!user"])) == 401
    assert status(token(["access:services!service=dask-gateway"])) == 200
    assert status("not-a-token") == 401
    assert requests.get(url, timeout=30).status_code == 401


LIMITS = """
import asyncio, gc, warnings
from dask_gateway import Gateway

async def attempts(n):
    async with Gateway(asynchronous=True) as gateway:
        return await asyncio.gather(*(gateway.submit() for _ in range(n)), return_exceptions=True)

results = asyncio.run(attempts(ARGS["attempts"]))
made = [r for r in results if isinstance(r, str)]
refused = [str(r) for r in results if isinstance(r, BaseException)]
gateway = Gateway()
bad = {}
for what, options in (("memory", {"worker_memory": "64G"}), ("unknown", {"colour": "red"})):
    try:
        gateway.submit(**options)
        bad[what] = None
    except Exception as error:
        bad[what] = str(error)
clipped = []
if ARGS["scale"]:
    cluster = gateway.connect(made[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster.scale(ARGS["scale"])
    clipped = [str(w.message) for w in caught]
    cluster.close()
listed = sorted(c.name for c in gateway.list_clusters())
for name in made:
    gateway.stop_cluster(name)
gateway.close()
gc.collect()
print(json.dumps({"made": made, "refused": refused, "bad": bad, "clipped": clipped, "listed": listed}))
"""


@pytest.mark.hub
def test_limits_hold_for_concurrent_requests_and_scale_is_clipped(hub: Hub) -> None:
    carol = new_user(hub, "carol")
    container = spawn(hub, carol)
    result = run_in_server(container, LIMITS, attempts=4, scale=5)
    assert len(result["made"]) == 1 and len(result["refused"]) == 3
    assert all("(max_clusters)" in message and "your limit is 1" in message for message in result["refused"])
    assert "worker_memory='64G' is not offered. Choose one of: 512M, 768M, 1G." in result["bad"]["memory"]
    assert "Unknown cluster option(s): colour" in result["bad"]["unknown"]
    assert result["listed"] == result["made"]  # the refused requests made nothing
    assert result["clipped"] and "Scale request of 5 workers exceeds" in result["clipped"][0]
    assert "max_workers=2" in result["clipped"][0] and "Scaling to 2 instead" in result["clipped"][0]
    wait_for(lambda: not dask_containers(hub, user=carol), 60, "carol's cluster containers to go")
    hub.admin.stop(carol)


@pytest.mark.hub
def test_a_group_override_raises_the_limit(hub: Hub) -> None:
    dave = new_user(hub, "dave", groups=("dask-big",))
    container = spawn(hub, dave)
    result = run_in_server(container, LIMITS, attempts=3, scale=0)
    assert len(result["made"]) == 2 and len(result["refused"]) == 1
    assert "your limit is 2 (max_clusters)" in result["refused"][0]
    wait_for(lambda: not dask_containers(hub, user=dave), 60, "dave's cluster containers to go")
    hub.admin.stop(dave)


NEW_CLUSTER = """
    import gc
    from dask_gateway import Gateway
    gateway = Gateway()
    cluster = gateway.new_cluster(shutdown_on_close=False)
    print(json.dumps({"name": cluster.name}))
    gateway.close()
    gc.collect()
"""


@pytest.mark.hub
def test_a_named_servers_clusters_stop_with_it_and_only_them(hub: Hub) -> None:
    gina = new_user(hub, "gina", groups=("dask-big",))
    default = run_in_server(spawn(hub, gina), NEW_CLUSTER)["name"]
    hub.admin.spawn(gina, "lab", {"profile": "small"})
    lab = run_in_server(server_container(hub, gina, "lab"), NEW_CLUSTER)["name"]
    labels = {c["Config"]["Labels"]["titan.dask.cluster"]: c["Config"]["Labels"]["titan.dask.server"]
              for c in dask_containers(hub, user=gina)}
    assert labels == {default: "", lab: "lab"}
    hub.admin.stop(gina, "lab")
    assert not dask_containers(hub, cluster=lab)
    assert dask_containers(hub, cluster=default)
    hub.admin.stop(gina)
    assert not dask_containers(hub, user=gina)


@pytest.mark.hub
def test_an_idle_cluster_stops_and_its_containers_go(hub: Hub) -> None:
    erin = new_user(hub, "erin")
    container = spawn(hub, erin)
    result = run_in_server(container, """
        import gc
        from dask_gateway import Gateway
        gateway = Gateway()
        cluster = gateway.new_cluster(idle_timeout=6, shutdown_on_close=False)
        cluster.scale(1)
        print(json.dumps({"name": cluster.name}))
        gateway.close()
        gc.collect()
    """)
    wait_for(lambda: dask_containers(hub, cluster=result["name"]), 30, "the cluster's containers")
    wait_for(lambda: not dask_containers(hub, cluster=result["name"]), 90, "the idle cluster to stop")
    hub.admin.stop(erin)


@pytest.mark.hub
def test_adaptive_scaling_goes_up_with_work_and_down_when_idle(hub: Hub, alice: dict[str, Any]) -> None:
    result = run_in_server(alice["container"], """
        import gc, time
        from dask_gateway import Gateway
        gateway = Gateway()
        cluster = gateway.connect(ARGS["name"])
        client = cluster.get_client()
        count = lambda: client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.workers))
        def wait(check, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if check():
                    return True
                time.sleep(0.5)
            return False
        cluster.adapt(minimum=0, maximum=2)
        down_at_first = wait(lambda: count() == 0, 120)
        futures = client.map(lambda x: (time.sleep(0.5), x)[1], range(12))
        up = wait(lambda: count() >= 1, 120)
        total = sum(client.gather(futures))
        del futures  # results held on a worker keep it alive
        down_again = wait(lambda: count() == 0, 120)
        cluster.scale(0)
        client.close()
        cluster.close()
        gc.collect()
        print(json.dumps({"down_at_first": down_at_first, "up": up, "total": total, "down_again": down_again}))
    """, timeout=420, name=alice["name"])
    assert result == {"down_at_first": True, "up": True, "total": 66, "down_again": True}


@pytest.mark.hub
def test_a_gateway_restart_keeps_the_cluster_usable(hub: Hub, alice: dict[str, Any]) -> None:
    before = gateway_process(hub)
    before.send_signal(signal.SIGKILL)
    # The hub restarts a managed service that exits (it polls it every 30 s).
    health = f"http://{hub.titan_address}:{hub.extra['gateway']['proxy_port']}/services/dask-gateway/api/health"
    wait_for(lambda: gateway_process(hub).pid != before.pid and requests.get(health, timeout=5).ok, 90,
             "the hub to restart the gateway")
    result = run_in_server(alice["container"], """
        import gc
        from dask_gateway import Gateway
        gateway = Gateway()
        cluster = gateway.connect(ARGS["name"])
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=120)
        answer = client.submit(lambda: 6 * 7).result()
        client.close()
        cluster.close()
        gc.collect()
        print(json.dumps({"answer": answer, "status": "ok"}))
    """, timeout=300, name=alice["name"])
    assert result["answer"] == 42


@pytest.mark.hub
def test_stopping_the_server_removes_its_clusters(hub: Hub, alice: dict[str, Any]) -> None:
    assert dask_containers(hub, cluster=alice["name"])
    started = time.monotonic()
    hub.admin.stop(alice["user"])
    wait_for(lambda: not dask_containers(hub, user=alice["user"]), 30, "alice's cluster containers to go")
    print(f"\n[dask-gateway] server stop to clusters gone: {time.monotonic() - started:.2f} s")
    assert os.path.exists(hub.root / "state" / "dask-gateway.sqlite")


@pytest.mark.hub
def test_stopping_the_hub_leaves_no_cluster_containers(hub: Hub) -> None:
    """The hub stops its services before its servers: the gateway is gone when the servers stop,
    so the spawner removes their clusters' containers itself. Runs last: it stops the hub."""
    frank = new_user(hub, "frank")
    container = spawn(hub, frank)
    result = run_in_server(container, NEW_CLUSTER)
    assert dask_containers(hub, cluster=result["name"])
    stop_hub(hub)
    assert dask_containers(hub) == []
