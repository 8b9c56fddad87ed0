"""Homes on shared storage across a real swarm (docs/swarm-homes.md): three engines in their own
network namespaces (tests/swarm/testbed.py) with ``homes=True``: the hub host serves its homes
directory over SFTP, each node mounts it with sshfs at the same path in its engine's own mount
namespace, so a node reaches homes only over the network. Node 2 is pool ``a``, node 3 pool ``b``.

A server's home is a bind of ``<homes root>/<home name>`` (core.homes.ensure_home makes it on the
hub host first): what one node writes another reads, the hub host (the Titan service) sees it owned
by 1000, and a node that lost the storage refuses the server at once naming itself, writing nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import docker
import pytest

from core.engine.base import MountMissing
from core.engine.spec import ContainerSpec, Mount
from core.engine.swarm import SwarmEngine
from core.homes import ensure_home
from core.images import image_tag
from core.labels import NODE_POOL
from service.dockerhost import DockerHost
from spawner.container import HOME_MOUNT, home_source
from tests.swarm.homes import homes_missing
from tests.swarm.host import can_run
from tests.swarm.testbed import Testbed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

T = TypeVar("T")
MIB = 1024**2
IMAGE = image_tag("base")  # the smallest of Titan's images; runs as jovyan (1000:1000)
TEMPLATE = "t-home-{username}"
TEXT = "written on node 2 over the network"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    why = can_run() or homes_missing()
    if why:
        pytest.skip(why)
    testbed = Testbed(nodes=3, labels={2: {NODE_POOL: "a"}, 3: {NODE_POOL: "b"}}, homes=True)
    testbed.up()
    try:
        testbed.load_images([IMAGE])
        print(f"\ntest bed {testbed.prefix}: " + ", ".join(f"{k} {v:.1f} s" for k, v in testbed.timings.items()))
        yield testbed
    finally:
        if testbed.leftovers():  # test_teardown_leaves_nothing brings it down when all went well
            testbed.down()
        print("test bed down: " + ", ".join(f"{k} {v:.1f} s" for k, v in testbed.timings.items() if "down" in k))


def server(bed: Testbed, name: str, user: str, pool: str, script: str) -> ContainerSpec:
    """A server-like service: the user's home bound as the spawner binds it, in the given pool."""
    source = home_source(TEMPLATE, user, str(bed.homes_root))
    return ContainerSpec(name=name, image=IMAGE, command=("sh", "-c", script), cores=0.25, memory=64 * MIB,
                         labels={"titan.test": "homes"}, pool=pool, mounts=(Mount(source, HOME_MOUNT),))


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def logs(bed: Testbed, i: int, container: str) -> str:
    return docker.APIClient(base_url=bed.socket(i), timeout=30).logs(container).decode()


def test_a_home_written_on_one_node_is_read_on_another(bed: Testbed) -> None:
    home = ensure_home(bed.homes_root, TEMPLATE, "alice")
    written = home / "from-node-2.txt"

    async def scenario() -> dict[str, float]:
        engine = SwarmEngine(bed.manager)
        spent: dict[str, float] = {}
        try:
            begin = time.monotonic()
            writer = await engine.create(server(bed, "t-writer", "alice", "a",
                                                f"echo '{TEXT}' > {HOME_MOUNT}/from-node-2.txt && sleep 600"))
            await engine.start(writer)
            await engine.wait_running(writer, within=60)
            assert (await engine.node_of(writer)).hostname == bed.namespace(2)
            assert await asyncio.to_thread(wait_until, written.exists, 10)  # on the hub host's disk
            spent["write on node 2, seen on the hub host"] = time.monotonic() - begin
            await engine.remove(writer)

            begin = time.monotonic()
            reader = await engine.create(server(bed, "t-reader", "alice", "b",
                                                f"cat {HOME_MOUNT}/from-node-2.txt && sleep 600"))
            await engine.start(reader)
            task = await engine.wait_running(reader, within=60)
            assert (await engine.node_of(reader)).hostname == bed.namespace(3)
            assert await asyncio.to_thread(wait_until, lambda: TEXT in logs(bed, 3, task.container_id), 10)
            spent["read on node 3"] = time.monotonic() - begin
            await engine.remove(reader)
        finally:
            await engine.close()
        return spent

    spent = run(scenario())
    print("\n" + ", ".join(f"{k}: {v:.2f} s" for k, v in spent.items()))
    assert written.read_text() == TEXT + "\n"
    info = written.stat()
    assert (info.st_uid, info.st_gid) == (1000, 1000)  # jovyan's on every node and on the hub host
    assert home.stat().st_uid == 1000
    for i in (1, 2, 3):
        assert list(bed.local_homes(i).iterdir()) == []  # no node kept anything of it on its own disk


def test_the_titan_service_reads_homes_where_servers_wrote_them(bed: Testbed) -> None:
    host = DockerHost(home_volume_template=TEMPLATE, homes_root=str(bed.homes_root))
    assert (host.volume_path("alice") / "from-node-2.txt").read_text() == TEXT + "\n"
    with pytest.raises(LookupError, match="does not exist yet"):
        host.volume_path("nobody")


@pytest.mark.parametrize(("node", "how"), [(2, "unmounted"), (3, "its sshfs killed")])
def test_a_node_without_the_homes_refuses_the_server_at_once_naming_itself(bed: Testbed, node: int,
                                                                           how: str) -> None:
    home = bed.homes_root / "t-home-alice"
    before = sorted(p.name for p in home.iterdir())
    bed.cut_homes(node, kill=how != "unmounted")

    async def scenario() -> float:
        engine = SwarmEngine(bed.manager)
        try:
            begin = time.monotonic()
            service = await engine.create(server(bed, f"t-lost-{node}", "alice", "ab"[node - 2],
                                                 f"echo lost > {HOME_MOUNT}/lost.txt; sleep 600"))
            await engine.start(service)
            with pytest.raises(MountMissing) as caught:
                await engine.wait_running(service, within=30)
            spent = time.monotonic() - begin
            assert f"Your home storage is not mounted on node {bed.namespace(node)}" in str(caught.value)
            # The engine's own words follow: the bind's path, or (a dead mount, when the container's
            # start trips on it first) the dead mount's error.
            assert str(home) in str(caught.value) or "transport endpoint is not connected" in str(caught.value)
            print(f"\n{caught.value}")
            await engine.remove(service)
            return spent
        finally:
            await engine.close()

    spent = run(scenario())
    print(f"\nnode {node} ({how}): refused in {spent:.2f} s")
    assert spent < 10
    assert list(bed.local_homes(node).iterdir()) == []  # nothing written on the node's own disk
    assert sorted(p.name for p in home.iterdir()) == before  # nor into the home


def test_teardown_leaves_nothing(bed: Testbed) -> None:
    """Last in this file: down with the nodes' sshfs (one of them killed already) and sshd."""
    bed.down()
    assert bed.leftovers() == []
    assert bed.timings["down"] < 20
