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

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from core.labels import LABEL_DEPLOYMENT, LABEL_NETWORK, LABEL_OWNER, docker_safe

log = logging.getLogger("titan.network")

ROLE_TITAN = "titan"
ROLE_USER = "user"
ROUTES_FILE = Path("/proc/net/route")


class NetworkError(RuntimeError):
    """A network could not be created (the pool is full, or the engine refused)."""


class NetworkApi(Protocol):
    """The part of docker-py's ``APIClient`` used here (a fake implements it in tests)."""

    def networks(self, names: Any = None, ids: Any = None, filters: Any = None) -> list[dict[str, Any]]: ...
    def inspect_network(self, net_id: str, verbose: Any = None, scope: Any = None) -> dict[str, Any]: ...
    def create_network(self, name: str, **kwargs: Any) -> dict[str, Any]: ...
    def remove_network(self, net_id: str) -> None: ...


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


def engine_subnets(networks: Iterable[Mapping[str, Any]]) -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet the engine's networks use."""
    found = []
    for network in networks:
        for config in ((network.get("IPAM") or {}).get("Config") or []):
            subnet = config.get("Subnet")
            if not subnet:
                continue
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


def gateway_address(info: Mapping[str, Any]) -> str:
    """The host's address on a network (its IPAM gateway)."""
    for config in ((info.get("IPAM") or {}).get("Config") or []):
        if config.get("Gateway"):
            return str(config["Gateway"])
    raise NetworkError(f"network {info.get('Name')} has no gateway address")


def ensure_network(api: NetworkApi, plan: NetworkPlan, name: str, labels: Mapping[str, str],
                   attempts: int = 8) -> dict[str, Any]:
    """The network ``name`` (inspect result), created on a free subnet of the pool when absent.

    Safe against a concurrent creator: a name taken meanwhile is inspected, a subnet taken
    meanwhile is skipped."""
    tried: list[ipaddress.IPv4Network] = []
    for _ in range(attempts):
        try:
            return api.inspect_network(name)
        except docker.errors.NotFound:
            pass
        subnet = free_subnet(plan, [*engine_subnets(api.networks()), *host_routes(), *tried])
        gateway = str(subnet.network_address + 1)
        try:
            api.create_network(
                name, driver="bridge", check_duplicate=True, labels=dict(labels),
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)]),
            )
            log.info("Created network %s on %s", name, subnet)
        except docker.errors.APIError as error:
            if error.status_code == 409:  # created meanwhile by someone else: inspect it
                continue
            if "overlap" in str(error.explanation or "").lower():
                tried.append(subnet)  # a subnet taken meanwhile: the next one
                continue
            raise NetworkError(f"Docker refused to create network {name}: {error.explanation}") from None
    try:
        return api.inspect_network(name)
    except docker.errors.NotFound:
        raise NetworkError(f"could not create network {name} after {attempts} attempts") from None


def ensure_titan_network(api: NetworkApi, plan: NetworkPlan) -> str:
    """The deployment's own network; returns the Titan address (the host's address on it)."""
    info = ensure_network(api, plan, plan.titan_network(),
                          {LABEL_DEPLOYMENT: plan.deployment, LABEL_NETWORK: ROLE_TITAN})
    return gateway_address(info)


def ensure_user_network(api: NetworkApi, plan: NetworkPlan, user: str) -> str:
    """``user``'s network (created when absent); returns its name."""
    name = plan.user_network(user)
    ensure_network(api, plan, name, {LABEL_DEPLOYMENT: plan.deployment, LABEL_NETWORK: ROLE_USER,
                                     LABEL_OWNER: user})
    return name


def remove_if_unused(api: NetworkApi, name: str) -> bool:
    """Remove the network ``name`` when no container is attached; True when it was removed.

    The engine refuses to remove a network with endpoints, so a container attached meanwhile
    keeps it (and a start that finds it gone creates it again)."""
    try:
        info = api.inspect_network(name)
    except docker.errors.NotFound:
        return False
    if info.get("Containers"):
        return False
    try:
        api.remove_network(name)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as error:
        if error.status_code in (403, 409) or "active endpoints" in str(error.explanation or ""):
            return False
        raise
    log.info("Removed network %s (no container left on it)", name)
    return True


def is_network_missing(error: docker.errors.APIError) -> bool:
    """A create or start that failed because its network was removed meanwhile."""
    text = str(error.explanation or error).lower()
    return error.status_code == 404 and "network" in text


def titan_address(plan: NetworkPlan) -> str:
    """The Titan address of the deployment (its own network made if absent), asking the engine
    that ``DOCKER_HOST`` names."""
    client = docker.from_env()
    try:
        return ensure_titan_network(client.api, plan)
    finally:
        client.close()
