"""The gateway's Dask containers, read from the Docker engine (labels and host config)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from service.usage.recorder import DaskContainer, parse_time


def docker_dask_source(deployment: str = "") -> Callable[[], list[DaskContainer]]:
    """A callable listing every scheduler and worker container of this deployment (blocking).

    One ``docker ps`` a call; a container is inspected once when it has started (its cores, memory
    and start time do not change) and once more if it exited."""
    import docker

    from core.labels import LABEL_CLUSTER, LABEL_DEPLOYMENT, LABEL_ORIGIN, LABEL_OWNER, LABEL_ROLE

    client = docker.from_env()
    known: dict[str, tuple[float, int, datetime | None]] = {}  # id → (cores, memory, started)

    def listing() -> list[DaskContainer]:
        labels = [LABEL_CLUSTER] + ([f"{LABEL_DEPLOYMENT}={deployment}"] if deployment else [])
        found: list[dict[str, Any]] = client.api.containers(all=True, filters={"label": labels})
        result = []
        for summary in found:
            container_id, running = summary["Id"], summary.get("State") == "running"
            finished = None
            if container_id not in known or not running:
                try:
                    info = client.api.inspect_container(container_id)
                except docker.errors.NotFound:
                    continue
                host, state = info.get("HostConfig") or {}, info.get("State") or {}
                cores = (host.get("NanoCpus") or 0) / 1e9 or (host.get("CpuQuota") or 0) / (host.get("CpuPeriod")
                                                                                           or 100000)
                started = parse_time(state.get("StartedAt"))
                if started is not None:
                    known[container_id] = (float(cores), int(host.get("Memory") or 0), started)
                running = bool(state.get("Running"))
                finished = None if running else parse_time(state.get("FinishedAt"))
                size = (float(cores), int(host.get("Memory") or 0), started)
            else:
                size = known[container_id]
            container_labels = summary.get("Labels") or {}
            result.append(DaskContainer(
                id=container_id, user=container_labels.get(LABEL_OWNER, ""),
                cluster=container_labels.get(LABEL_CLUSTER, ""), role=container_labels.get(LABEL_ROLE, ""),
                server=container_labels.get(LABEL_ORIGIN, ""), cores=size[0], memory=size[1], started=size[2],
                running=running, finished=finished))
        for gone in set(known) - {c.id for c in result}:
            known.pop(gone, None)
        return result

    return listing
