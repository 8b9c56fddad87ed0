"""Per-user Docker networks: who can reach whom.

Every deployment has one network of its own, ``<deployment>-titan``, that no container joins:
it exists to give this host an address on a private subnet (the network's gateway), the
*Titan address*, where the hub API, the Dask Gateway and the Titan service listen for
containers. Every user gets a network of their own, ``<deployment>-user-<name>``, created at
their first start and removed when their last container is gone; all of their servers,
schedulers and workers join it, and nobody else's do. Docker's bridge isolation drops traffic
between two such networks, so another user's containers cannot open a connection to any of
them, on any port; they reach the host only at the addresses something listens on.

Subnets come from an admin-chosen pool (``network.pool`` in titan.yaml), the first free one of
``network.subnet_prefix`` bits that overlaps no Docker network and no route of this host: the
engine's list of networks and the kernel's routing table are read, no address is ever probed.
Two deployments on one engine therefore never share a network or a subnet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.engine.base import (
    ContainerEngine,
    EngineError,
    NetworkExists,
    NetworkGone,
    NetworkInfo,
    NetworkInUse,
    SubnetTaken,
)
from core.engine.docker import DockerEngine
from core.labels import LABEL_DEPLOYMENT, LABEL_NETWORK, LABEL_OWNER, docker_safe

log = logging.getLogger("titan.network")

ROLE_TITAN = "titan"
ROLE_USER = "user"
ROUTES_FILE = Path("/proc/net/route")


class NetworkError(RuntimeError):
    """A network could not be created (the pool is full, or the engine refused)."""


@dataclass(frozen=True)
class NetworkPlan:
    """Where this deployment's networks come from: ``pool`` cut into subnets of ``prefix`` bits."""

    deployment: str
    pool: ipaddress.IPv4Network
    prefix: int

    @classmethod
    def of(cls, deployment: str, pool: str, prefix: int) -> NetworkPlan:
        network = ipaddress.ip_network(pool, strict=True)
        if not isinstance(network, ipaddress.IPv4Network):
            raise ValueError(f"network.pool {pool} is not an IPv4 network")
        if not network.prefixlen <= prefix <= 29:
            raise ValueError(f"network.subnet_prefix {prefix} must be between the pool's ({network.prefixlen}) and 29")
        return cls(deployment, network, prefix)

    def titan_network(self) -> str:
        return f"{self.deployment}-titan"

    def user_network(self, user: str) -> str:
        return f"{self.deployment}-user-{docker_safe(user)}"


def host_routes(path: Path = ROUTES_FILE) -> list[ipaddress.IPv4Network]:
    """The destinations of this host's IPv4 routes, default route excluded (``/proc/net/route``)."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination, mask = int(fields[1], 16), int(fields[7], 16)
        if mask == 0:
            continue  # the default route covers everything, it uses no subnet
        address = ipaddress.IPv4Address(destination.to_bytes(4, "little"))
        netmask = ipaddress.IPv4Address(mask.to_bytes(4, "little"))
        found.append(ipaddress.IPv4Network(f"{address}/{netmask}", strict=False))
    return found


def engine_subnets(networks: Iterable[NetworkInfo]) -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet the engine's networks use."""
    found = []
    for network in networks:
        for subnet in network.subnets:
            parsed = ipaddress.ip_network(subnet, strict=False)
            if isinstance(parsed, ipaddress.IPv4Network):
                found.append(parsed)
    return found


def free_subnet(plan: NetworkPlan, used: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first subnet of the pool that overlaps nothing in ``used``."""
    taken = list(used)
    for candidate in plan.pool.subnets(new_prefix=plan.prefix):
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise NetworkError(f"the address pool {plan.pool} has no free /{plan.prefix} left for a new network: "
                       "make network.pool larger (titan.yaml), or network.subnet_prefix longer")


def gateway_address(info: NetworkInfo) -> str:
    """The host's address on a network (its IPAM gateway)."""
    if info.gateway:
        return info.gateway
    raise NetworkError(f"network {info.name} has no gateway address")


async def ensure_network(engine: ContainerEngine, plan: NetworkPlan, name: str, labels: dict[str, str],
                         attempts: int = 8) -> NetworkInfo:
    """The network ``name``, created on a free subnet of the pool when absent.

    Safe against a concurrent creator: a name taken meanwhile is inspected, a subnet taken
    meanwhile is skipped."""
    tried: list[ipaddress.IPv4Network] = []
    for _ in range(attempts):
        try:
            return await engine.inspect_network(name)
        except NetworkGone:
            pass
        subnet = free_subnet(plan, [*engine_subnets(await engine.list_networks()), *host_routes(), *tried])
        try:
            await engine.create_network(name, str(subnet), str(subnet.network_address + 1), labels)
            log.info("Created network %s on %s", name, subnet)
        except NetworkExists:  # created meanwhile by someone else: inspect it
            continue
        except SubnetTaken:  # a subnet taken meanwhile: the next one
            tried.append(subnet)
            continue
        except EngineError as error:
            raise NetworkError(str(error)) from None
    try:
        return await engine.inspect_network(name)
    except NetworkGone:
        raise NetworkError(f"could not create network {name} after {attempts} attempts") from None


async def ensure_titan_network(engine: ContainerEngine, plan: NetworkPlan) -> str:
    """The deployment's own network; returns the Titan address (the host's address on it)."""
    info = await ensure_network(engine, plan, plan.titan_network(),
                                {LABEL_DEPLOYMENT: plan.deployment, LABEL_NETWORK: ROLE_TITAN})
    return gateway_address(info)


async def ensure_user_network(engine: ContainerEngine, plan: NetworkPlan, user: str) -> str:
    """``user``'s network (created when absent); returns its name."""
    name = plan.user_network(user)
    await ensure_network(engine, plan, name, {LABEL_DEPLOYMENT: plan.deployment, LABEL_NETWORK: ROLE_USER,
                                              LABEL_OWNER: user})
    return name


async def remove_if_unused(engine: ContainerEngine, name: str) -> bool:
    """Remove the network ``name`` when no container is attached; True when it was removed.

    The engine refuses to remove a network with endpoints, so a container attached meanwhile
    keeps it (and a start that finds it gone creates it again)."""
    try:
        info = await engine.inspect_network(name)
    except NetworkGone:
        return False
    if info.containers:
        return False
    try:
        await engine.remove_network(name)
    except (NetworkGone, NetworkInUse):
        return False
    log.info("Removed network %s (no container left on it)", name)
    return True


def titan_address(plan: NetworkPlan) -> str:
    """The Titan address of the deployment (its own network made if absent), asking the engine
    that ``DOCKER_HOST`` names. Blocking: for configuration files, which may be read inside a
    running event loop (the hub's), so it runs on a thread of its own."""
    async def ask() -> str:
        engine = DockerEngine(threads=1)
        try:
            return await ensure_titan_network(engine, plan)
        finally:
            await engine.close()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, ask()).result()
