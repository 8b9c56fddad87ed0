"""The hub's own Prometheus metrics, served with JupyterHub's at ``/hub/metrics`` (prometheus_client's
default registry; a token with ``read:metrics``).

- ``titan_spawn_duration_seconds{profile, status}``: from the spawner's ``start`` to the server
  listening (``success``) or to the failure (``failure``);
- ``titan_running_servers{profile}``: servers running now, by profile (every known profile, 0 too);
- ``titan_gpus{type, state}``: the host's GPUs by type, ``allocated`` (to servers and Dask workers)
  or ``free``; ``titan_gpus_allocated{type, holder}``: allocated ones by holder (``server``/``dask``).

Running servers are tracked by the spawner (start, stop, and ``poll``, which the hub calls for every
server when it starts: a hub restart rebuilds the picture). GPUs are read from the allocation table
at scrape time, so the Dask gateway's claims (same table) are counted too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.gpu.pool import allocators
from core.labels import parse_worker_gpu_owner

SPAWN_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, float("inf"))

SPAWN_DURATION = Histogram(
    "titan_spawn_duration_seconds", "Seconds from a server's start to it listening (or failing), by profile",
    ["profile", "status"], buckets=SPAWN_BUCKETS,
)


class RunningServers:
    """Which server (``user/server``) runs which profile, in this hub process."""

    def __init__(self) -> None:
        self._profiles: dict[str, str] = {}
        self.known_profiles: Callable[[], Iterable[str]] = tuple

    def started(self, owner: str, profile: str) -> None:
        self._profiles[owner] = profile

    def stopped(self, owner: str) -> None:
        self._profiles.pop(owner, None)

    def __contains__(self, owner: str) -> bool:
        return owner in self._profiles

    def by_profile(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(self.known_profiles(), 0)
        counts.update(Counter(self._profiles.values()))
        return counts


RUNNING = RunningServers()


def gpu_counts(pool: Iterable[Any]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """(type → units on this host, (type, holder) → units allocated) over ``pool``'s allocators."""
    totals: Counter[str] = Counter()
    allocated: Counter[tuple[str, str]] = Counter()
    for allocator in pool:
        for gpu_type in allocator.types:
            totals[gpu_type] += allocator.total_count(gpu_type)
            allocated[(gpu_type, "server")] += 0
            allocated[(gpu_type, "dask")] += 0
        for uuid, owner in allocator.allocations().items():
            gpu_type = allocator.type_of(uuid)
            if gpu_type is not None:
                allocated[(gpu_type, "dask" if parse_worker_gpu_owner(owner) else "server")] += 1
    return dict(totals), dict(allocated)


class HubCollector(Collector):
    """Running servers and GPUs, computed when Prometheus scrapes."""

    def __init__(self, running: RunningServers, pool: Callable[[], Iterable[Any]] = allocators) -> None:
        self.running = running
        self.pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        servers = GaugeMetricFamily("titan_running_servers", "Servers running now, by profile", labels=["profile"])
        for profile, count in sorted(self.running.by_profile().items()):
            servers.add_metric([profile], count)
        yield servers
        totals, allocated = gpu_counts(self.pool())
        gpus = GaugeMetricFamily("titan_gpus", "The host's GPUs by type: allocated or free", labels=["type", "state"])
        held = GaugeMetricFamily("titan_gpus_allocated", "GPUs allocated, by type and holder (server or dask)",
                                 labels=["type", "holder"])
        for gpu_type, total in sorted(totals.items()):
            used = allocated.get((gpu_type, "server"), 0) + allocated.get((gpu_type, "dask"), 0)
            gpus.add_metric([gpu_type, "allocated"], used)
            gpus.add_metric([gpu_type, "free"], max(0, total - used))
        for (gpu_type, holder), count in sorted(allocated.items()):
            held.add_metric([gpu_type, holder], count)
        yield gpus
        yield held


COLLECTOR = HubCollector(RUNNING)
REGISTRY.register(COLLECTOR)
