"""The gateway's periodic clean-up passes.

- :func:`reap`: stop clusters whose server container is gone; remove containers no active
  cluster or worker owns (left by a crash between a create and its checkpoint, or a failed
  removal); remove the TLS files (on Swarm: the secrets) and free the GPUs of clusters and workers
  that are gone.
- :func:`wait_stopped`: wait, for a while, for clusters being stopped to be gone.
- :func:`reap_closed_workers`: remove workers the scheduler retired as soon as their container
  has exited, not at the scheduler's next heartbeat (up to ``cluster_heartbeat_period`` later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from dask_gateway_server.backends.db_base import Cluster, DataManager, JobStatus, Worker

from core.engine.base import ContainerEngine, ContainerInfo
from core.labels import LABEL_CLUSTER, LABEL_DEPLOYMENT, LABEL_ROLE, LABEL_WORKER, WORKER
from gateway.swarm import SwarmClusters
from gateway.tls import TlsFiles
from gateway.worker_gpus import WorkerGpus


class Reaped(Protocol):
    """What the passes need of the backend."""

    db: DataManager
    queue: Any  # dask-gateway's work queue: put(cluster or worker)
    log: logging.Logger
    deployment: str

    @property
    def engine(self) -> ContainerEngine: ...
    @property
    def tls_files(self) -> TlsFiles: ...
    @property
    def worker_gpus(self) -> WorkerGpus: ...
    @property
    def swarm(self) -> SwarmClusters | None: ...

    async def deployment_containers(self, labels: Mapping[str, str | None] | None = None) -> list[ContainerInfo]: ...
    async def alive(self, objects: Iterable[Cluster | Worker]) -> list[bool]: ...
    async def stop_cluster(self, cluster_name: str, failed: bool = False) -> None: ...


def is_orphan(db: DataManager, labels: Mapping[str, str]) -> bool:
    """A scheduler or worker container that no active cluster or worker owns."""
    name = labels.get(LABEL_CLUSTER)
    if not name:
        return False
    cluster = db.get_cluster(name)
    if cluster is None or cluster.status >= JobStatus.STOPPED:
        return True
    if labels.get(LABEL_ROLE) == WORKER:
        worker = cluster.workers.get(labels.get(LABEL_WORKER, ""))
        return worker is None or worker.status >= JobStatus.STOPPED
    return False


def cluster_gone(db: DataManager, name: str) -> bool:
    cluster = db.get_cluster(name)
    return cluster is None or cluster.status >= JobStatus.STOPPED


async def reap(backend: Reaped) -> None:
    listing = await backend.deployment_containers()
    running = {c.id for c in listing if c.state == "running"}
    for cluster in list(backend.db.active_clusters()):
        origin = cluster.config.get("origin_container")
        if origin and origin not in running and cluster.target <= JobStatus.RUNNING:
            backend.log.info("The server of cluster %s (%s) is gone: stopping the cluster", cluster.name,
                             cluster.username)
            await backend.stop_cluster(cluster.name)
    orphans = [c.id for c in listing if is_orphan(backend.db, c.labels)]
    for container_id in orphans:
        backend.log.info("Removing orphan container %s", container_id[:12])
    await asyncio.gather(*(backend.engine.remove(i) for i in orphans))
    backend.tls_files.reap(lambda name: cluster_gone(backend.db, name))
    if backend.swarm is not None:  # the secrets of services removed behind the gateway's back
        await backend.swarm.reap_secrets({LABEL_DEPLOYMENT: backend.deployment}, lambda n: cluster_gone(backend.db, n))
    await backend.worker_gpus.reap(backend.db)


def retiring(db: DataManager) -> list[Worker]:
    """Running workers the scheduler is retiring (``close_expected``)."""
    return [w for c in db.active_clusters() if c.status == JobStatus.RUNNING for w in c.workers.values()
            if w.close_expected and w.status == JobStatus.RUNNING and w.target == JobStatus.RUNNING]


async def reap_closed_workers(backend: Reaped) -> None:
    """Stop retired workers whose container has exited: what the scheduler's next heartbeat,
    listing them as closed, would do. No engine call when no worker is retiring."""
    candidates = retiring(backend.db)
    if not candidates:
        return
    alive = dict(zip((w.name for w in candidates), await backend.alive(candidates), strict=True))
    gone = [w for w in retiring(backend.db) if alive.get(w.name) is False]  # unchanged across the await
    if not gone:
        return
    backend.db.update_workers([(w, {"target": JobStatus.STOPPED}) for w in gone])
    for worker in gone:
        backend.log.info("Worker %s of cluster %s was retired and has exited", worker.name, worker.cluster.name)
        backend.queue.put(worker)


async def wait_stopped(clusters: list[Cluster], wait: float, what: str, log: logging.Logger) -> None:
    """Wait up to ``wait`` seconds for ``clusters`` (being stopped) to be gone; a warning after."""
    try:
        if clusters and wait > 0:
            await asyncio.wait_for(asyncio.gather(*(_flag(c.shutdown) for c in clusters)), wait)
    except TimeoutError:
        log.warning("%s still stopping after %.0f s", what, wait)


async def _flag(flag: Any) -> None:
    await flag


async def every(period: Callable[[], float], work: Callable[[], Awaitable[None]], what: str,
                log: logging.Logger, first_at_once: bool = True) -> None:
    """Run ``work`` every ``period()`` seconds, forever; a failure is logged, the loop goes on."""
    if not first_at_once:
        await asyncio.sleep(period())
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s failed", what, exc_info=True)
        await asyncio.sleep(period())


