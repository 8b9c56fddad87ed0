"""Dask clusters on a Docker Swarm: the scheduler and workers as services across nodes.

On one host a cluster's containers join their server's network namespace (gateway.containers); a
Swarm service cannot, so on Swarm (``c.DockerBackend.engine_kind = "swarm"``):

- the scheduler and workers join the network their server's service is on (the owner's overlay
  network, core.network; docs/swarm-network.md), so a cluster spans nodes and stays in its owner's
  segment; workers reach the scheduler by its service name there;
- the scheduler listens on fixed container ports (:data:`SCHEDULER_PORT`, :data:`DASHBOARD_PORT`,
  :data:`API_PORT`) that it publishes in host mode on its node, on ports of ``swarm.published_ports``;
  the gateway, on the hub host, reaches it there (:func:`reached_at` rewrites the addresses the
  scheduler reports, which on a node without a default route say 127.0.0.1);
- workers advertise their address on the overlay interface (``--interface``), where the scheduler
  and the other workers reach them;
- the TLS certificate and key are Swarm secrets of each service (core.engine: ``ContainerSpec.secrets``),
  files under /run/secrets readable by the container user only, removed with the service (and by the
  reaper, for a service removed behind the gateway's back); never a file on the gateway's host;
- reservations equal limits (core.engine.swarm_spec), so the per-user limits (gateway.limits) are
  what Swarm places, unchanged;
- the scheduler goes to its server's node when that node has room, and workers spread over the nodes
  with room, that node first among equals: a container joins its owner's overlay in about 0.5 s on
  a node where that overlay already has a container, 1.0-1.5 s on one where it has none (measured on
  the test bed; docker's overlay makes its namespace on a node for the first container there).

Nothing here decides admission or limits; the backend (gateway.backend) calls these builders.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from core.engine.base import EngineError
from core.engine.spec import ContainerSpec
from core.engine.swarm import SwarmEngine
from core.engine.swarm_nodes import free_port, spread_node
from core.labels import LABEL_CLUSTER, LABEL_ROLE, SCHEDULER, WORKER
from gateway.containers import container_name
from gateway.tls import TLS_CERT_NAME, TLS_KEY_NAME

SCHEDULER_PORT = 8786  # the scheduler's TLS port in its container
DASHBOARD_PORT = 8787  # its dashboard
API_PORT = 8788  # dask-gateway's scheduler API (the gateway sends scale and adapt there)
PORTS = (SCHEDULER_PORT, DASHBOARD_PORT, API_PORT)
SECRETS_DIR = "/run/secrets"  # where a service's secrets are (ContainerSpec.secrets)
TLS_CERT = f"{SECRETS_DIR}/{TLS_CERT_NAME}"
TLS_KEY = f"{SECRETS_DIR}/{TLS_KEY_NAME}"
# A server's GPUs are Titan's picks on its node (spawner.swarm); its cluster's workers get none yet.
NO_GPU_WORKERS = ("Dask workers with GPUs are not available on this Swarm deployment yet (servers get GPUs, "
                  "their clusters' workers do not): ask for worker_gpus=0, or use the GPUs of your server.")

_FIXED = {"--port": str(SCHEDULER_PORT), "--dashboard-address": f"0.0.0.0:{DASHBOARD_PORT}",
          "--dg-api-address": f"0.0.0.0:{API_PORT}"}


def scheduler_command(command: Sequence[str]) -> list[str]:
    """dask-gateway's scheduler command with the fixed container ports (it asks for any free one,
    which could not be published before the container starts). It keeps ``--host 0.0.0.0``: the
    published ports arrive on the container's docker_gwbridge leg, workers on its overlay leg."""
    out = list(command)
    for flag, value in _FIXED.items():
        if flag not in out[:-1]:
            raise ValueError(f"the scheduler command has no {flag}: {' '.join(command)}")
        out[out.index(flag) + 1] = value
    return out


def scheduler_overlay_address(deployment: str, owner: str, cluster: str) -> str:
    """Where workers reach the scheduler: its service name on the owner's overlay network (endpoint
    mode dnsrr: the name resolves to its task's address)."""
    return f"tls://{container_name(deployment, owner, cluster, SCHEDULER)}:{SCHEDULER_PORT}"


def worker_command(command: Sequence[str], interface: str) -> list[str]:
    """A worker listening and advertising on its overlay interface (without it, a worker on a node
    with no default route advertises 127.0.0.1, which no other container reaches)."""
    return [*command, "--interface", interface] if interface else list(command)


def as_service(spec: ContainerSpec, network: str, cert: bytes, key: bytes,
               publish: Mapping[int, int] | None = None) -> ContainerSpec:
    """A scheduler or worker container of gateway.containers as a Swarm service: on ``network`` (its
    server's), with the TLS material as its secrets instead of the host directory, publishing
    ``publish`` (container port -> node port)."""
    if not network:
        raise ValueError(f"{spec.name}: no network to join (the server's service is on none)")
    if spec.gpus:
        raise ValueError(f"{spec.name}: {NO_GPU_WORKERS}")
    return replace(spec, network=network, mounts=(), secrets={TLS_CERT_NAME: cert, TLS_KEY_NAME: key},
                   publish=dict(publish or {}))


def reached_at(message: Mapping[str, Any], node: str, ports: Mapping[int, int]) -> dict[str, Any]:
    """The scheduler's heartbeat with the addresses the gateway reaches it at: ``node`` (its node's
    address) and the node ports its container ports are published on."""
    out = dict(message)
    for key, port in (("scheduler_address", SCHEDULER_PORT), ("dashboard_address", DASHBOARD_PORT),
                      ("api_address", API_PORT)):
        if message.get(key) and port in ports:
            scheme = urlsplit(str(message[key])).scheme or "tls"
            out[key] = f"{scheme}://{node}:{ports[port]}"
    return out


class SwarmClusters:
    """What the backend does differently on Swarm, over its ``engine``."""

    def __init__(self, engine: SwarmEngine, port_range: tuple[int, int], interface: str,
                 log: logging.Logger) -> None:
        self.engine = engine
        self.low, self.high = port_range
        self.interface = interface
        self.log = log
        self._picked: set[int] = set()  # ports given to schedulers being made (not yet seen by Swarm)
        self._workers: dict[str, dict[str, str]] = {}  # cluster -> {worker service id: node id it was put on}
        self._server_nodes: dict[str, str] = {}  # cluster -> the node of its server ("" unknown)
        self._placing = asyncio.Lock()  # one container placed at a time: two never count the same room

    async def ports(self) -> dict[int, int]:
        """A node port of the range for each of the scheduler's ports, none published by any service."""
        used = await self.engine.published_ports() | self._picked
        chosen: dict[int, int] = {}
        for port in PORTS:
            chosen[port] = free_port(used, self.low, self.high, random.randint(self.low, self.high))
            used.add(chosen[port])
        self._picked.update(chosen.values())
        return chosen

    async def create(self, spec: ContainerSpec, cluster: Any) -> str:
        """Create ``cluster``'s scheduler or worker ``spec`` (gateway.containers) as a service; its id.
        Each worker goes to the node with room holding fewest of its cluster's workers (Swarm places
        each service on its own and would not spread one cluster's workers: each is a service of its
        own); the scheduler, and a worker among equals, to the node of the cluster's server."""
        async with self._placing:
            if spec.labels.get(LABEL_ROLE) != WORKER:
                return (await self._place(spec, cluster, {}))[0]
            name = str(cluster.name)
            alive = {c.id for c in await self.engine.list_containers({LABEL_CLUSTER: name, LABEL_ROLE: WORKER})}
            placed = {sid: node for sid, node in self._workers.get(name, {}).items() if sid in alive}
            service_id, placed[service_id] = await self._place(spec, cluster, Counter(placed.values()))
            self._workers[name] = placed
            return service_id

    async def _place(self, spec: ContainerSpec, cluster: Any, held: Mapping[str, int]) -> tuple[str, str]:
        """``spec`` as a service on the node ``spread_node`` picks (``held``: the cluster's workers on
        each node); (its service id, that node's id, "" when Swarm decides)."""
        rooms, near = await asyncio.gather(self.engine.rooms(), self._server_node(cluster))
        node = spread_node(rooms, held, spec.cores, spec.memory, spec.pool, prefer=near)
        return await self._create(replace(spec, node=node) if node else spec, cluster), node

    async def _server_node(self, cluster: Any) -> str:
        """The node the cluster's server runs on ("" when Swarm cannot say: the server is gone)."""
        name = str(cluster.name)
        if name not in self._server_nodes:
            server = str(cluster.config.get("origin_container") or "")
            try:
                task = await self.engine.task(server) if server else None
            except EngineError:
                task = None
            self._server_nodes[name] = task.node_id if task else ""
        return self._server_nodes[name]

    async def _create(self, spec: ContainerSpec, cluster: Any) -> str:
        ports = await self.ports() if spec.labels.get(LABEL_ROLE) == SCHEDULER else {}
        try:
            service = as_service(spec, str(cluster.config.get("origin_network") or ""), cluster.tls_cert,
                                 cluster.tls_key, ports)
            return await self.engine.create(service)
        finally:  # the service exists (Swarm knows its ports) or failed
            self._picked.difference_update(ports.values())

    async def reached_at(self, service_id: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """The heartbeat's addresses as the gateway reaches the scheduler's service."""
        task = await self.engine.task(service_id)
        if task is None or task.state != "running":
            raise RuntimeError(f"the scheduler's service {service_id[:12]} has no running task")
        node = await self.engine.node_of(service_id)
        return reached_at(message, node.address, task.ports)

    async def reap_secrets(self, deployment_labels: Mapping[str, str | None], gone: Callable[[str], bool]) -> None:
        """Remove the secrets of clusters that are gone (their services were removed behind the
        gateway's back, or the gateway stopped between removing a service and its secrets)."""
        for name in [name for name in {*self._workers, *self._server_nodes} if gone(name)]:
            self._workers.pop(name, None)
            self._server_nodes.pop(name, None)
        secrets = await self.engine.list_secrets({**deployment_labels, LABEL_CLUSTER: None})
        for secret in secrets:
            if gone(secret.labels.get(LABEL_CLUSTER, "")):
                self.log.info("Removing secret %s of cluster %s, which is gone", secret.name,
                              secret.labels.get(LABEL_CLUSTER, "")[:12])
                try:
                    await self.engine.remove_secret(secret.id)
                except Exception:  # still used by a service being removed: the next pass
                    self.log.debug("Secret %s still in use", secret.name, exc_info=True)
