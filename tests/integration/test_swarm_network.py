"""Users' isolation across the nodes of a real swarm (docs/swarm-network.md says why this design).

Three engines (tests/swarm/testbed.py) that keep their own firewall, as real hosts do: iptables,
forwarding and masquerade inside each node's namespace (``firewall=True``), never in the root
namespace. Node 2 is pool ``a``, node 3 pool ``b``; the root namespace plays the hub host.

Alice and bob each get one attachable overlay network (endpoint mode dnsrr) and a container on each
worker node. Every container is probed from inside every other one, at every address it has (its
overlay address and its docker_gwbridge address) and by its service name: a user's own containers
connect across nodes; nobody else's connect, on the same node or another. The hub host reaches a
server through a port the server publishes on its node (mode host); other users' containers reach
that port too until the node's firewall admits only the hub host to the servers' ports: with the
two rules Ansible will write, they do not, and the hub host still does. Every container reaches
the hub host (the way a server calls the hub API).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from core.engine.spec import ContainerSpec
from core.engine.swarm import SwarmEngine
from core.images import image_tag
from core.labels import NODE_POOL
from tests.swarm.host import can_run, sh
from tests.swarm.testbed import Testbed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = image_tag("base")
PORT = 8888
PUBLISHED = 30001  # the servers' published range on a node is 30000-30999 here
SERVE = ("python3", "-c", "import socket\ns = socket.create_server(('0.0.0.0', 8888))\n"
         "while True:\n    c, _ = s.accept(); c.sendall(b'hi'); c.close()")
ADDRESSES = ("import fcntl, os, socket, struct\nsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for name in os.listdir('/sys/class/net'):\n    try:\n"
             "        raw = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack('256s', name.encode()))\n"
             "        print(socket.inet_ntoa(raw[20:24]))\n"
             "    except OSError:\n        pass")
PROBE = ("import json, socket, sys\nfrom concurrent.futures import ThreadPoolExecutor\n"
         "def reach(target):\n    host, port = target.rsplit(':', 1)\n"
         "    try:\n        with socket.create_connection((host, int(port)), timeout=1.5) as c:\n"
         "            return c.recv(2) == b'hi'\n    except OSError:\n        return False\n"
         "with ThreadPoolExecutor(16) as pool:\n"
         "    print(json.dumps(dict(zip(sys.argv[1:], pool.map(reach, sys.argv[1:])))))")
USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    why = can_run()
    if why:
        pytest.skip(why)
    testbed = Testbed(nodes=3, firewall=True, labels={2: {NODE_POOL: "a"}, 3: {NODE_POOL: "b"}})
    testbed.up()
    try:
        testbed.load_images([IMAGE])
        yield testbed
    finally:
        testbed.down()
        assert testbed.leftovers() == []


class Container:
    def __init__(self, bed: Testbed, user: str, node: int, container_id: str) -> None:
        self.bed, self.user, self.node, self.id = bed, user, node, container_id
        self.name = f"{user}-{'ab'[node - 2]}"
        lines = bed.docker(node, "exec", container_id, "python3", "-c", ADDRESSES).split()
        self.addresses = sorted(a for a in lines if not a.startswith("127."))

    def probe(self, targets: list[str]) -> dict[str, bool]:
        return dict(json.loads(self.bed.docker(self.node, "exec", self.id, "python3", "-c", PROBE, *targets,
                                               timeout=120)))


@pytest.fixture(scope="module")
def containers(bed: Testbed) -> dict[str, Container]:
    octets = bed.address(1).rsplit(".", 2)[0]

    async def start_all() -> dict[str, tuple[int, str]]:
        engine = SwarmEngine(bed.manager)
        placed: dict[str, tuple[int, str]] = {}
        try:
            for n, user in enumerate(USERS):
                subnet = f"{octets}.{200 + n}.0/24"
                await engine.create_network(f"t-user-{user}", subnet, subnet.replace(".0/24", ".1"), {})
                for pool, node in (("a", 2), ("b", 3)):
                    spec = ContainerSpec(name=f"{user}-{pool}", image=IMAGE, command=SERVE, cores=0.1,
                                         memory=64 * 1024**2, network=f"t-user-{user}", pool=pool)
                    service = await engine.create(spec)
                    await engine.start(service)
                    task = await engine.wait_running(service, within=60)
                    placed[spec.name] = (node, task.container_id)
        finally:
            await engine.close()
        return placed

    placed = asyncio.run(start_all())
    return {name: Container(bed, name.split("-")[0], node, cid) for name, (node, cid) in placed.items()}


def test_a_users_containers_reach_each_other_across_nodes_and_nobody_elses_do(containers: dict[str, Container]) -> None:
    for container in containers.values():
        assert len(container.addresses) == 2, container.addresses  # the overlay and docker_gwbridge
    pairs = [(source, target) for source in containers.values() for target in containers.values()
             if target is not source]

    def probe(pair: tuple[Container, Container]) -> dict[str, bool]:
        _, target = pair
        return pair[0].probe([f"{a}:{PORT}" for a in target.addresses] + [f"{target.name}:{PORT}"])

    with ThreadPoolExecutor(len(pairs)) as pool:  # a refused name takes seconds to fail: all at once
        results = list(pool.map(probe, pairs))
    for (source, target), reached in zip(pairs, results, strict=True):
        if source.user == target.user:
            overlay = next(a for a in target.addresses if a.split(".")[2] in ("200", "201"))
            assert reached[f"{overlay}:{PORT}"] and reached[f"{target.name}:{PORT}"], (source.name, reached)
        else:
            assert not any(reached.values()), f"{source.name} reached {target.name}: {reached}"


def test_the_hub_host_alone_reaches_a_server_on_its_nodes_published_port(bed: Testbed,
                                                                           containers: dict[str, Container]) -> None:
    async def start_published() -> tuple[str, tuple[str, int]]:
        engine = SwarmEngine(bed.manager)
        try:
            spec = ContainerSpec(name="alice-published", image=IMAGE, command=SERVE, cores=0.1, memory=64 * 1024**2,
                                 network="t-user-alice", pool="b", publish={PORT: PUBLISHED})
            service = await engine.create(spec)
            await engine.start(service)
            await engine.wait_running(service, within=60)
            return service, await engine.address_of(service, PORT)
        finally:
            await engine.close()

    service, (address, port) = asyncio.run(start_published())
    assert (address, port) == (bed.address(3), PUBLISHED)
    gateway = json.loads(bed.docker(3, "network", "inspect", "docker_gwbridge", "--format",
                                    "{{json .IPAM.Config}}"))[0]["Gateway"]
    targets = [f"{address}:{PUBLISHED}"]
    others = [containers["bob-a"], containers["bob-b"]]
    assert _hub_reaches(address, PUBLISHED)
    # Without a firewall, any container reaches a published port through its node: the leak to close.
    assert containers["bob-b"].probe([f"{gateway}:{PUBLISHED}"]) == {f"{gateway}:{PUBLISHED}": True}
    # What the node's firewall must hold (Ansible writes it on every node): new connections to the
    # servers' published ports only from the hub host, forwarded (DOCKER-USER) or to the node itself.
    namespace = bed.namespace(3)
    hub = bed.host_address
    sh("ip", "netns", "exec", namespace, "iptables", "-I", "DOCKER-USER", "-p", "tcp", "-m", "conntrack",
       "--ctstate", "NEW", "--ctorigdstport", "30000:30999", "!", "--ctorigsrc", hub, "-j", "DROP")
    sh("ip", "netns", "exec", namespace, "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "30000:30999",
       "!", "-s", hub, "-j", "DROP")
    assert _hub_reaches(address, PUBLISHED)
    for other in others:
        reached = other.probe([*targets, f"{gateway}:{PUBLISHED}"])
        assert not any(reached.values()), f"{other.name} reached alice's published server: {reached}"
    docker.APIClient(base_url=bed.manager, timeout=30).remove_service(service)


def test_containers_on_every_node_reach_the_hub_host(bed: Testbed, containers: dict[str, Container]) -> None:
    """A server calls the hub API: from its overlay through docker_gwbridge, masqueraded by its node."""
    with socket.create_server((bed.host_address, 0)) as listener:
        port = listener.getsockname()[1]
        listener.settimeout(10)
        stop = threading.Event()

        def answer() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except OSError:
                    continue
                with connection:
                    connection.sendall(b"hi")

        server = threading.Thread(target=answer, daemon=True)
        server.start()
        try:
            for container in containers.values():
                target = f"{bed.host_address}:{port}"
                assert container.probe([target]) == {target: True}, container.name
        finally:
            stop.set()


def _hub_reaches(address: str, port: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=2) as connection:
                return connection.recv(2) == b"hi"
        except OSError:
            time.sleep(0.2)
    return False

