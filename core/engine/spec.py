"""What Titan asks of a container, in the engine's neutral terms: :class:`ContainerSpec`.

Builders (gateway.containers, the gateway backend) fill one in; an engine (core.engine.docker)
turns it into its own API's arguments. Nothing here talks to an engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hardening:
    """Restrictions every container of Titan gets."""

    cap_drop: tuple[str, ...] = ("ALL",)  # capabilities dropped ("ALL": none is left)
    no_new_privileges: bool = True  # no gaining privileges through setuid binaries


#: Hardening every container of Titan gets (servers and Dask containers alike): no capability at all
#: (the images run as jovyan, uid 1000, and a JupyterLab server, a kernel or a Dask worker needs
#: none) and no gaining privileges through setuid binaries. The process-count limit is per spec.
HARDENING = Hardening()


@dataclass(frozen=True)
class Mount:
    """A host directory (``kind="bind"``) or a named volume (``kind="volume"``) in the container."""

    source: str
    target: str
    read_only: bool = False
    kind: str = "bind"


@dataclass(frozen=True)
class ContainerSpec:
    """One container: what runs, as whom, where, and within which limits."""

    name: str
    image: str
    command: tuple[str, ...] = ()  # () keeps the image's command
    environment: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    cores: float = 1.0  # a CPU quota; may be fractional
    memory: int = 0  # bytes, swap included (no swap on top); 0: no limit
    processes: int = 4096  # process and thread limit of the container
    user: str = ""  # "uid:gid"; "": the image's user
    network: str = ""  # the network to join, or "container:<id>" for another container's namespace
    mounts: tuple[Mount, ...] = ()
    gpus: tuple[str, ...] = ()  # uuids of the GPUs the container gets, exactly those
    # Swarm only (core.engine.swarm): the node pool (value of the node label titan.pool) the container
    # must run in ("": any node), and the generic resources it needs ({"gpu": 1}: one unit of the
    # nodes' "gpu" resources, which Swarm picks and names in the container's DOCKER_RESOURCE_GPU).
    pool: str = ""
    resources: Mapping[str, int] = field(default_factory=dict)
    # Swarm only: container ports published on the node the container lands on (host mode), each to
    # the port given, or to one Swarm picks (0); how the hub reaches it there (docs/swarm-network.md).
    publish: Mapping[int, int] = field(default_factory=dict)
    # Swarm only: the node (its id) the container must run on ("": wherever Swarm places it); a
    # container given ``gpus`` on Swarm names its node (core.engine.swarm_gpus).
    node: str = ""
    # Swarm only: files the container reads under /run/secrets/<name> (owned by ``user``, mode 0400),
    # kept as Swarm secrets of this service (labelled as the service), removed with it. Never in the
    # environment, the labels or an inspection of the service.
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    init: bool = True  # an init process reaps zombies and forwards signals
    hardening: Hardening = HARDENING

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "mounts", tuple(self.mounts))
        object.__setattr__(self, "gpus", tuple(self.gpus))
