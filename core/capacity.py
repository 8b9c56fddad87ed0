"""What this host can give a server, and what a set of resources would need beyond it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.profiles import Resources
from core.units import format_cpu, format_memory


@dataclass(frozen=True)
class HostCapacity:
    cpus: float
    memory: int  # bytes
    gpus_total: Mapping[str, int] = field(default_factory=dict)  # GPU type → units on the host
    gpus_free: Mapping[str, int] = field(default_factory=dict)  # GPU type → units free now


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
