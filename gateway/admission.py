"""Admission of a new cluster: one pure decision over facts gathered first.

Given the profile data's settings, the validated request, the server the cluster belongs to, the
owner's groups, their active clusters and the host's GPUs, :func:`admit` answers either the
cluster's configuration (:class:`Accepted`) or a refusal with the message the user sees
(:class:`Refused`). No I/O: the backend gathers the facts, decides with no ``await`` between the
decision and the insert, and applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.limits import LimitExceeded, Limits, Shape, check_new_cluster, limits_for
from gateway.options import ClusterRequest, DaskSettings, OptionsError, resolve_gpu_type


@dataclass(frozen=True)
class Origin:
    """The running server a cluster belongs to."""

    container_id: str
    image: str
    profile: str
    gpus: tuple[str, ...] = ()  # uuids of the GPUs the server holds (its titan.gpus label)
    network: str = ""  # on Swarm: the network the server's service is on (its cluster joins it)


@dataclass(frozen=True)
class GpuFacts:
    """The host's GPUs as workers may use them."""

    totals: Mapping[str, int] | None  # units by type; None: workers cannot have GPUs here
    server_type: str | None = None  # the type of the server's GPUs, else its profile's (None: none)


@dataclass(frozen=True)
class Accepted:
    request: ClusterRequest  # with the workers' GPU type filled in
    limits: Limits
    config: Mapping[str, Any] = field(default_factory=dict)  # ClusterConfig overrides


@dataclass(frozen=True)
class Refused:
    message: str  # for the user: what is wrong, what to do
    limit: str = ""  # the limit that refused it (for the log), "" for a bad request


def resolve_gpus(settings: DaskSettings, request: ClusterRequest, gpus: GpuFacts) -> ClusterRequest:
    """The request with its workers' GPU type filled in; ``OptionsError`` when workers cannot
    have GPUs here, or when one worker would need more than the host has of that type."""
    if not request.worker_gpus:
        return resolve_gpu_type(settings, request, None)
    if gpus.totals is None:
        raise OptionsError("GPUs for Dask workers are not configured on this deployment: ask for worker_gpus=0.")
    request = resolve_gpu_type(settings, request, gpus.server_type)
    total = gpus.totals.get(request.worker_gpu_type, 0)
    if request.worker_gpus > total:
        have = f"only {total}" if total else "no"
        raise OptionsError(f"worker_gpus={request.worker_gpus}: this host has {have} "
                           f"{request.worker_gpu_type} GPU{'' if total == 1 else 's'}.")
    return request


def cluster_config(settings: DaskSettings, request: ClusterRequest, limits: Limits, origin: Origin) -> dict[str, Any]:
    """The ``ClusterConfig`` values of a new cluster."""
    return {
        "image": origin.image, "origin_server": request.server, "origin_container": origin.container_id,
        "origin_network": origin.network,
        "worker_cores": request.worker_cores, "worker_memory": request.worker_memory_bytes,
        "worker_gpus": request.worker_gpus, "worker_gpu_type": request.worker_gpu_type,
        "scheduler_cores": settings.scheduler_cores, "scheduler_memory": settings.scheduler_memory,
        "idle_timeout": request.idle_timeout,
        "cluster_max_cores": limits.max_cores, "cluster_max_memory": limits.max_memory,
        "cluster_max_workers": limits.max_workers,
        "user_limits": {"max_clusters": limits.max_clusters, "max_cores": limits.max_cores,
                        "max_memory": limits.max_memory, "max_workers": limits.max_workers},
    }


def admit(settings: DaskSettings, request: ClusterRequest, origin: Origin, groups: Iterable[str],
          active: Sequence[Shape], gpus: GpuFacts) -> Accepted | Refused:
    """Whether the owner (in ``groups``, with ``active`` clusters) may have this cluster, and its config."""
    try:
        request = resolve_gpus(settings, request, gpus)
    except OptionsError as error:
        return Refused(str(error))
    limits = limits_for(settings.limits, settings.group_limits, groups)
    config = cluster_config(settings, request, limits, origin)
    new = Shape(config["scheduler_cores"], config["scheduler_memory"], config["worker_cores"], config["worker_memory"])
    try:
        check_new_cluster(limits, active, new)
    except LimitExceeded as error:
        return Refused(str(error), error.limit)
    return Accepted(request, limits, config)
