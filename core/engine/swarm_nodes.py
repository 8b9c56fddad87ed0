"""What each node of a swarm has left (pure): :class:`NodeRoom` from Swarm's node and task records,
and :func:`no_room_reason`, the one decision "can any node hold this now?" that lets a profile be
offered, or shown disabled with the reason, before a spawn ever waits on Swarm's scheduler.

Swarm places a task where the node's CPUs, memory and generic resources, minus the reservations of
the tasks it already runs, cover the task's reservations; Titan reserves what it limits
(core.engine.swarm_spec), so the room computed here is the room Swarm sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.labels import NODE_POOL

#: Task states that hold their reservations on their node.
HOLDING = frozenset({"assigned", "accepted", "ready", "preparing", "starting", "running"})


@dataclass(frozen=True)
class NodeRoom:
    """One node: its pool, what is free on it, and whether it takes servers now (ready and active;
    a node that is down or drained is listed only to say so)."""

    node_id: str
    hostname: str
    address: str
    pool: str  # its node label titan.pool ("": none)
    cpus: float  # free CPUs
    memory: int  # free bytes
    resources: Mapping[str, int] = field(default_factory=dict)  # free units of each generic resource
    ready: bool = True  # Swarm has it ready and active


def _generic(entries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Units of each kind in a GenericResources list (a named resource is one unit)."""
    units: dict[str, int] = {}
    for entry in entries:
        named, discrete = entry.get("NamedResourceSpec"), entry.get("DiscreteResourceSpec")
        if named:
            units[str(named["Kind"])] = units.get(str(named["Kind"]), 0) + 1
        if discrete:
            units[str(discrete["Kind"])] = units.get(str(discrete["Kind"]), 0) + int(discrete["Value"])
    return units


def node_rooms(nodes: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]) -> list[NodeRoom]:
    """The room on each node (``GET /nodes``), given every task (``GET /tasks``): what the tasks that
    have not ended hold is taken, whatever Swarm wants of them; nodes that are not ready and active
    are there with ``ready`` False."""
    held: dict[str, tuple[int, int, dict[str, int]]] = {}
    for task in tasks:
        # Swarm's scheduler frees a task's reservation when the task has ended, not when it is asked to
        # (a removed service's task holds its node's room until its container is gone: seconds).
        if (task.get("Status") or {}).get("State") not in HOLDING:
            continue
        reserved = ((task.get("Spec") or {}).get("Resources") or {}).get("Reservations") or {}
        cpus, memory, units = held.get(str(task.get("NodeID", "")), (0, 0, {}))
        for kind, count in _generic(reserved.get("GenericResources") or []).items():
            units[kind] = units.get(kind, 0) + count
        held[str(task.get("NodeID", ""))] = (cpus + int(reserved.get("NanoCPUs", 0)),
                                             memory + int(reserved.get("MemoryBytes", 0)), units)
    rooms = []
    for node in nodes:
        status, spec = node.get("Status") or {}, node.get("Spec") or {}
        description = node.get("Description") or {}
        resources = description.get("Resources") or {}
        cpus, memory, units = held.get(str(node["ID"]), (0, 0, {}))
        total = _generic(resources.get("GenericResources") or [])
        rooms.append(NodeRoom(
            node_id=str(node["ID"]), hostname=str(description.get("Hostname", "")), address=str(status.get("Addr", "")),
            pool=str((spec.get("Labels") or {}).get(NODE_POOL, "")),
            cpus=(int(resources.get("NanoCPUs", 0)) - cpus) / 1e9, memory=int(resources.get("MemoryBytes", 0)) - memory,
            resources={kind: count - units.get(kind, 0) for kind, count in total.items()},
            ready=status.get("State") == "ready" and spec.get("Availability") == "active",
        ))
    return rooms


def no_room_reason(rooms: Sequence[NodeRoom], cores: float, memory: int, pool: str = "",
                   resources: Mapping[str, int] | None = None, now: bool = True) -> str:
    """"" when some node can hold a container of that size (``rooms``: what each node has free now;
    ``now`` False: each node as if empty, and the reason says so), else why not, for a user."""
    wanted = dict(resources or {})
    in_pool = [room for room in rooms if not pool or room.pool == pool]
    candidates = [room for room in in_pool if room.ready]
    if not candidates:
        if not in_pool:
            return f"no node is in the pool {pool!r}" if pool else "no node is ready"
        where = f"of the pool {pool!r} " if pool else ""
        away = ", ".join(sorted(room.hostname for room in in_pool))
        return f"no node {where}is up now ({away} {'is' if len(in_pool) == 1 else 'are'} down or drained)"
    for room in candidates:
        if room.cpus >= cores and room.memory >= memory and \
                all(room.resources.get(kind, 0) >= count for kind, count in wanted.items()):
            return ""
    short = []
    if all(room.cpus < cores for room in candidates):
        short.append(f"{cores:g} CPUs")
    if all(room.memory < memory for room in candidates):
        short.append(f"{memory / 1024**3:.3g} GiB of memory")
    short += [f"{count} {kind}" for kind, count in wanted.items()
              if all(room.resources.get(kind, 0) < count for room in candidates)]
    what = ", ".join(short) or "all of it at once"
    where = f"in the pool {pool!r}" if pool else f"of the {len(candidates)} nodes"
    return f"no node {where} has {what} free now" if now else f"no node {where} has {what}"


def spread_node(rooms: Sequence[NodeRoom], held: Mapping[str, int], cores: float, memory: int,
                pool: str = "", prefer: str = "") -> str:
    """The node (its id) for one more container of a group that has ``held[node id]`` containers on
    each node (a Dask cluster's workers): of the ready nodes in ``pool`` with room for it now, the one
    holding the fewest of the group, then ``prefer`` (the node of the group's server: its network is
    already there, and a container joins it in half the time), then the one with the most memory
    free. "" when no node has room now (Swarm then places it when one has, and says why it waits)."""
    fits = [room for room in rooms if room.ready and (not pool or room.pool == pool)
            and room.cpus >= cores and room.memory >= memory]
    if not fits:
        return ""
    return min(fits, key=lambda room: (held.get(room.node_id, 0), room.node_id != prefer, -room.memory,
                                       room.hostname)).node_id


def free_port(used: Iterable[int], low: int, high: int, first: int | None = None) -> int:
    """A port of ``low``..``high`` no service publishes (``used``), looking from ``first`` on (wrapping
    around; None: from ``low``), so that two hubs' picks rarely meet. ``LookupError`` when all are used."""
    taken = set(used)
    span = high - low + 1
    start = (first if first is not None else low) - low
    for step in range(span):
        port = low + (start + step) % span
        if port not in taken:
            return port
    raise LookupError(f"every port of {low}-{high} is published by a service: widen swarm.published_ports")


def published_ports(services: Sequence[Mapping[str, Any]]) -> set[int]:
    """The ports services (``GET /services``) publish: those they asked for and those they were given."""
    ports: set[int] = set()
    for service in services:
        asked = ((service.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []
        given = (service.get("Endpoint") or {}).get("Ports") or []
        ports.update(int(p["PublishedPort"]) for p in [*asked, *given] if p.get("PublishedPort"))
    return ports
