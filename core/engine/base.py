"""The interface of a container engine, as Titan uses it: :class:`ContainerEngine`.

Everything that runs or reads Titan's containers and networks goes through it: the spawner's own
calls, the Dask gateway backend, the per-user networks (core.network). It speaks in Titan's terms
(:class:`~core.engine.spec.ContainerSpec`, the small records below, the named errors), never in an
engine library's, so that tests pass an in-memory fake and a Swarm engine can be a second
implementation. Callers never catch an engine library's exceptions: only :class:`EngineError`s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.engine.spec import ContainerSpec

#: Label filters: ``{"titan.deployment": "prod"}`` (that value) or ``{"titan.dask.cluster": None}``
#: (the label present, any value). Every filter must match.
LabelFilter = Mapping[str, str | None]


class EngineError(RuntimeError):
    """The engine refused or failed an operation; the message says what and why."""


class ContainerGone(EngineError):
    """No such container (never created, or removed meanwhile)."""


class ImageMissing(EngineError):
    """No such image on this engine."""


class NetworkGone(EngineError):
    """No such network: never created, or removed meanwhile (also from a container's create)."""


class NetworkExists(EngineError):
    """A network of that name exists already (created meanwhile by someone else)."""


class SubnetTaken(EngineError):
    """The subnet asked for overlaps a network the engine has."""


class NetworkInUse(EngineError):
    """A network still has containers attached (or is being removed): it stays."""


class MountMissing(EngineError):
    """A directory the container mounts is missing on the node it was placed on: the node has not
    mounted the shared storage (homes) there. The message names the node, for the user and the admin."""


class Unplaceable(EngineError):
    """No node of a cluster can run the container now (too little CPU, memory or generic resources
    left, or no node in its pool); the message gives the cluster's own reason, for the user."""


@dataclass(frozen=True)
class ContainerInfo:
    """One container as a listing or an inspection shows it."""

    id: str
    name: str
    image: str  # as the container was created with (a tag, or an image id)
    state: str  # "created", "running", "restarting", "exited", "paused", "dead", "removing"
    labels: Mapping[str, str] = field(default_factory=dict)
    network_mode: str = ""  # known from an inspection; "" from a listing (Swarm: its first network's id, always)


@dataclass(frozen=True)
class ImageInfo:
    id: str
    size: int  # bytes


@dataclass(frozen=True)
class EngineInfo:
    cpus: float
    memory: int  # bytes


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    name: str
    subnets: tuple[str, ...] = ()  # IPv4 and IPv6 subnets, as CIDR strings
    gateway: str = ""  # the host's address on the network ("" if none)
    containers: tuple[str, ...] = ()  # ids of the containers attached
    labels: Mapping[str, str] = field(default_factory=dict)


class ContainerEngine(Protocol):
    """What Titan asks of an engine. Every method may raise :class:`EngineError`."""

    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; its id. ``NetworkGone`` when its network is missing,
        ``ImageMissing`` when its image is."""
        ...

    async def start(self, container_id: str) -> None:
        """Start a created container; ``ContainerGone`` when it is not there."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo:
        """One container by id or name; ``ContainerGone`` when it is not there."""
        ...

    async def list_containers(self, labels: LabelFilter) -> list[ContainerInfo]:
        """Every container (stopped ones included) matching all of ``labels``."""
        ...

    async def stop(self, container_id: str, grace: float = 10) -> None:
        """Stop a container (``grace`` seconds before it is killed); ``ContainerGone`` when it is not there."""
        ...

    async def remove(self, container_id: str) -> bool:
        """Remove a container, running or not; False when it was gone (or already being removed)."""
        ...

    async def inspect_image(self, image: str) -> ImageInfo:
        """``ImageMissing`` when the image is not on this engine."""
        ...

    async def info(self) -> EngineInfo:
        """The engine host's CPUs and memory."""
        ...

    async def create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> None:
        """A bridge network on ``subnet`` with the host at ``gateway``; ``NetworkExists`` when the
        name is taken, ``SubnetTaken`` when the subnet overlaps another network."""
        ...

    async def inspect_network(self, name: str) -> NetworkInfo:
        """``NetworkGone`` when there is no such network."""
        ...

    async def list_networks(self) -> Sequence[NetworkInfo]:
        ...

    async def remove_network(self, name: str) -> None:
        """``NetworkGone`` when it is not there, ``NetworkInUse`` when containers are attached."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the engine may not be used afterwards."""
        ...
