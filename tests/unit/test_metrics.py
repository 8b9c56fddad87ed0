"""The metrics' values: the hub's running servers and GPUs (a real allocator on sqlite over the
H100 capture), and the Titan service's registry (report views, autosave outcomes, Dask by user)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from core.gpu.allocator import GpuAllocator
from core.gpu.inventory import GpuUnit
from core.labels import worker_gpu_owner
from service import metrics as service_metrics
from service.usage import DaskContainer
from spawner.metrics import SPAWN_DURATION, HubCollector, RunningServers

LOG = logging.getLogger("test")


def samples(text: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = text.decode() if isinstance(text, bytes) else text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def units(gpu_type: str, count: int) -> list[GpuUnit]:
    return [GpuUnit(uuid=f"GPU-{gpu_type.lower()}-{i}", index=str(i), model=f"NVIDIA {gpu_type}", memory_mib=1,
                    mig_mode=False) for i in range(count)]


def test_running_servers_and_gpus_by_type_and_holder(tmp_path: Path) -> None:
    allocator = GpuAllocator({"H100": units("H100", 4), "T4": units("T4", 2)},
                             create_engine(f"sqlite:///{tmp_path / 'gpu.sqlite'}"), log=LOG)
    allocator.allocate("H100", 2, "alice/train")
    allocator.allocate("H100", 1, worker_gpu_owner("alice", "c1", "w1"))
    allocator.allocate("T4", 1, "bob/")
    running = RunningServers()
    running.known_profiles = lambda: ["small", "gpu", "large"]
    running.started("alice/train", "gpu")
    running.started("bob/", "gpu")
    running.started("carol/", "small")
    running.stopped("carol/")
    registry = CollectorRegistry()
    registry.register(HubCollector(running, pool=lambda: [allocator]))
    found = samples(generate_latest(registry))
    assert found[("titan_running_servers", (("profile", "gpu"),))] == 2
    assert found[("titan_running_servers", (("profile", "small"),))] == 0
    assert found[("titan_running_servers", (("profile", "large"),))] == 0
    assert found[("titan_gpus", (("state", "allocated"), ("type", "H100")))] == 3
    assert found[("titan_gpus", (("state", "free"), ("type", "H100")))] == 1
    assert found[("titan_gpus", (("state", "allocated"), ("type", "T4")))] == 1
    assert found[("titan_gpus_allocated", (("holder", "server"), ("type", "H100")))] == 2
    assert found[("titan_gpus_allocated", (("holder", "dask"), ("type", "H100")))] == 1
    assert found[("titan_gpus_allocated", (("holder", "dask"), ("type", "T4")))] == 0
    allocator.release("alice/train")
    after = samples(generate_latest(registry))
    assert after[("titan_gpus", (("state", "allocated"), ("type", "H100")))] == 1


def test_spawn_durations_are_in_the_hubs_default_registry_by_profile() -> None:
    before = REGISTRY.get_sample_value("titan_spawn_duration_seconds_count", {"profile": "xtest", "status": "success"})
    SPAWN_DURATION.labels("xtest", "success").observe(2.5)
    SPAWN_DURATION.labels("xtest", "success").observe(12)
    labels = {"profile": "xtest", "status": "success"}
    assert (REGISTRY.get_sample_value("titan_spawn_duration_seconds_count", labels) or 0) - (before or 0) == 2
    assert REGISTRY.get_sample_value("titan_spawn_duration_seconds_bucket", {**labels, "le": "3.0"}) == 1
    # and the hub collector registered itself there: /hub/metrics serves it
    assert "titan_running_servers" in generate_latest(REGISTRY).decode()


def value(name: str, **labels: str) -> float:
    return service_metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_report_views_and_autosave_outcomes_are_counted() -> None:
    views = value("titan_report_views_total", kind="report")
    service_metrics.record_report_view("report")
    service_metrics.record_report_view("report")
    service_metrics.record_report_view("dashboard")
    assert value("titan_report_views_total", kind="report") == views + 2
    final = value("titan_autosave_snapshots_total", reason="final snapshot", outcome="committed")
    service_metrics.record_snapshot("final snapshot", "committed")
    assert value("titan_autosave_snapshots_total", reason="final snapshot", outcome="committed") == final + 1
    service_metrics.record_push("rejected")
    text = service_metrics.exposition().decode()
    assert 'titan_autosave_pushes_total{outcome="rejected"}' in text
    assert 'titan_report_views_total{kind="dashboard"}' in text


def test_dask_clusters_and_running_workers_by_user() -> None:
    now = datetime.now(UTC)

    def container(cid: str, user: str, cluster: str, role: str, running: bool = True) -> DaskContainer:
        return DaskContainer(id=cid, user=user, cluster=cluster, role=role, server="", cores=1, memory=1,
                             started=now, running=running)

    listing = [container("1", "alice", "a", "scheduler"), container("2", "alice", "a", "worker"),
               container("3", "alice", "a", "worker"), container("4", "alice", "b", "scheduler"),
               container("5", "bob", "c", "scheduler"), container("6", "bob", "c", "worker", running=False)]
    old = service_metrics.DASK.source
    service_metrics.DASK.source = lambda: listing
    try:
        found = samples(service_metrics.exposition())
    finally:
        service_metrics.DASK.source = old
    assert found[("titan_dask_clusters", (("user", "alice"),))] == 2
    assert found[("titan_dask_workers", (("user", "alice"),))] == 2
    assert found[("titan_dask_clusters", (("user", "bob"),))] == 1
    assert found[("titan_dask_workers", (("user", "bob"),))] == 0
