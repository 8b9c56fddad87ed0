"""Which GPUs of a swarm a server gets (pure): Titan places GPU containers itself.

Each GPU node advertises its GPUs as Swarm generic resources, one kind per GPU type, one named value
per GPU (``node-generic-resources: ["H100=GPU-0f3c…", …]`` in the node's daemon.json, written by
Ansible from the node's NVML inventory): that is the swarm's GPU inventory, visible in
``docker node inspect``. Titan does **not** ask Swarm to reserve those resources for a task: Swarm's
constraint enforcer (swarmkit ``rejectNoncompliantTasks``, Docker 20.10 to today) rejects a running
task holding generic resources whenever its node is updated (a label, availability, the engine's
description: measured here, tests/integration/test_swarm_hub.py), which would kill users' GPU servers.

Instead Titan picks the units (:func:`pick_gpus`: the first node, in the profile's pool, with enough
free units of the type, free meaning held by no container of Titan's ``titan.gpus`` label), pins the
container to that node (``ContainerSpec.node``) and names the units in ``NVIDIA_VISIBLE_DEVICES``,
which the node's NVIDIA runtime (its default runtime) honours: the container sees exactly those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.labels import LABEL_GPUS, NODE_POOL


@dataclass(frozen=True)
class NodeGpus:
    """One ready, active node's GPUs: type -> unit ids (as advertised), and its pool."""

    node_id: str
    hostname: str
    pool: str
    units: Mapping[str, tuple[str, ...]]


def node_gpus(nodes: Sequence[Mapping[str, Any]]) -> list[NodeGpus]:
    """The GPUs each ready, active node (``GET /nodes``) advertises as named generic resources."""
    found = []
    for node in nodes:
        if (node.get("Status") or {}).get("State") != "ready" or \
                (node.get("Spec") or {}).get("Availability") != "active":
            continue
        description = node.get("Description") or {}
        units: dict[str, list[str]] = {}
        for entry in (description.get("Resources") or {}).get("GenericResources") or []:
            named = entry.get("NamedResourceSpec")
            if named:
                units.setdefault(str(named["Kind"]), []).append(str(named["Value"]))
        found.append(NodeGpus(node_id=str(node["ID"]), hostname=str(description.get("Hostname", "")),
                              pool=str(((node.get("Spec") or {}).get("Labels") or {}).get(NODE_POOL, "")),
                              units={kind: tuple(values) for kind, values in units.items()}))
    return found


def gpus_in_use(labels: Iterable[Mapping[str, str]]) -> set[str]:
    """The units Titan's containers hold, from their ``titan.gpus`` labels."""
    return {unit for label in labels for unit in label.get(LABEL_GPUS, "").split(",") if unit}


def pick_gpus(nodes: Sequence[NodeGpus], used: set[str], kind: str, count: int,
              pool: str = "") -> tuple[NodeGpus, tuple[str, ...]] | None:
    """``count`` free units of ``kind`` on one node (in ``pool`` when given), or None."""
    for node in nodes:
        if pool and node.pool != pool:
            continue
        free = [unit for unit in node.units.get(kind, ()) if unit not in used]
        if len(free) >= count:
            return node, tuple(free[:count])
    return None


def gpu_counts(nodes: Sequence[NodeGpus], used: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(units of each type in the swarm, units of each type free now)."""
    total: dict[str, int] = {}
    free: dict[str, int] = {}
    for node in nodes:
        for kind, units in node.units.items():
            total[kind] = total.get(kind, 0) + len(units)
            free[kind] = free.get(kind, 0) + sum(1 for unit in units if unit not in used)
    return total, free
