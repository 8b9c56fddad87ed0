"""GPUs for Dask workers, drawn from the spawner's own allocator database.

A worker asking for GPUs (``worker_gpus``) claims distinct units (owner
``<user>/dask/<cluster>/<worker>``, core.labels.worker_gpu_owner) before its container is
created, gets exactly those devices and the ``titan.gpus`` label, and gives them back when it
stops or fails. The hub reconciles the table with the running containers (servers' and workers'
alike); the gateway only frees its own workers' rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from functools import partial

from dask_gateway_server.backends.db_base import Cluster, DataManager, JobStatus, Worker
from sqlalchemy.exc import OperationalError

from core.gpu.allocator import GpuAllocator, GpuUnavailable
from core.gpu.inventory import GpuUnit
from core.gpu.pool import gpu_allocator
from core.gpu.types import match_types
from core.labels import cluster_gpu_prefix, parse_worker_gpu_owner, worker_gpu_owner
from core.profiles import ProfileSet, resources_from_settings

Log = logging.Logger


class WorkerGpus:
    """The allocator over ``db_url`` ("": workers cannot have GPUs), the inventory from
    ``inventory_xml`` ("": the driver's), the GPU types from ``profiles()``."""

    def __init__(self, db_url: str, inventory_xml: str, profiles: Callable[[], ProfileSet], log: Log) -> None:
        self.db_url = db_url
        self.inventory_xml = inventory_xml
        self.profiles = profiles
        self.log = log

    def allocator(self) -> GpuAllocator | None:
        """The GPU allocator over the spawner's database; ``None`` when none is configured."""
        if not self.db_url:
            return None
        rules = self.profiles().gpu_types
        try:
            allocator, _ = gpu_allocator(self.db_url, self.inventory_xml, rules, self.log)
        except OperationalError:  # the hub created the table at the same moment: it is there now
            allocator, _ = gpu_allocator(self.db_url, self.inventory_xml, rules, self.log)
        return allocator

    def server_gpu_type(self, username: str, server: str, server_gpus: Iterable[str], profile: str) -> str | None:
        """The type of the GPUs the cluster's server holds, else its profile's GPU type (if any)."""
        allocator = self.allocator()
        profiles = self.profiles()
        if allocator is not None and list(server_gpus):
            held = allocator.held_by(f"{username}/{server}")
            for name, units in match_types(held, profiles.gpu_types).items():
                if units:
                    return name
        found = profiles.get(profile)
        if found is not None and found.settings.get("resources"):
            return resources_from_settings(found.settings).gpu_type
        return None

    def totals(self) -> dict[str, int] | None:
        """Units on the host by GPU type; ``None`` when workers cannot have GPUs here."""
        allocator = self.allocator()
        if allocator is None:
            return None
        return {name: allocator.total_count(name) for name in self.profiles().gpu_types}

    def workers_allowed(self, cluster: Cluster) -> tuple[int, int, int] | None:
        """``(workers, free, total)``: how many of ``cluster``'s workers can hold GPUs now (the
        units free plus those its workers hold), the units of its type free and on the host;
        ``None`` for a cluster whose workers need none. No ``await``: safe between check and change."""
        per_worker = int(cluster.config.get("worker_gpus") or 0)
        allocator = self.allocator() if per_worker else None
        if allocator is None:
            return None
        gpu_type = str(cluster.config.get("worker_gpu_type"))
        prefix = cluster_gpu_prefix(cluster.username, cluster.name)
        held = sum(1 for owner in allocator.allocations().values() if owner.startswith(prefix))
        free = allocator.free_count(gpu_type)
        return (free + held) // per_worker, free, allocator.total_count(gpu_type)

    async def claim(self, worker: Worker) -> list[GpuUnit]:
        """Claim the GPUs ``worker`` asks for (none: ``[]``); ``GpuUnavailable`` when they are not free."""
        cluster = worker.cluster
        count = int(cluster.config.get("worker_gpus") or 0)
        if not count:
            return []
        gpu_type = str(cluster.config.get("worker_gpu_type"))
        allocator = self.allocator()
        if allocator is None:
            raise GpuUnavailable("GPUs for Dask workers are not configured on this deployment.")
        owner = worker_gpu_owner(cluster.username, cluster.name, worker.name)
        try:
            units = await asyncio.to_thread(partial(allocator.allocate, gpu_type, count, owner))
        except GpuUnavailable as error:
            self.log.warning("Worker %s of cluster %s (%s) cannot start: %s", worker.name, cluster.name,
                             cluster.username, error)
            raise
        self.log.info("GPUs for Dask worker %s: %s", owner, ", ".join(u.uuid for u in units))
        return units

    async def attach(self, owner: str, container_id: str) -> None:
        allocator = self.allocator()
        if allocator is not None:
            await asyncio.to_thread(partial(allocator.attach, owner, container_id))

    async def release(self, owners: Iterable[str]) -> None:
        allocator = self.allocator()
        owners = list(owners)
        if allocator is None or not owners:
            return
        for owner in owners:  # the allocator logs what it frees
            await asyncio.to_thread(partial(allocator.release, owner))

    async def release_worker(self, worker: Worker) -> None:
        if worker.cluster.config.get("worker_gpus"):
            await self.release([worker_gpu_owner(worker.cluster.username, worker.cluster.name, worker.name)])

    async def release_cluster(self, cluster: Cluster) -> None:
        allocator = self.allocator()
        if allocator is None:
            return
        prefix = cluster_gpu_prefix(cluster.username, cluster.name)
        held = await asyncio.to_thread(allocator.allocations)
        await self.release(sorted({o for o in held.values() if o.startswith(prefix)}))

    async def reap(self, db: DataManager) -> None:
        """Free GPU rows of Dask workers that no active worker of an active cluster owns (a gateway
        crash between a claim and its release). Only workers' rows: servers' rows are the hub's."""
        allocator = self.allocator()
        if allocator is None:
            return
        held = await asyncio.to_thread(allocator.allocations)
        stale = []
        for owner in sorted(set(held.values())):
            parsed = parse_worker_gpu_owner(owner)
            if parsed is None:
                continue
            username, cluster_name, worker_name = parsed
            cluster = db.get_cluster(cluster_name)
            worker = cluster.workers.get(worker_name) if cluster is not None and cluster.username == username \
                else None
            if cluster is None or cluster.status >= JobStatus.STOPPED or worker is None \
                    or worker.status >= JobStatus.STOPPED:
                stale.append(owner)
        if stale:
            self.log.info("Freeing the GPUs of Dask workers that are gone: %s", ", ".join(stale))
            await self.release(stale)
