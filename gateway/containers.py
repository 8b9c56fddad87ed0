"""Builders for the scheduler and worker containers: names, labels, the network namespace, the
GPU owner keys of workers.

Nothing here talks to an engine; :mod:`gateway.backend` hands the results to one (core.engine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.engine.spec import ContainerSpec, Mount
from core.labels import (
    LABEL_CLUSTER,
    LABEL_DEPLOYMENT,
    LABEL_GPUS,
    LABEL_ORIGIN,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_WORKER,
    SCHEDULER,
    docker_safe,
)


def server_namespace(server_container: str) -> str:
    """The ``network_mode`` putting a scheduler or worker in the network namespace of its cluster's
    server: on that server's user network (core.network) and on no other, with no interface, veth or
    resolver of its own to set up (``docker start`` 0.1 s sooner than a container on a bridge)."""
    if not server_container or ":" in server_container or "/" in server_container:
        raise ValueError(f"unexpected server container id {server_container!r}")
    return f"container:{server_container}"


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
        labels[LABEL_GPUS] = environment["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpus)
    scheduler = role == SCHEDULER
    return ContainerSpec(
        name=container_name(deployment, cluster.username, cluster.name, role, worker),
        image=config.image, command=tuple(command), environment=environment, labels=labels,
        cores=config.scheduler_cores if scheduler else config.worker_cores,
        memory=config.scheduler_memory if scheduler else config.worker_memory,
        user=user, network=server_namespace(config.origin_container), mounts=(tls,), gpus=tuple(gpus),
    )
