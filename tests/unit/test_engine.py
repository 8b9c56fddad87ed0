"""The container engine interface: DockerEngine's pure halves (a ContainerSpec to docker-py's
arguments, docker-py's answers and errors to Titan's), and the per-user networks (core.network)
over FakeEngine, the in-memory engine every unit test of the gateway and the spawner uses."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import docker.errors
import pytest
import requests

from core.engine.base import (
    ContainerEngine,
    ContainerGone,
    EngineError,
    ImageMissing,
    NetworkExists,
    NetworkGone,
    SubnetTaken,
)
from core.engine.docker import _container, _network, create_arguments, label_filters, translate
from core.engine.spec import HARDENING, ContainerSpec, Hardening, Mount
from core.network import NetworkError, NetworkPlan, ensure_network, ensure_user_network, remove_if_unused
from spawner.container import HARDENING as SPAWNER_HARDENING
from tests.fakes import FakeEngine

GIB = 1024**3


def test_a_spec_becomes_docker_create_and_host_config_arguments() -> None:
    spec = ContainerSpec(name="t-dask-alice-c-worker-w", image="titan/minimal:1", command=("dask", "worker"),
                         environment={"A": "1"}, labels={"titan.owner": "alice"}, cores=1.5, memory=2 * GIB,
                         processes=256, user="1000:1000", network="container:abc",
                         mounts=(Mount("/state/tls/c", "/run/dask-gateway", read_only=True),
                                 Mount("titan-home-alice", "/home/jovyan", kind="volume")),
                         gpus=("GPU-1", "GPU-2"))
    create, host = create_arguments(spec)
    assert create == {"image": "titan/minimal:1", "name": "t-dask-alice-c-worker-w", "environment": {"A": "1"},
                      "labels": {"titan.owner": "alice"}, "detach": True, "command": ["dask", "worker"],
                      "user": "1000:1000"}
    assert host == {
        "init": True, "pids_limit": 256, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
        "network_mode": "container:abc", "mem_limit": 2 * GIB, "memswap_limit": 2 * GIB, "nano_cpus": 1_500_000_000,
        "binds": {"/state/tls/c": {"bind": "/run/dask-gateway", "mode": "ro"},
                  "titan-home-alice": {"bind": "/home/jovyan", "mode": "rw"}},
        "device_requests": [{"driver": "nvidia", "device_ids": ["GPU-1", "GPU-2"], "capabilities": [["gpu"]]}],
    }


def test_a_minimal_spec_keeps_the_images_command_and_user_but_not_its_privileges() -> None:
    create, host = create_arguments(ContainerSpec(name="n", image="i"))
    assert "command" not in create and "user" not in create
    assert host == {"init": True, "pids_limit": 4096, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
                    "nano_cpus": 1_000_000_000}
    _, soft = create_arguments(ContainerSpec(name="n", image="i", hardening=Hardening(cap_drop=(),
                                                                                      no_new_privileges=False)))
    assert "cap_drop" not in soft and "security_opt" not in soft


def test_servers_and_dask_containers_share_one_hardening() -> None:
    assert {k: v for k, v in create_arguments(ContainerSpec(name="n", image="i"))[1].items()
                                 if k in ("cap_drop", "security_opt")} == SPAWNER_HARDENING
    assert HARDENING.cap_drop == ("ALL",) and HARDENING.no_new_privileges


def test_label_filters() -> None:
    assert label_filters({"titan.deployment": "t", "titan.dask.cluster": None}) == [
        "titan.deployment=t", "titan.dask.cluster"]


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("error", response=response, explanation=explanation)


@pytest.mark.parametrize(("status", "text", "kind"), [
    (404, "network titan-user-alice not found", NetworkGone),
    (404, "No such image: titan/x:1", ImageMissing),
    (404, "No such container: abc", ContainerGone),
    (500, "driver failed", EngineError),
])
def test_docker_errors_become_named_errors(status: int, text: str, kind: type[EngineError]) -> None:
    error = translate(_api_error(status, text), "creating container n")
    assert type(error) is kind and "creating container n" in str(error) and text in str(error)
    assert translate(ValueError("x")) is None


def test_listings_inspections_and_networks_are_read_into_records() -> None:
    listed = _container({"Id": "abc", "Names": ["/t-alice"], "Image": "titan/minimal:1", "State": "running",
                         "Labels": {"titan.owner": "alice"}, "HostConfig": {"NetworkMode": "t-user-alice"}})
    assert (listed.id, listed.name, listed.state, listed.network_mode) == ("abc", "t-alice", "running", "t-user-alice")
    inspected = _container({"Id": "abc", "Name": "/t-alice", "Config": {"Image": "titan/minimal:1", "Labels": None},
                            "State": {"Status": "exited"}, "HostConfig": {"NetworkMode": "host"}})
    assert (inspected.name, inspected.image, inspected.state, inspected.labels) == ("t-alice", "titan/minimal:1",
                                                                                   "exited", {})
    ipam = {"Config": [{"Subnet": "10.213.0.0/24", "Gateway": "10.213.0.1"}, {"Subnet": "fd::/64"}]}
    network = _network({"Id": "n1", "Name": "t-titan", "Containers": {"c1": {}}, "IPAM": ipam})
    assert (network.subnets, network.gateway, network.containers) == (("10.213.0.0/24", "fd::/64"), "10.213.0.1",
                                                                      ("c1",))


# ---- the fake engine and the networks over it --------------------------------------------------

def test_the_fake_engine_keeps_containers_filters_labels_and_fails_on_demand() -> None:
    async def run() -> None:
        fake = FakeEngine()
        engine: ContainerEngine = fake  # the fake is a ContainerEngine
        await engine.create_network("net", "10.9.0.0/24", "10.9.0.1", {})
        first = await engine.create(ContainerSpec(name="a", image="i", labels={"k": "1"}, network="net"))
        await engine.create(ContainerSpec(name="b", image="i", labels={"k": "2", "x": ""}, network="container:a"))
        assert [c.name for c in await engine.list_containers({"k": None})] == ["a", "b"]
        assert [c.name for c in await engine.list_containers({"k": "2", "x": None})] == ["b"]
        fake.fail("start", after=True)
        with pytest.raises(EngineError, match="injected"):
            await engine.start(first)
        assert (await engine.inspect(first)).state == "running"  # it did start, then failed
        with pytest.raises(NetworkGone):
            await engine.create(ContainerSpec(name="c", image="i", network="gone"))
        assert await engine.remove(first) and not await engine.remove(first)
        with pytest.raises(ContainerGone):
            await engine.inspect(first)

    asyncio.run(run())


def test_a_users_network_is_made_on_a_free_subnet_and_goes_with_the_last_container() -> None:
    async def run() -> None:
        engine = FakeEngine()
        plan = NetworkPlan.of("t", "10.213.0.0/16", 24)
        await engine.create_network("other", "10.213.0.0/24", "10.213.0.1", {})
        name = await ensure_user_network(engine, plan, "Alice")
        info = engine.networks[name]
        assert name == "t-user-alice" and info.labels["titan.owner"] == "Alice"
        assert not ipaddress.ip_network(info.subnets[0]).overlaps(ipaddress.ip_network("10.213.0.0/24"))
        assert await ensure_user_network(engine, plan, "Alice") == name and len(engine.networks) == 2
        server = await engine.create(ContainerSpec(name="s", image="i", network=name))
        assert not await remove_if_unused(engine, name)  # still used
        await engine.remove(server)
        assert await remove_if_unused(engine, name) and name not in engine.networks
        assert not await remove_if_unused(engine, name)

    asyncio.run(run())


def test_a_concurrent_creator_of_the_name_or_the_subnet_is_survived() -> None:
    class Racing(FakeEngine):
        """Another creator takes the first subnet, then the name, at the moment we create."""

        async def create_network(self, name: str, subnet: str, gateway: str, labels: Any) -> None:
            if "racer-subnet" not in self.networks:
                await super().create_network("racer-subnet", subnet, gateway, {})
                raise SubnetTaken(subnet)
            if name not in self.networks:
                await super().create_network(name, "10.99.0.0/24", "10.99.0.1", {"by": "racer"})
                raise NetworkExists(name)

    async def run() -> None:
        engine = Racing()
        info = await ensure_network(engine, NetworkPlan.of("t", "10.213.0.0/16", 24), "t-user-bob", {})
        assert info.labels == {"by": "racer"}
        refusing = FakeEngine()
        refusing.fail("create_network", EngineError("Docker refused"))
        with pytest.raises(NetworkError, match="Docker refused"):
            await ensure_network(refusing, NetworkPlan.of("t", "10.213.0.0/16", 24), "x", {})

    asyncio.run(run())
