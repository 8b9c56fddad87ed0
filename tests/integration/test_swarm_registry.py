"""Images reach every node through a registry on the manager, and a node that cannot get one says so
at once (issue 16): a real swarm of two engines (tests/swarm/testbed.py) with Debian's
``docker-registry`` running in the manager's network namespace, trusted by both nodes' engines.

The main engine pushes Titan's base image with ``images.build.push`` (what ``scripts/titan.sh images``
runs) through a loopback relay (tests/swarm/registry.py: the main engine trusts 127.0.0.0/8 only and
its daemon.json stays as it is); the worker, which never had the image, pulls it from the registry
on its first start.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import docker
import pytest

from core.engine.base import ImageMissing
from core.engine.spec import ContainerSpec
from core.engine.swarm import SwarmEngine
from core.image_check import check_images
from core.images import image_tag
from core.labels import NODE_POOL
from core.registry import registry_digest, registry_has, registry_image
from images.build import push
from tests.swarm.host import can_run
from tests.swarm.registry import loopback_relay, stop_registry
from tests.swarm.testbed import Testbed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

T = TypeVar("T")
IMAGE = image_tag("base")  # the smallest of Titan's images (202 MB)
ABSENT = "titan/base:000000000000"  # a tag no recipe has: never pushed
WORKER_POOL = "worker"  # node 2's pool: a service of that pool runs on the node that never had the image


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    why = can_run()
    if why:
        pytest.skip(why)
    testbed = Testbed(nodes=2, registry=True, labels={2: {NODE_POOL: WORKER_POOL}})
    testbed.up()
    try:
        print(f"\ntest bed {testbed.prefix} with a registry at {testbed.registry}: up in {testbed.timings['up']:.1f} s")
        yield testbed
    finally:
        if testbed.leftovers():  # test_teardown_leaves_nothing brings it down when all went well
            testbed.down()


def spec(name: str, image: str) -> ContainerSpec:
    return ContainerSpec(name=name, image=image, command=("sleep", "600"), cores=0.25, memory=64 * 1024**2,
                         labels={"titan.test": "registry"}, pool=WORKER_POOL)


async def start_timed(engine: SwarmEngine, name: str, image: str) -> tuple[str, float]:
    """A service of ``image`` on the worker, created, started and running: (its id, seconds from start)."""
    service = await engine.create(spec(name, image))
    began = time.monotonic()
    await engine.start(service)
    await engine.wait_running(service, within=90)
    return service, time.monotonic() - began


def test_a_pushed_image_reaches_a_node_that_never_had_it(bed: Testbed) -> None:
    worker = docker.APIClient(base_url=bed.socket(2), timeout=30)
    image = registry_image(IMAGE, bed.registry)
    assert image == f"{bed.registry}/{IMAGE}"
    assert not worker.images(name=image) and not worker.images(name=IMAGE)

    with loopback_relay(bed.registry) as local:
        began = time.monotonic()
        push(["base"], local)
        pushed = time.monotonic() - began
        again = time.monotonic()
        push(["base"], local)  # every layer is there already
        pushed_again = time.monotonic() - again
        subprocess.run(["docker", "rmi", registry_image(IMAGE, local)], check=True, capture_output=True)  # the tag
    assert registry_has(bed.registry, IMAGE) and not registry_has(bed.registry, ABSENT)
    digest = registry_digest(bed.registry, IMAGE)
    assert digest.startswith("sha256:") and registry_digest(bed.registry, ABSENT) == ""

    async def scenario() -> tuple[float, float]:
        engine = SwarmEngine(bed.manager)
        try:
            first, first_seconds = await start_timed(engine, "r-first", image)
            assert (await engine.node_of(first)).hostname == bed.namespace(2)
            # As the spawner names it: the tag pinned to the digest the registry gives (the same bytes).
            second, second_seconds = await start_timed(engine, "r-second", f"{image}@{digest}")
            for service in (first, second):
                await engine.remove(service)
            return first_seconds, second_seconds
        finally:
            await engine.close()

    first, second = run(scenario())
    print(f"push {pushed:.1f} s (again, nothing new: {pushed_again:.1f} s); start on the worker with its "
          f"first pull {first:.1f} s, then {second:.1f} s")
    assert worker.images(name=image)
    assert f"{bed.registry}/{IMAGE.split(':')[0]}@{digest}" in worker.inspect_image(image)["RepoDigests"]
    assert second < first


def test_a_node_without_the_image_fails_at_once_naming_node_and_image(bed: Testbed) -> None:
    async def fails(name: str, image: str) -> tuple[str, float]:
        engine = SwarmEngine(bed.manager)
        try:
            service = await engine.create(spec(name, image))
            began = time.monotonic()
            await engine.start(service)
            with pytest.raises(ImageMissing) as raised:
                await engine.wait_running(service, within=60)
            await engine.remove(service)
            return str(raised.value), time.monotonic() - began
        finally:
            await engine.close()

    absent = registry_image(ABSENT, bed.registry)
    message, seconds = run(fails("r-absent", absent))
    print(f"not in the registry, in {seconds:.1f} s: {message}")
    assert seconds < 5
    assert f"node {bed.namespace(2)} has no image {absent}" in message
    assert f"the registry {bed.registry} does not have {ABSENT}" in message

    message, seconds = run(fails("r-local", ABSENT))  # no registry named: the node's own images only
    assert seconds < 5 and "swarm.registry" in message, message


def test_the_check_lists_what_each_node_lacks(bed: Testbed) -> None:
    api = docker.APIClient(base_url=bed.manager, timeout=30)
    began = time.monotonic()
    report = check_images(api, [registry_image(IMAGE, bed.registry), registry_image(ABSENT, bed.registry)],
                          within=60)
    print(f"check in {time.monotonic() - began:.1f} s: {report}")
    nodes = {bed.namespace(1), bed.namespace(2)}
    assert report[registry_image(IMAGE, bed.registry)] == dict.fromkeys(nodes, "")  # node 1 pulled it now
    assert set(report[registry_image(ABSENT, bed.registry)]) == nodes
    assert all("No such image" in why for why in report[registry_image(ABSENT, bed.registry)].values())
    assert not api.services(filters={"label": "titan.check"})  # the check's services are gone

    # The admin's command, for Titan's base image (on every node now): one line per node, exit 0.
    done = subprocess.run([sys.executable, "-m", "core.image_check", "--registry", bed.registry,
                           "--manager", bed.manager, "base"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(f"{node}: ok {registry_image(IMAGE, bed.registry)}"
                                                      for node in nodes)


def test_a_registry_that_does_not_answer_is_named_and_cached_images_still_start(bed: Testbed) -> None:
    stop_registry(bed.dir / "registry")
    image = registry_image("titan/minimal:000000000000", bed.registry)

    async def scenario() -> str:
        engine = SwarmEngine(bed.manager)
        try:
            service = await engine.create(spec("r-down", image))
            await engine.start(service)
            with pytest.raises(ImageMissing) as raised:
                await engine.wait_running(service, within=30)
            await engine.remove(service)
            return str(raised.value)
        finally:
            await engine.close()

    message = run(scenario())
    assert f"the registry {bed.registry} does not answer" in message, message

    async def cached() -> float:  # the worker pulled base earlier: it starts it with the registry down
        engine = SwarmEngine(bed.manager)
        try:
            service, seconds = await start_timed(engine, "r-cached", registry_image(IMAGE, bed.registry))
            await engine.remove(service)
            return seconds
        finally:
            await engine.close()

    print(f"a cached image with the registry down: running in {run(cached()):.1f} s")


def test_teardown_leaves_nothing(bed: Testbed) -> None:
    """Last in this file: the registry's process and storage go with the bed."""
    storage = bed.dir / "registry" / "data"
    assert storage.is_dir()
    bed.down()
    assert bed.leftovers() == [] and not storage.exists()
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert not [name for name in listed if name.startswith("127.0.0.1:") and name.endswith("/titan/base")]
