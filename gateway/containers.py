"""Builders for the scheduler and worker containers: names, labels, the network namespace, the
GPU owner keys of workers.

Nothing here talks to an engine; :mod:`gateway.backend` hands the results to one (core.engine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.engine.spec import ContainerSpec, Mount
from core.labels import LABEL_DEPLOYMENT, LABEL_OWNER, docker_safe
from spawner.gpu.allocator import GPU_LABEL

LABEL_CLUSTER = "titan.dask.cluster"
LABEL_ROLE = "titan.dask.role"  # "scheduler" or "worker"
LABEL_WORKER = "titan.dask.worker"
LABEL_ORIGIN = "titan.dask.server"  # the server the cluster belongs to (not titan.server: that marks servers)

SCHEDULER = "scheduler"
WORKER = "worker"

# States in which a container counts as alive (created: between create and start).
ALIVE = frozenset({"created", "running", "restarting"})


def server_namespace(server_container: str) -> str:
    """The ``network_mode`` putting a scheduler or worker in the network namespace of its cluster's
    server: on that server's user network (core.network) and on no other, with no interface, veth or
    resolver of its own to set up (``docker start`` 0.1 s sooner than a container on a bridge)."""
    if not server_container or ":" in server_container or "/" in server_container:
        raise ValueError(f"unexpected server container id {server_container!r}")
    return f"container:{server_container}"


def worker_gpu_owner(user: str, cluster: str, worker: str) -> str:
    """The GPU allocator's owner key of one worker: ``<user>/dask/<cluster>/<worker>`` (a server's
    is ``<user>/<server>``; server names hold no ``/``, so the two never meet)."""
    return f"{cluster_gpu_prefix(user, cluster)}{worker}"


def cluster_gpu_prefix(user: str, cluster: str) -> str:
    """What the owner keys of every worker of ``cluster`` start with."""
    return f"{user}/dask/{cluster}/"


def parse_worker_gpu_owner(owner: str) -> tuple[str, str, str] | None:
    """``(user, cluster, worker)`` of a worker's owner key; ``None`` for any other key (a server's)."""
    parts = owner.split("/")
    if len(parts) == 4 and parts[1] == "dask" and all(parts):
        return parts[0], parts[2], parts[3]
    return None


def worker_gpu_owner_from_labels(labels: Mapping[str, str]) -> str | None:
    """The owner key of a worker container, from its labels; ``None`` for any other container."""
    if labels.get(LABEL_ROLE) != WORKER:
        return None
    user, cluster, worker = labels.get(LABEL_OWNER, ""), labels.get(LABEL_CLUSTER, ""), labels.get(LABEL_WORKER, "")
    return worker_gpu_owner(user, cluster, worker) if user and cluster and worker else None


def container_name(deployment: str, owner: str, cluster: str, role: str, worker: str = "") -> str:
    """``<deployment>-dask-<owner>-<cluster[:12]>-scheduler`` or ``…-worker-<worker[:12]>``."""
    base = f"{deployment}-dask-{docker_safe(owner)}-{cluster[:12]}-{role}"
    return f"{base}-{worker[:12]}" if worker else base


def container_labels(deployment: str, owner: str, origin_server: str, cluster: str, role: str,
                     worker: str = "") -> dict[str, str]:
    labels = {
        LABEL_DEPLOYMENT: deployment,
        LABEL_OWNER: owner,
        LABEL_ORIGIN: origin_server,
        LABEL_CLUSTER: cluster,
        LABEL_ROLE: role,
    }
    if worker:
        labels[LABEL_WORKER] = worker
    return labels


def dask_container(deployment: str, cluster: Any, role: str, worker: str, command: Sequence[str],
                   environment: Mapping[str, str], user: str, tls: Mount, gpus: Sequence[str] = ()) -> ContainerSpec:
    """The container of ``cluster``'s scheduler (``role`` SCHEDULER, ``worker`` "") or of its worker
    ``worker``: in the image and network namespace of the cluster's server, sized by the cluster's
    config, with the TLS files mounted; a worker with ``gpus`` gets exactly those (and the label)."""
    config = cluster.config
    labels = container_labels(deployment, cluster.username, config.origin_server, cluster.name, role, worker)
    environment = dict(environment)
    if gpus:
        labels[GPU_LABEL] = environment["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpus)
    scheduler = role == SCHEDULER
    return ContainerSpec(
        name=container_name(deployment, cluster.username, cluster.name, role, worker),
        image=config.image, command=tuple(command), environment=environment, labels=labels,
        cores=config.scheduler_cores if scheduler else config.worker_cores,
        memory=config.scheduler_memory if scheduler else config.worker_memory,
        user=user, network=server_namespace(config.origin_container), mounts=(tls,), gpus=tuple(gpus),
    )
