"""Titan's Dask gateway on a test bed: the real dask-gateway-server with Titan's backend
(``engine_kind = "swarm"``) on the hub host, its proxies on the hub host's address on the nodes'
network; and services standing in for users' servers (labelled as Titan labels servers, on each
user's overlay network) until the Swarm spawner starts real ones.

Used by bench/dask_swarm.py (tests/integration/test_swarm_hub.py runs the real gateway from a real hub).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from core.engine.spec import ContainerSpec
from core.engine.swarm import SwarmEngine
from core.labels import LABEL_DEPLOYMENT, LABEL_OWNER, LABEL_PROFILE, LABEL_SERVER
from tests.helpers import free_port, wait_for
from tests.swarm.testbed import Testbed

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024**2
T = TypeVar("T")

CONFIG = """
c.DaskGateway.address = "127.0.0.1:{api}"
c.DaskGateway.log_level = "INFO"
c.Proxy.address = "{host}:{proxy}"
c.Proxy.tcp_address = "{host}:{tcp}"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = "{password}"
c.DaskGateway.backend_class = "gateway.backend.DockerBackend"
c.DockerBackend.deployment = "{deployment}"
c.DockerBackend.profiles_dir = "{profiles}"
c.DockerBackend.engine_kind = "swarm"
c.DockerBackend.swarm_manager = "{manager}"
c.DockerBackend.swarm_published_ports = "30000-30999"
c.DockerBackend.server_check_period = 2.0
# As Titan's gateway (gateway/configure.py):
c.DockerBackend.cluster_status_period = 5.0
c.DockerBackend.worker_status_period = 5.0
c.DockerBackend.cluster_start_timeout = 120.0
c.DockerBackend.worker_start_timeout = 120.0
c.ClusterConfig.idle_timeout = 600.0
"""


def on_swarm(bed: Testbed, work: Callable[[SwarmEngine], Awaitable[T]]) -> T:
    """``work(engine)`` on a SwarmEngine of the bed's manager, from synchronous code."""
    async def main() -> T:
        engine = SwarmEngine(bed.manager)
        try:
            return await work(engine)
        finally:
            await engine.close()
    return asyncio.run(main())


def load_image(bed: Testbed, image: str, nodes: tuple[int, ...]) -> float:
    """``docker save`` ``image`` once, ``docker load`` it into ``nodes`` in parallel; the seconds spent."""
    start = time.monotonic()
    tar = bed.dir / "image.tar"
    subprocess.run(["docker", "save", "-o", str(tar), image], check=True, timeout=300)
    try:
        def load(i: int) -> None:
            with open(tar, "rb") as stream:
                bed.docker(i, "load", "-q", timeout=300, stdin=stream)
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(load, nodes))
    finally:
        tar.unlink(missing_ok=True)
    return time.monotonic() - start


def stand_in_servers(bed: Testbed, deployment: str, users: tuple[str, ...], image: str) -> dict[str, tuple[int, str]]:
    """Each user's overlay network (core.network's name) with a service standing in for their default
    server on it; (node, container id) of each."""
    octets = bed.address(1).rsplit(".", 2)[0]

    async def start(engine: SwarmEngine) -> dict[str, tuple[int, str]]:
        placed = {}
        for n, user in enumerate(users):
            network = f"{deployment}-user-{user}"  # core.network.NetworkPlan.user_network
            await engine.create_network(network, f"{octets}.{200 + n}.0/24", f"{octets}.{200 + n}.1",
                                        {LABEL_DEPLOYMENT: deployment, LABEL_OWNER: user})
            spec = ContainerSpec(name=f"{deployment}-{user}", image=image, command=("sleep", "infinity"),
                                 labels={LABEL_DEPLOYMENT: deployment, LABEL_OWNER: user, LABEL_SERVER: "",
                                         LABEL_PROFILE: "small"},
                                 cores=0.1, memory=768 * MIB, user="1000:1000", network=network)
            service = await engine.create(spec)
            await engine.start(service)
            task = await engine.wait_running(service, within=90)
            node = await engine.node_of(service)
            placed[user] = (next(i for i in range(1, bed.count + 1) if bed.address(i) == node.address),
                            task.container_id)
        return placed

    return on_swarm(bed, start)


@contextmanager
def gateway_on(bed: Testbed, root: Path, deployment: str, password: str, dask: Mapping[str, Any]
               ) -> Iterator[dict[str, Any]]:
    """The gateway on ``bed`` (profile data with the ``dask`` section ``dask``); yields its addresses
    ("http", "proxy") and its log's path. On exit: stopped, and every service, network and secret of
    ``deployment`` removed."""
    (root / "profiles").mkdir(exist_ok=True)
    (root / "profiles" / "p.yaml").write_text(yaml.safe_dump({
        "profiles": [{"display_name": "Small", "image": "minimal", "resources": {"cpu": 1, "memory": "1G"}}],
        "dask": dict(dask)}))
    ports = {"api": free_port(), "proxy": free_port(), "tcp": free_port()}
    (root / "config.py").write_text(CONFIG.format(host=bed.host_address, password=password, deployment=deployment,
                                                  profiles=root / "profiles", manager=bed.manager, **ports))
    log_path = root / "gateway.log"
    log = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "dask_gateway_server", "-f", str(root / "config.py")],
                               cwd=root, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    http = f"http://{bed.host_address}:{ports['proxy']}"
    try:
        wait_for(lambda: requests.get(f"{http}/api/health", timeout=2).ok, 60, "the gateway answering")
        yield {"http": http, "proxy": f"gateway://{bed.host_address}:{ports['tcp']}", "log": log_path}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

        async def clean(engine: SwarmEngine) -> None:
            for container in await engine.list_containers({LABEL_DEPLOYMENT: deployment}):
                await engine.remove(container.id)
            for secret in await engine.list_secrets({LABEL_DEPLOYMENT: deployment}):
                await engine.remove_secret(secret.id)
        on_swarm(bed, clean)
