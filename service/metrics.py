"""The Titan service's Prometheus metrics, at ``/services/titan/metrics`` (its own registry).

- ``titan_dask_clusters{user}``, ``titan_dask_workers{user}``: clusters and running workers now,
  read from the Docker engine (the gateway's labelled containers) when Prometheus scrapes;
- ``titan_autosave_snapshots_total{reason, outcome}``: snapshots by why (``scheduled``,
  ``final snapshot``, ``on request``) and what came of them (``committed``, ``unchanged``, ``failed``);
- ``titan_autosave_pushes_total{outcome}``: pushes by outcome (``pushed``, ``up to date``,
  ``rejected``, ``auth``, ``network``, ``error``);
- ``titan_report_views_total{kind}``: views of shared reports and dashboards, counted by the sharing
  code through :func:`record_report_view`.

Who may read it: a hub token with ``read:metrics`` (``state/metrics-token`` of the titan-metrics
service is made for Prometheus), or an admin. Per-user names are in it, so it is not public.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

AUTOSAVE_SNAPSHOTS = Counter("titan_autosave_snapshots", "Autosave snapshot passes, by reason and outcome",
                             ["reason", "outcome"], registry=REGISTRY)
AUTOSAVE_PUSHES = Counter("titan_autosave_pushes", "Autosave pushes, by outcome", ["outcome"], registry=REGISTRY)
REPORT_VIEWS = Counter("titan_report_views", "Views of shared reports and dashboards, by kind", ["kind"],
                       registry=REGISTRY)


def record_report_view(kind: str) -> None:
    """Count one view of a shared report or dashboard (``kind``: e.g. ``"report"``, ``"dashboard"``)."""
    REPORT_VIEWS.labels(kind or "unknown").inc()


def record_snapshot(reason: str, outcome: str) -> None:
    AUTOSAVE_SNAPSHOTS.labels(reason, outcome).inc()


def record_push(outcome: str) -> None:
    AUTOSAVE_PUSHES.labels(outcome).inc()


class DaskCollector(Collector):
    """Clusters and running workers by user, from ``source()`` (the gateway's containers) at scrape time."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[Any]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        clusters = GaugeMetricFamily("titan_dask_clusters", "Dask clusters up now, by user", labels=["user"])
        workers = GaugeMetricFamily("titan_dask_workers", "Dask workers running now, by user", labels=["user"])
        if self.source is not None:
            per_user: dict[str, set[str]] = {}
            running: Tally[str] = Tally()
            for container in self.source():
                per_user.setdefault(container.user, set()).add(container.cluster)
                if container.role == "worker" and container.running:
                    running[container.user] += 1
            for user in sorted(per_user):
                clusters.add_metric([user], len(per_user[user]))
                workers.add_metric([user], running[user])
        yield clusters
        yield workers


DASK = DaskCollector()
REGISTRY.register(DASK)


def exposition() -> bytes:
    """The registry in Prometheus' text format (blocking: the Dask source asks the Docker engine)."""
    return generate_latest(REGISTRY)
