"""Scaling within the owner's limits: every worker count a client asks for (``scale``, ``adapt``)
and every count a scheduler asks for (its heartbeat) is clipped to what the owner's other clusters
and the free GPUs leave. No ``await`` from a check to its change, so a user's clusters cannot
overtake each other.

A ``scale`` is reserved at once (until the scheduler's heartbeat confirms it, at most two
heartbeat periods), so a second request right after it already counts it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dask_gateway_server.backends.db_base import Cluster, DataManager, JobStatus

from gateway.limits import Limits, Shape, describe_limit, workers_allowed
from gateway.worker_gpus import WorkerGpus

Log = logging.Logger


def shape(cluster: Cluster, workers: int) -> Shape:
    config = cluster.config
    return Shape(float(config.scheduler_cores), int(config.scheduler_memory), float(config.worker_cores),
                 int(config.worker_memory), workers)


def has_limits(cluster: Cluster) -> bool:
    return bool(cluster.config.get("user_limits"))


class Scaling:
    """The reservations of recent ``scale`` requests, and the clipping of counts to the limits."""

    def __init__(self, gpus: WorkerGpus, heartbeat_period: Callable[[], float], log: Log) -> None:
        self.gpus = gpus
        self.heartbeat_period = heartbeat_period
        self.log = log
        self._reserved: dict[str, tuple[int, float]] = {}

    def reservations(self) -> dict[str, tuple[int, float]]:
        horizon = time.monotonic() - 2 * self.heartbeat_period()
        for name in [n for n, (_, at) in self._reserved.items() if at < horizon]:
            del self._reserved[name]
        return self._reserved

    def workers_held(self, cluster: Cluster) -> int:
        reserved = self.reservations().get(cluster.name, (0, 0.0))[0]
        return max(int(cluster.count), len(cluster.active_workers()), reserved)

    def shape(self, cluster: Cluster) -> Shape:
        """``cluster``'s size, with the workers it holds or has reserved."""
        return shape(cluster, self.workers_held(cluster))

    def workers_allowed(self, db: DataManager, cluster: Cluster) -> tuple[int, str, Limits]:
        """How many workers ``cluster`` may have now, given its owner's other clusters."""
        limits = Limits(**cluster.config.user_limits)
        others = [self.shape(c) for c in db.list_clusters(username=cluster.username) if c is not cluster]
        allowed, limit = workers_allowed(limits, others, shape(cluster, 0))
        return allowed, limit, limits

    def clip_request(self, db: DataManager, cluster: Cluster, msg: Mapping[str, Any],
                     requested: int | None) -> tuple[dict[str, Any], list[str]]:
        """A client's ``scale``/``adapt`` message clipped to the limits, and what to tell the user.
        ``requested``: the count the client asked for, before dask-gateway's own clip."""
        op = msg.get("op")
        out = dict(msg)
        if op not in ("scale", "adapt") or not has_limits(cluster):
            return out, []
        allowed, limit, limits = self.workers_allowed(db, cluster)
        why = (f"your limits leave room for {allowed} worker(s) in this cluster "
               f"({describe_limit(limits, limit)}, counting your other clusters)")
        notes: list[str] = []
        if op == "scale":
            count = min(int(msg["count"]), allowed)
            self._reserved[cluster.name] = (count, time.monotonic())
            if requested is not None and requested > count:
                notes.append(f"Scale request of {requested} workers exceeds {why}. Scaling to {count} instead.")
            out["count"] = count
            notes.extend(self.gpu_notes(cluster, count))
        else:
            maximum = msg.get("maximum")
            if maximum is None or maximum > allowed:
                if requested is not None and requested > allowed:
                    notes.append(f"Adapt maximum of {requested} workers exceeds {why}. Using {allowed} instead.")
                out.update(maximum=allowed, minimum=min(msg.get("minimum") or 0, allowed))
        return out, notes

    def gpu_notes(self, cluster: Cluster, count: int) -> list[str]:
        """What to tell the user when fewer of ``count`` workers can have their GPUs now than asked for."""
        gpus = self.gpus.workers_allowed(cluster)
        if gpus is None or count <= gpus[0]:
            return []
        allowed, free, total = gpus
        per_worker, gpu_type = int(cluster.config.worker_gpus), cluster.config.worker_gpu_type
        return [f"Each worker of this cluster needs {per_worker} {gpu_type} GPU(s) and {free} of {total} are free: "
                f"{allowed} of the {count} workers can start now, the others when GPUs are released."]

    def clip_heartbeat(self, db: DataManager, cluster: Cluster | None, msg: Mapping[str, Any]) -> dict[str, Any]:
        """A scheduler's heartbeat with its worker count clipped to the limits and the free GPUs."""
        out = dict(msg)
        if cluster is None or cluster.target > JobStatus.RUNNING:
            return out
        count = out.get("count")
        if isinstance(count, int) and has_limits(cluster):
            reserved = self.reservations().get(cluster.name)
            if reserved is not None and reserved[0] == count:
                del self._reserved[cluster.name]
            allowed, limit, _ = self.workers_allowed(db, cluster)
            if count > allowed:
                self.log.info("Cluster %s asks for %d workers; %s's limits allow %d (%s)", cluster.name, count,
                              cluster.username, allowed, limit)
                out["count"] = allowed
        if isinstance(out.get("count"), int):
            gpus = self.gpus.workers_allowed(cluster)  # workers only start with their GPUs free
            if gpus is not None and out["count"] > gpus[0]:
                self.log.info("Cluster %s asks for %d workers; GPUs (%s: %d of %d free) allow %d", cluster.name,
                              out["count"], cluster.config.worker_gpu_type, gpus[1], gpus[2], gpus[0])
                out["count"] = gpus[0]
        return out
