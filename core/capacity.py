"""What this host (or this swarm's nodes) can give a server, and what a set of resources would need
beyond it: ``capacity.unmet(resources)``, one question the form and the options check ask alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.engine.swarm_nodes import NodeRoom, no_room_reason
from core.gpu.swarm_resources import swarm_kind
from core.profiles import Resources
from core.units import format_cpu, format_memory


@dataclass(frozen=True)
class HostCapacity:
    cpus: float
    memory: int  # bytes
    gpus_total: Mapping[str, int] = field(default_factory=dict)  # GPU type → units on the host
    gpus_free: Mapping[str, int] = field(default_factory=dict)  # GPU type → units free now

    #: Where a refused server would have run, for messages ("… cannot start on this host").
    where = "this host"

    def unmet(self, resources: Resources, gpu_names: Mapping[str, str] | None = None,
              check_free_gpus: bool = False) -> list[str]:
        """Why a server with ``resources`` cannot run here; empty when it can."""
        return unmet_needs(resources, self, gpu_names, check_free_gpus)


@dataclass(frozen=True)
class SwarmCapacity(HostCapacity):
    """A swarm's nodes (core.engine.swarm_nodes): a server can run when one node in its pool could
    hold all of it. ``unmet`` judges against the nodes as if empty: a server that fits a node, only not
    now, is left to Swarm, which shows why it waits (the spawner's progress) and when it gives up."""

    nodes: tuple[NodeRoom, ...] = ()  # each node with nothing running on it (and whether it is ready)

    where = "any node of this swarm"

    def unmet(self, resources: Resources, gpu_names: Mapping[str, str] | None = None,
              check_free_gpus: bool = False) -> list[str]:
        kind = swarm_kind(resources.gpu_type) if resources.gpu_type and resources.gpu_count else ""
        wanted = {kind: resources.gpu_count} if kind else {}
        reason = no_room_reason(self.nodes, resources.cpu, resources.memory, resources.pool, wanted, now=False)
        if reason and resources.gpu_type:
            name = (gpu_names or {}).get(resources.gpu_type, resources.gpu_type)
            reason = reason.replace(f"{resources.gpu_count} {kind}", f"{resources.gpu_count} {name} GPUs")
        return [reason] if reason else []


def swarm_capacity(empty: list[NodeRoom], gpu_types: Iterable[str], gpus_total: Mapping[str, int],
                   gpus_free: Mapping[str, int]) -> SwarmCapacity:
    """The capacity of a swarm from its nodes as if empty (``empty``) and its GPUs of each Swarm kind
    (``gpus_total``, ``gpus_free``: core.engine.swarm_gpus.gpu_counts), told by the profiles' GPU types."""
    kinds = {gpu_type: swarm_kind(gpu_type) for gpu_type in gpu_types}
    ready = [room for room in empty if room.ready]
    return SwarmCapacity(
        cpus=max((room.cpus for room in ready), default=0.0), memory=max((room.memory for room in ready), default=0),
        gpus_total={gpu_type: gpus_total.get(kind, 0) for gpu_type, kind in kinds.items()},
        gpus_free={gpu_type: gpus_free.get(kind, 0) for gpu_type, kind in kinds.items()},
        nodes=tuple(empty),
    )


def unmet_needs(resources: Resources, host: HostCapacity, gpu_names: Mapping[str, str] | None = None,
                check_free_gpus: bool = False) -> list[str]:
    """Reasons why ``host`` cannot run a server with ``resources``; empty when it can."""
    reasons: list[str] = []
    if resources.gpu_type and resources.gpu_count:
        name = (gpu_names or {}).get(resources.gpu_type, resources.gpu_type)
        total = host.gpus_total.get(resources.gpu_type, 0)
        free = host.gpus_free.get(resources.gpu_type, 0)
        if total == 0:
            reasons.append(f"this host has no {name} GPU")
        elif resources.gpu_count > total:
            reasons.append(f"needs {resources.gpu_count} {name} GPUs; this host has {total}")
        elif check_free_gpus and resources.gpu_count > free:
            reasons.append(f"{name}: {free} of {total} free, {resources.gpu_count} needed")
    if resources.cpu > host.cpus:
        reasons.append(f"needs {format_cpu(resources.cpu)}; this host has {format_cpu(host.cpus)}")
    if resources.memory > host.memory:
        reasons.append(f"needs {format_memory(resources.memory)} of memory; "
                       f"this host has {format_memory(host.memory)}")
    return reasons
