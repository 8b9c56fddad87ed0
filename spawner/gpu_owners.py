"""Who holds GPUs now, read from the containers' labels: what the hub's GPU allocator is
reconciled with at its first use (spawner.docker.TitanDockerSpawner.gpus)."""

from __future__ import annotations

from core.engine.base import ContainerInfo
from core.gpu.allocator import parse_gpu_label
from core.labels import ALIVE as DASK_ALIVE
from core.labels import LABEL_GPUS, LABEL_OWNER, LABEL_SERVER, worker_gpu_owner_from_labels
from core.labels import LABEL_ROLE as LABEL_DASK_ROLE


def live_gpu_owners(containers: list[ContainerInfo]) -> dict[str, list[str]]:
    """Allocator owner → the uuids its ``titan.gpus`` label lists, for the containers that hold
    GPUs now: running servers (``<user>/<server>``) and Dask workers the gateway has created or
    started (``<user>/dask/<cluster>/<worker>``, as gateway.backend claims them)."""
    live: dict[str, list[str]] = {}
    for container in containers:
        labels, state = container.labels, container.state
        if LABEL_SERVER in labels and not labels.get(LABEL_DASK_ROLE):
            if state == "running":
                live[f"{labels.get(LABEL_OWNER, '')}/{labels[LABEL_SERVER]}"] = parse_gpu_label(labels.get(LABEL_GPUS))
            continue
        owner = worker_gpu_owner_from_labels(labels)
        if owner is not None and state in DASK_ALIVE and labels.get(LABEL_GPUS):
            live[owner] = parse_gpu_label(labels[LABEL_GPUS])
    return live
