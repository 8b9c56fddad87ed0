"""Dask clusters on Swarm, the pure parts: the scheduler's fixed ports, the workers' scheduler address
and interface, a container as a service (network, secrets, published ports), the addresses the
gateway reaches a scheduler at; and a service's secrets in the Swarm engine's arguments. The real
thing runs on a real swarm in tests/integration/test_swarm_hub.py (from a real server, through the real gateway)."""

from __future__ import annotations

import asyncio
import logging
import types
from typing import Any

import docker.errors
import pytest
import requests
from dask_gateway_server.utils import FrozenAttrDict

from core.engine.base import EngineError
from core.engine.docker import DockerEngine
from core.engine.spec import ContainerSpec, Mount
from core.engine.swarm import SecretInfo, SwarmEngine
from core.engine.swarm_nodes import NodeRoom
from core.engine.swarm_spec import TaskStatus, secret_labels, secret_name, service_arguments
from gateway import swarm
from gateway.backend import DockerBackend
from gateway.cluster_config import DockerClusterConfig
from gateway.containers import dask_container
from gateway.tls import TLS_DIR

GIB = 1024**3
GATEWAY_COMMAND = ["dask", "scheduler", "--protocol", "tls", "--port", "0", "--host", "0.0.0.0",
                   "--dashboard-address", "0.0.0.0:0", "--preload", "dask_gateway.scheduler_preload",
                   "--dg-api-address", "0.0.0.0:0", "--dg-heartbeat-period", "15"]


def cluster(**config: Any) -> types.SimpleNamespace:
    values = DockerClusterConfig(**{"image": "titan/datascience:1", "origin_server": "", "origin_container": "srv1",
                                    "origin_network": "net1", "worker_memory": GIB, "scheduler_memory": GIB // 2,
                                    "worker_cores": 1, "scheduler_cores": 0.5, **config}).to_dict()
    return types.SimpleNamespace(name="c" * 32, username="alice", config=FrozenAttrDict(values),
                                 tls_cert=b"CERT", tls_key=b"KEY", token="t0k")


def test_the_scheduler_listens_on_fixed_ports_on_every_interface() -> None:
    command = swarm.scheduler_command(GATEWAY_COMMAND)
    assert command[command.index("--port") + 1] == "8786"
    assert command[command.index("--dashboard-address") + 1] == "0.0.0.0:8787"
    assert command[command.index("--dg-api-address") + 1] == "0.0.0.0:8788"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # published ports arrive on docker_gwbridge
    assert len(command) == len(GATEWAY_COMMAND)
    with pytest.raises(ValueError, match="--dg-api-address"):
        swarm.scheduler_command(GATEWAY_COMMAND[:-4])


def test_workers_reach_the_scheduler_by_service_name_and_advertise_their_overlay_address() -> None:
    assert swarm.scheduler_overlay_address("titan", "Alice", "c" * 32) == \
        f"tls://titan-dask-alice-{'c' * 12}-scheduler:8786"
    assert swarm.worker_command(["dask", "worker", "tls://x:8786"], "eth0")[-2:] == ["--interface", "eth0"]
    assert swarm.worker_command(["dask", "worker"], "") == ["dask", "worker"]


def test_a_container_becomes_a_service_on_its_servers_network_with_its_tls_as_secrets() -> None:
    c = cluster()
    spec = dask_container("titan", c, "scheduler", "", ["dask", "scheduler"], {"A": "1"}, "1000:1000",
                          Mount("/state/dask-tls/c", TLS_DIR, read_only=True))
    service = swarm.as_service(spec, "net1", c.tls_cert, c.tls_key, {8786: 30001})
    assert (service.network, service.mounts, service.publish) == ("net1", (), {8786: 30001})
    assert service.secrets == {"dask.crt": b"CERT", "dask.pem": b"KEY"}
    assert (service.cores, service.memory, service.labels) == (0.5, GIB // 2, spec.labels)  # the same limits
    arguments = service_arguments(service, secret_ids={"dask.crt": "id1", "dask.pem": "id2"})
    container = arguments["task_template"]["ContainerSpec"]
    assert container["Secrets"] == [
        {"SecretID": "id1", "SecretName": f"{spec.name}-dask.crt",
         "File": {"Name": "dask.crt", "UID": "1000", "GID": "1000", "Mode": 0o400}},
        {"SecretID": "id2", "SecretName": f"{spec.name}-dask.pem",
         "File": {"Name": "dask.pem", "UID": "1000", "GID": "1000", "Mode": 0o400}}]
    assert "CERT" not in str(arguments) and "KEY" not in str(arguments)  # only references, never the data
    assert arguments["networks"] == ["net1"]
    assert arguments["endpoint_spec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 8786, "PublishMode": "host",
                                                    "PublishedPort": 30001}]
    with pytest.raises(ValueError, match="no network"):
        swarm.as_service(spec, "", b"", b"")
    with pytest.raises(ValueError, match="GPU"):
        swarm.as_service(ContainerSpec(name="w", image="i", gpus=("GPU-1",)), "net1", b"", b"")


def test_secrets_are_named_after_their_service_and_made_first() -> None:
    spec = ContainerSpec(name="svc", image="i", labels={"titan.dask.cluster": "c1"}, secrets={"k": b"v"})
    assert secret_name("svc", "k") == "svc-k"
    assert secret_labels(spec) == {"titan.dask.cluster": "c1", "titan.for-service": "svc"}
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(EngineError):
            secret_name("svc", bad)
    with pytest.raises(EngineError, match="made before"):
        service_arguments(spec)
    root = service_arguments(ContainerSpec(name="r", image="i", secrets={"k": b"v"}), secret_ids={"k": "i"})
    assert root["task_template"]["ContainerSpec"]["Secrets"][0]["File"]["UID"] == "0"


@pytest.mark.asyncio
async def test_one_host_refuses_secrets() -> None:
    engine = DockerEngine(client_factory=lambda: None)
    with pytest.raises(EngineError, match="secrets need the Swarm engine"):
        await engine.create(ContainerSpec(name="n", image="i", secrets={"k": b"v"}))


def test_the_gateway_reaches_the_scheduler_at_its_nodes_published_ports() -> None:
    heartbeat = {"scheduler_address": "tls://127.0.0.1:8786", "dashboard_address": "http://127.0.0.1:8787",
                 "api_address": "http://127.0.0.1:8788", "count": 2}
    reached = swarm.reached_at(heartbeat, "10.232.0.12", {8786: 30010, 8787: 30011, 8788: 30012})
    assert reached == {"scheduler_address": "tls://10.232.0.12:30010", "dashboard_address": "http://10.232.0.12:30011",
                       "api_address": "http://10.232.0.12:30012", "count": 2}
    assert swarm.reached_at({**heartbeat, "dashboard_address": ""}, "n", {8787: 1})["dashboard_address"] == ""


class Ports:
    """The part of a SwarmEngine that ``SwarmClusters.ports`` asks."""

    def __init__(self, used: set[int]) -> None:
        self.used = used

    async def published_ports(self) -> set[int]:
        return set(self.used)


@pytest.mark.asyncio
async def test_scheduler_ports_are_free_distinct_and_in_the_range() -> None:
    parts = swarm.SwarmClusters(Ports({30000, 30002}), (30000, 30007), "eth0",  # type: ignore[arg-type]
                                logging.getLogger("t"))
    first = await parts.ports()
    second = await parts.ports()  # picked while the first scheduler's service is still being made
    ports = [*first.values(), *second.values()]
    assert set(first) == set(swarm.PORTS) and len(set(ports)) == 6
    assert all(30000 <= p <= 30007 and p not in (30000, 30002) for p in ports)
    with pytest.raises(LookupError, match="widen"):
        await parts.ports()


def test_the_backend_on_swarm_uses_its_secrets_and_fixed_ports() -> None:
    backend = DockerBackend(deployment="titan", engine_kind="swarm", swarm_manager="unix:///nowhere.sock",
                            swarm_published_ports="31000-31099", api_url="http://10.232.0.254:1/api")
    assert backend.swarm is not None and (backend.swarm.low, backend.swarm.high) == (31000, 31099)
    c: Any = cluster()
    assert backend.get_tls_paths(c) == ("/run/secrets/dask.crt", "/run/secrets/dask.pem")
    worker = backend.get_worker_command(c, "w1")
    assert worker[2] == f"tls://titan-dask-alice-{'c' * 12}-scheduler:8786" and worker[-2:] == ["--interface", "eth0"]
    assert backend.get_worker_env(c)["DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY"] == "/run/secrets/dask.pem"
    scheduler = backend.get_scheduler_command(c)
    assert scheduler[scheduler.index("--port") + 1] == "8786"
    one_host = DockerBackend(deployment="titan", api_url="http://127.0.0.1:1/api")
    assert one_host.swarm is None and one_host.get_tls_paths(c)[0] == f"{TLS_DIR}/dask.crt"


@pytest.mark.asyncio
async def test_a_cluster_with_gpu_workers_is_refused_on_swarm_with_the_reason(tmp_path: Any) -> None:
    """Before any engine call (the manager here answers nothing): a message the user can act on."""
    from dask_gateway_server.backends.base import PublicException
    from dask_gateway_server.models import User

    (tmp_path / "p.yaml").write_text("profiles: [{display_name: S, image: minimal, resources: {cpu: 1, memory: 1G}}]\n"
                                     "dask: {worker_gpus: {choices: [0, 1], default: 0}}\n")
    backend = DockerBackend(deployment="titan", engine_kind="swarm", swarm_manager="unix:///nowhere.sock",
                            profiles_dir=str(tmp_path), api_url="http://127.0.0.1:1/api")
    with pytest.raises(PublicException, match=r"^Dask workers with GPUs are not available on this Swarm"):
        await backend.start_cluster(User("alice"), {"worker_gpus": 1})


class SecretSwarm:
    """A stand-in for docker-py's APIClient with the calls a service's secrets go through: made before
    the service, removed after it, also when the service cannot be made."""

    def __init__(self, refuse_service: bool = False) -> None:
        self.refuse_service = refuse_service
        self.secrets: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}

    def create_secret(self, name: str, data: bytes, labels: dict[str, str] | None = None) -> dict[str, str]:
        secret_id = f"s{len(self.secrets) + 1}"
        self.secrets[secret_id] = {"ID": secret_id, "Spec": {"Name": name, "Labels": labels or {}}, "data": data}
        return {"ID": secret_id}

    def remove_secret(self, secret_id: str) -> bool:
        if any(secret_id in str(s) for s in self.services.values()):
            raise docker.errors.APIError("in use", explanation=f"secret {secret_id} is in use")
        if self.secrets.pop(secret_id, None) is None:
            raise docker.errors.NotFound("no such secret")
        return True

    def secrets_list(self, filters: Any = None) -> list[dict[str, Any]]:
        return list(self.secrets.values())

    def create_service(self, task_template: Any, name: str, **_: Any) -> dict[str, str]:
        if self.refuse_service:
            response = requests.Response()
            response.status_code = 409
            raise docker.errors.APIError("exists", response=response, explanation="name conflicts")
        self.services[name] = {"ID": name, "Spec": {"Name": name, "TaskTemplate": dict(task_template)}}
        return {"ID": name}

    def inspect_service(self, service: str, insert_defaults: Any = None) -> dict[str, Any]:
        if service not in self.services:
            raise docker.errors.NotFound("no such service")
        return self.services[service]

    def remove_service(self, service: str) -> bool:
        del self.services[service]
        return True

    def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_a_services_secrets_are_made_before_it_and_removed_with_it() -> None:
    api = SecretSwarm()
    engine = SwarmEngine(client_factory=lambda: api)
    spec = ContainerSpec(name="sched", image="i", user="1000:1000", labels={"titan.dask.cluster": "c1"},
                         secrets={"dask.crt": b"CERT", "dask.pem": b"KEY"})
    service = await engine.create(spec)
    assert sorted(s["Spec"]["Name"] for s in api.secrets.values()) == ["sched-dask.crt", "sched-dask.pem"]
    assert {s["data"] for s in api.secrets.values()} == {b"CERT", b"KEY"}
    referenced = api.services["sched"]["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert sorted(r["SecretID"] for r in referenced) == sorted(api.secrets)
    assert await engine.remove(service) is True
    assert api.secrets == {} and api.services == {}
    assert await engine.remove(service) is False  # gone already

    refused = SecretSwarm(refuse_service=True)
    engine = SwarmEngine(client_factory=lambda: refused)
    with pytest.raises(EngineError, match="a service of that name exists"):
        await engine.create(spec)
    assert refused.secrets == {}  # the secrets made for it went with the failed create


class ListedSecrets:
    """The part of a SwarmEngine that the reaper's secret pass asks."""

    def __init__(self) -> None:
        self.secrets = [SecretInfo("s1", "a-dask.crt", {"titan.dask.cluster": "gone"}),
                        SecretInfo("s2", "b-dask.crt", {"titan.dask.cluster": "live"}),
                        SecretInfo("s3", "c-dask.crt", {"titan.dask.cluster": "busy"})]
        self.asked: list[Any] = []

    async def list_secrets(self, labels: Any) -> list[SecretInfo]:
        self.asked.append(dict(labels))
        return list(self.secrets)

    async def remove_secret(self, secret_id: str) -> bool:
        if secret_id == "s3":
            raise EngineError("secret s3 is in use by a service being removed")
        self.secrets = [s for s in self.secrets if s.id != secret_id]
        return True


@pytest.mark.asyncio
async def test_the_reaper_removes_the_secrets_of_clusters_that_are_gone() -> None:
    engine = ListedSecrets()
    parts = swarm.SwarmClusters(engine, (30000, 30999), "eth0", logging.getLogger("t"))  # type: ignore[arg-type]
    await parts.reap_secrets({"titan.deployment": "t"}, lambda name: name != "live")
    assert engine.asked == [{"titan.deployment": "t", "titan.dask.cluster": None}]
    assert [s.id for s in engine.secrets] == ["s2", "s3"]  # s3 in use: the next pass


class Nodes:
    """The part of a SwarmEngine that placing workers asks: two ready nodes with room, a drained one."""

    def __init__(self) -> None:
        self.rooms_now = [NodeRoom("n2", "node-2", "10.232.0.12", "", cpus=2, memory=8 * GIB),
                          NodeRoom("n3", "node-3", "10.232.0.13", "", cpus=2, memory=6 * GIB),
                          NodeRoom("n1", "manager", "10.232.0.11", "", cpus=8, memory=32 * GIB, ready=False)]
        self.made: dict[str, ContainerSpec] = {}
        self.count = 0
        self.servers = {"srv1": "n3"}  # the server's service -> its node

    async def rooms(self) -> list[Any]:
        return list(self.rooms_now)

    async def list_containers(self, labels: dict[str, str]) -> list[Any]:
        return [types.SimpleNamespace(id=sid) for sid, s in self.made.items()
                if all(s.labels.get(k) == v for k, v in labels.items())]

    async def published_ports(self) -> set[int]:
        return set()

    async def task(self, service_id: str) -> TaskStatus | None:
        if service_id not in self.servers:
            raise EngineError(f"service {service_id}: not found")
        return TaskStatus("running", node_id=self.servers[service_id])

    async def create(self, spec: ContainerSpec) -> str:
        await asyncio.sleep(0.01)  # the manager's round trip: another placement would run meanwhile
        service_id, self.count = f"s{self.count}", self.count + 1
        self.made[service_id] = spec
        return service_id


@pytest.mark.asyncio
async def test_a_clusters_workers_are_spread_over_the_nodes_with_room() -> None:
    engine = Nodes()
    parts = swarm.SwarmClusters(engine, (30000, 30999), "eth0", logging.getLogger("t"))  # type: ignore[arg-type]
    one = cluster()

    def worker(n: int) -> ContainerSpec:
        return ContainerSpec(name=f"w{n}", image="i", cores=1, memory=GIB, network="net1",
                             labels={"titan.dask.cluster": one.name, "titan.dask.role": "worker"})

    await asyncio.gather(*(parts.create(worker(n), one) for n in range(4)))  # at once, as dask-gateway scales
    nodes = sorted(s.node for s in engine.made.values())
    assert nodes == ["n2", "n2", "n3", "n3"]  # never the drained manager; two each
    del engine.made["s0"]  # a worker scaled away: its node has room for the next one
    await parts.create(worker(4), one)
    assert sorted(s.node for s in engine.made.values()) == ["n2", "n2", "n3", "n3"]
    engine.rooms_now = [r for r in engine.rooms_now if not r.ready]  # no node with room now: Swarm decides
    await parts.create(worker(5), one)
    assert engine.made["s5"].node == ""


def scheduler(one: types.SimpleNamespace, cores: float = 0.5) -> ContainerSpec:
    return ContainerSpec(name="s", image="i", cores=cores, memory=GIB // 2, network="net1",
                         labels={"titan.dask.cluster": one.name, "titan.dask.role": "scheduler"})


@pytest.mark.asyncio
async def test_the_scheduler_goes_to_its_servers_node_when_it_has_room() -> None:
    """A container joins its user's overlay in 0.5 s on a node where that overlay already has a
    container, 1.0-1.5 s on one where it has none (measured on the test bed): the scheduler goes to
    its server's node (n3, though n2 has more memory free), and so does the first worker."""
    engine = Nodes()
    parts = swarm.SwarmClusters(engine, (30000, 30999), "eth0", logging.getLogger("t"))  # type: ignore[arg-type]
    one = cluster()
    sid = await parts.create(scheduler(one), one)
    assert engine.made[sid].node == "n3"
    assert set(engine.made[sid].publish) == set(swarm.PORTS)
    worker = ContainerSpec(name="w", image="i", cores=1, memory=GIB, network="net1",
                           labels={"titan.dask.cluster": one.name, "titan.dask.role": "worker"})
    first, second = [await parts.create(worker, one) for _ in range(2)]
    assert (engine.made[first].node, engine.made[second].node) == ("n3", "n2")  # then spread


@pytest.mark.asyncio
async def test_a_scheduler_goes_elsewhere_when_its_servers_node_is_full_or_unknown() -> None:
    engine = Nodes()
    parts = swarm.SwarmClusters(engine, (30000, 30999), "eth0", logging.getLogger("t"))  # type: ignore[arg-type]
    big = cluster()
    sid = await parts.create(scheduler(big, cores=4), big)  # n3 has 2 CPUs free, n2 neither: Swarm decides
    assert engine.made[sid].node == ""
    engine.rooms_now[0] = NodeRoom("n2", "node-2", "10.232.0.12", "", cpus=8, memory=8 * GIB)
    sid = await parts.create(scheduler(big, cores=4), big)
    assert engine.made[sid].node == "n2"
    gone = cluster(origin_container="srv-gone")  # the server went meanwhile: most memory free
    gone.name = "d" * 32
    sid = await parts.create(scheduler(gone), gone)
    assert engine.made[sid].node == "n2"
