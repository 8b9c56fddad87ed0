"""SwarmEngine on a real swarm of three engines (tests/swarm/testbed.py): one manager, two workers,
each its own dockerd in its own network namespace. Node 2 advertises two fake GPUs
(``gpu=fake-a``, ``gpu=fake-b``), node 3 is in the node pool ``big``. Everything is read back from
the engines themselves: the service from the manager, the container from the engine of the node
its task landed on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import docker
import pytest

from core.engine.base import (
    ContainerGone,
    EngineError,
    ImageMissing,
    NetworkExists,
    NetworkGone,
    SubnetTaken,
    Unplaceable,
)
from core.engine.spec import ContainerSpec, Mount
from core.engine.swarm import SwarmEngine, TaskStatus
from core.engine.swarm_nodes import no_room_reason
from core.images import image_tag
from core.labels import NODE_POOL
from tests.swarm.host import can_run
from tests.swarm.testbed import Testbed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

T = TypeVar("T")
MIB = 1024**2
IMAGE = image_tag("base")  # the smallest of Titan's images (python3, sleep, sh)
SLEEP = ("sleep", "600")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    why = can_run()
    if why:
        pytest.skip(why)
    testbed = Testbed(nodes=3, labels={3: {NODE_POOL: "big"}}, resources={2: ["gpu=fake-a", "gpu=fake-b"]})
    testbed.up()
    try:
        testbed.load_images([IMAGE])
        print(f"\ntest bed {testbed.prefix}: " + ", ".join(f"{k} {v:.1f} s" for k, v in testbed.timings.items()))
        yield testbed
    finally:
        if testbed.leftovers():  # test_teardown_leaves_nothing brings it down when all went well
            testbed.down()
        print(f"test bed down in {testbed.timings['down']:.1f} s")


def node_api(bed: Testbed, i: int) -> docker.APIClient:
    return docker.APIClient(base_url=bed.socket(i), timeout=30)


def node_index(bed: Testbed, hostname: str) -> int:
    return next(i for i in range(1, bed.count + 1) if bed.namespace(i) == hostname)


def spec(name: str, **changes: Any) -> ContainerSpec:
    fields: dict[str, Any] = {"name": name, "image": IMAGE, "command": SLEEP, "cores": 0.25,
                              "memory": 64 * MIB, "labels": {"titan.test": "swarm"}}
    fields.update(changes)
    return ContainerSpec(**fields)


async def started(engine: SwarmEngine, service_spec: ContainerSpec, seen: list[TaskStatus] | None = None) -> str:
    service = await engine.create(service_spec)
    await engine.start(service)
    await engine.wait_running(service, within=60, progress=seen.append if seen is not None else None)
    return service


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def exec_in(bed: Testbed, i: int, container: str, *command: str) -> str:
    api = node_api(bed, i)
    run_id = api.exec_create(container, list(command))["Id"]
    return api.exec_start(run_id).decode().strip()


def test_a_spec_runs_as_a_service_whose_reservations_equal_its_limits(bed: Testbed) -> None:
    async def scenario() -> None:
        engine = SwarmEngine(bed.manager)
        try:
            service = await engine.create(spec("t-limits", cores=0.5, memory=96 * MIB, processes=128))
            created = await engine.inspect(service)
            assert (created.name, created.state, created.image) == ("t-limits", "created", IMAGE)
            assert await engine.task(service) is None  # created, not started: no task yet
            await engine.start(service)
            seen: list[TaskStatus] = []
            task = await engine.wait_running(service, within=60, progress=seen.append)
            assert seen[-1].state == "running" and task.container_id
            assert (await engine.inspect(service)).state == "running"
            assert [c.id for c in await engine.list_containers({"titan.test": "swarm"})] == [service]

            resources = node_api(bed, 1).inspect_service(service)["Spec"]["TaskTemplate"]["Resources"]
            assert resources["Reservations"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 96 * MIB}
            assert resources["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 96 * MIB, "Pids": 128}

            where = await engine.node_of(service)
            i = node_index(bed, where.hostname)
            assert where.address == bed.address(i)
            room = next(r for r in await engine.rooms() if r.node_id == where.node_id)
            total = node_api(bed, 1).inspect_node(where.node_id)["Description"]["Resources"]
            assert (room.cpus, room.memory) == (total["NanoCPUs"] / 1e9 - 0.5, total["MemoryBytes"] - 96 * MIB)
            container = node_api(bed, i).inspect_container(task.container_id)
            host = container["HostConfig"]
            assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (500_000_000, 96 * MIB, 128)
            assert host["CapDrop"] == ["ALL"] and host["Init"] is True
            assert container["Config"]["Labels"]["titan.test"] == "swarm"
            status = exec_in(bed, i, task.container_id, "grep", "-E", "^(NoNewPrivs|CapEff)", "/proc/1/status")
            assert "NoNewPrivs:\t1" in status and "CapEff:\t0000000000000000" in status

            await engine.stop(service, grace=1)
            assert (await engine.inspect(service)).state == "exited"
            await engine.start(service)  # started again: a new task, hence a new container
            again = await engine.wait_running(service, within=60)
            assert again.container_id != task.container_id and (await engine.inspect(service)).state == "running"
            await engine.stop(service, grace=1)
            assert await engine.remove(service) is True
            with pytest.raises(ContainerGone):
                await engine.inspect(service)
            assert await engine.remove(service) is False
            assert wait_until(lambda: not any(node_api(bed, n).containers(all=True, filters={"label": "titan.test"})
                                              for n in range(1, bed.count + 1)), 15)
            assert node_api(bed, 1).services(filters={"label": "titan.test"}) == []
        finally:
            await engine.close()

    run(scenario())


def test_a_named_volume_keeps_a_file_across_two_services_in_a_node_pool(bed: Testbed) -> None:
    home = Mount("titan-home-alice", "/home/jovyan", kind="volume")

    async def scenario() -> None:
        engine = SwarmEngine(bed.manager)
        try:
            write = ("sh", "-c", "echo kept > /home/jovyan/note && exec sleep 600")
            first = await started(engine, spec("t-vol-1", command=write, mounts=(home,), pool="big"))
            where = await engine.node_of(first)
            assert where.hostname == bed.namespace(3) and where.address == bed.address(3)  # the labelled node
            task = await engine.task(first)
            assert task is not None
            deadline = time.monotonic() + 10
            while exec_in(bed, 3, task.container_id, "cat", "/home/jovyan/note") != "kept":
                assert time.monotonic() < deadline, "the first service did not write its note"
                await asyncio.sleep(0.2)
            assert await engine.remove(first)
            second = await started(engine, spec("t-vol-2", mounts=(home,), pool="big"))
            task = await engine.task(second)
            assert task is not None and (await engine.node_of(second)).hostname == bed.namespace(3)
            assert exec_in(bed, 3, task.container_id, "cat", "/home/jovyan/note") == "kept"
            volume = node_api(bed, 3).inspect_volume("titan-home-alice")
            assert volume["Driver"] == "local"  # a real named volume, not a bind mount of a path
            assert await engine.remove(second)

            assert no_room_reason(await engine.rooms(), 0.25, 64 * MIB, pool="big") == ""
            assert no_room_reason(await engine.rooms(), 0.25, 64 * MIB, pool="no-such-pool") == \
                "no node is in the pool 'no-such-pool'"
            nowhere = await engine.create(spec("t-nowhere", pool="no-such-pool"))
            await engine.start(nowhere)
            with pytest.raises(Unplaceable, match="scheduling constraints not satisfied"):
                await engine.wait_running(nowhere, within=30, patience=1)
            assert await engine.remove(nowhere)
        finally:
            await engine.close()

    run(scenario())


def test_generic_resources_give_distinct_units_and_an_impossible_request_fails_fast(bed: Testbed) -> None:
    async def scenario() -> None:
        engine = SwarmEngine(bed.manager)
        services: list[str] = []
        try:
            assert no_room_reason(await engine.rooms(), 0.25, 64 * MIB, resources={"gpu": 2}) == ""
            units = []
            for n in (1, 2):
                service = await started(engine, spec(f"t-gpu-{n}", resources={"gpu": 1}))
                services.append(service)
                task = await engine.task(service)
                assert task is not None and (await engine.node_of(service)).hostname == bed.namespace(2)
                env = node_api(bed, 2).inspect_container(task.container_id)["Config"]["Env"]
                given = [e.split("=", 1)[1] for e in env if e.startswith("DOCKER_RESOURCE_GPU=")]
                assert given == list(task.assigned["gpu"])
                units += given
            assert sorted(units) == ["fake-a", "fake-b"]
            rooms = await engine.rooms()
            assert [r.resources for r in rooms if r.hostname == bed.namespace(2)] == [{"gpu": 0}]
            assert no_room_reason(rooms, 0.25, 64 * MIB, resources={"gpu": 1}) == \
                "no node of the 3 nodes has 1 gpu free now"  # the profile is shown disabled with this

            third = await engine.create(spec("t-gpu-3", resources={"gpu": 1}))
            services.append(third)
            await engine.start(third)
            seen: list[TaskStatus] = []
            begin = time.monotonic()
            with pytest.raises(Unplaceable, match=r"no suitable node \(insufficient resources on 3 nodes\)"):
                await engine.wait_running(third, within=60, patience=2, progress=seen.append)
            assert time.monotonic() - begin < 8
            assert seen[-1].unplaceable and "insufficient resources" in seen[-1].progress
        finally:
            for service in services:
                await engine.remove(service)
            await engine.close()

    run(scenario())


def test_a_missing_image_and_other_refusals_are_named_errors(bed: Testbed) -> None:
    async def scenario() -> None:
        engine = SwarmEngine(bed.manager)
        try:
            with pytest.raises(ContainerGone):
                await engine.inspect("no-such-service")
            with pytest.raises(NetworkGone):
                await engine.create(spec("t-nonet", network="no-such-network"))
            with pytest.raises(EngineError, match="network namespace"):
                await engine.create(spec("t-ns", network="container:abc"))
            with pytest.raises(EngineError, match="GPUs by uuid need the node they are on"):
                await engine.create(spec("t-uuid", gpus=("GPU-1",)))
            service = await engine.create(spec("t-dup"))
            with pytest.raises(EngineError, match="exists"):
                await engine.create(spec("t-dup"))
            assert await engine.remove(service)

            absent = await engine.create(spec("t-absent", image="titan/absent:0"))
            await engine.start(absent)
            seen: list[TaskStatus] = []
            with pytest.raises(ImageMissing, match="titan/absent:0"):
                await engine.wait_running(absent, within=60, progress=seen.append)
            print("a missing image: " + " -> ".join(t.progress for t in seen))
            # Asking again for a task Swarm rejected (wait_running does for a passing reason): a new
            # task each time, never none (scaling to 0 and back at once left none, measured).
            def tasks_made() -> int:
                return len(node_api(bed, 1).tasks(filters={"service": absent}))

            for made in (2, 3):
                await engine._scale(absent, 1, anew=True)
                assert wait_until(lambda: tasks_made() == made, 20), tasks_made()  # noqa: B023 -- called at once
            assert await engine.remove(absent)

            info = await engine.info()
            nodes = node_api(bed, 1).nodes()
            assert len(nodes) == 3 and info.cpus == sum(n["Description"]["Resources"]["NanoCPUs"] for n in nodes) / 1e9
        finally:
            await engine.close()

    run(scenario())


def test_overlay_networks_are_created_inspected_and_removed(bed: Testbed) -> None:
    subnet = f"{bed.address(1).rsplit('.', 2)[0]}.200.0/24"

    async def scenario() -> None:
        engine = SwarmEngine(bed.manager)
        try:
            await engine.create_network("t-user-alice", subnet, subnet.replace(".0/24", ".1"), {"titan.test": "swarm"})
            with pytest.raises(NetworkExists):
                await engine.create_network("t-user-alice", subnet, subnet.replace(".0/24", ".1"), {})
            with pytest.raises(SubnetTaken):
                await engine.create_network("t-user-bob", subnet, subnet.replace(".0/24", ".1"), {})
            network = await engine.inspect_network("t-user-alice")
            assert network.subnets == (subnet,) and network.labels == {"titan.test": "swarm"}
            raw = node_api(bed, 1).inspect_network("t-user-alice")
            assert (raw["Driver"], raw["Scope"], raw["Attachable"]) == ("overlay", "swarm", True)
            await engine.remove_network("t-user-alice")
            with pytest.raises(NetworkGone):
                await engine.inspect_network("t-user-alice")
        finally:
            await engine.close()

    run(scenario())


def test_teardown_leaves_nothing(bed: Testbed) -> None:
    """Last in this file: the bed goes down with a service still running on it."""
    async def leave_one_running() -> None:
        engine = SwarmEngine(bed.manager)
        try:
            await started(engine, spec("t-left"))
        finally:
            await engine.close()

    run(leave_one_running())
    bed.down()
    assert bed.leftovers() == []
    assert bed.timings["down"] < 20
