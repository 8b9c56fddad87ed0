"""The Docker backend's own logic with FakeEngine (tests/fakes.py) in place of Docker and a small
double of the scheduler: limits checked atomically, scale and heartbeat clipping, stopping a
server's clusters, reaping."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from dask_gateway_server.backends.base import Backend, PublicException
from dask_gateway_server.backends.db_base import DataManager, JobStatus
from dask_gateway_server.models import User

from core.engine.spec import Mount
from gateway import routes
from gateway.backend import DockerBackend
from tests.fakes import FakeEngine

GIB = 1024**3
DASK = {
    "worker_cores": {"choices": [0.5, 1], "default": 1},
    "worker_memory": {"choices": ["512M", "1G"], "default": "1G"},
    "scheduler": {"cores": 0.5, "memory": "512M"},
    "limits": {"max_clusters": 2, "max_cores": 4, "max_memory": "8G", "max_workers": 3},
    "group_limits": {"big": {"max_clusters": 4, "max_workers": 10}},
}


class Queue:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, item: Any) -> None:
        self.items.append(item)


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    document = {"profiles": [{"display_name": "Small", "image": "minimal", "resources": {"cpu": 1, "memory": "1G"}}],
                "dask": DASK}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


@pytest.fixture
def forwarded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def record(self: Backend, cluster: Any, msg: dict[str, Any]) -> None:
        sent.append(msg)

    monkeypatch.setattr(Backend, "forward_message_to_scheduler", record)
    return sent


SERVERS = [("alice", ""), ("alice", "lab"), ("alice", "other"), ("alice", "old"), ("bob", ""), ("bob", "lab"),
           ("carol", "")]


def serve(engine: FakeEngine, user: str, server: str) -> str:
    """A running server of ``user`` (as the hub starts them), id ``cid-<user>-<server>``."""
    container_id = f"cid-{user}-{server}"
    engine.add_container(container_id, {"titan.deployment": "t", "titan.owner": user, "titan.server": server,
                                        "titan.profile": "small"})
    return container_id


def make_backend(profiles: Path, engine: FakeEngine | None = None) -> DockerBackend:
    backend = DockerBackend(deployment="t", profiles_dir=str(profiles), api_url="http://127.0.0.1:1/api",
                            tls_dir=str(profiles / "tls"))
    backend.db = DataManager()
    backend.queue = Queue()
    # Latency in every engine call lets concurrent requests interleave at the server's look-up.
    backend.engine = engine = engine or FakeEngine(latency=0.01)
    for user, server in SERVERS:
        serve(engine, user, server)
    return backend


def fake(backend: DockerBackend) -> FakeEngine:
    assert isinstance(backend.engine, FakeEngine)
    return backend.engine


@pytest.mark.asyncio
async def test_new_cluster_config_comes_from_the_profile_data_and_the_server(profiles: Path) -> None:
    backend = make_backend(profiles)
    name = await backend.start_cluster(User("alice"), {"server": "lab", "worker_memory": "512M"})
    cluster = backend.db.get_cluster(name)
    config = cluster.config
    assert (config.image, config.origin_server, config.origin_container) == ("titan/minimal:1", "lab", "cid-alice-lab")
    assert (config.worker_cores, config.worker_memory) == (1.0, GIB // 2)
    assert (config.scheduler_cores, config.scheduler_memory) == (0.5, GIB // 2)
    assert config.user_limits == {"max_clusters": 2, "max_cores": 4.0, "max_memory": 8 * GIB, "max_workers": 3}
    assert cluster.options == {"server": "lab", "worker_cores": 1.0, "worker_memory": "512M", "idle_timeout": 0.0,
                               "worker_gpus": 0, "worker_gpu_type": ""}
    assert backend.queue.items == [cluster]


@pytest.mark.asyncio
@pytest.mark.parametrize(("options", "message"), [
    ({"worker_memory": "64G"}, "worker_memory='64G' is not offered"),
    ({"nope": 1}, "Unknown cluster option(s): nope"),
    ({"server": "gone"}, "your server 'gone' is not running. Start it"),
])
async def test_bad_requests_are_refused_and_create_nothing(profiles: Path, options: dict[str, Any],
                                                           message: str) -> None:
    backend = make_backend(profiles)
    with pytest.raises(PublicException) as raised:
        await backend.start_cluster(User("alice"), options)
    assert message in str(raised.value)
    assert backend.db.list_clusters() == []


@pytest.mark.asyncio
async def test_concurrent_requests_cannot_pass_max_clusters(profiles: Path) -> None:
    backend = make_backend(profiles)
    results = await asyncio.gather(*(backend.start_cluster(User("alice"), {}) for _ in range(6)),
                                   return_exceptions=True)
    created = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, PublicException)]
    assert len(created) == 2 and len(refused) == 4
    assert all("(max_clusters)" in str(r) for r in refused)
    # Another user is not affected; a member of `big` gets the group's limit.
    await backend.start_cluster(User("bob"), {})
    big = await asyncio.gather(*(backend.start_cluster(User("carol", groups=["big"]), {}) for _ in range(5)),
                               return_exceptions=True)
    assert sum(isinstance(r, str) for r in big) == 4


@pytest.mark.asyncio
async def test_stopped_clusters_free_their_place(profiles: Path) -> None:
    backend = make_backend(profiles)
    first = await backend.start_cluster(User("alice"), {})
    await backend.start_cluster(User("alice"), {})
    await backend.stop_cluster(first)
    await backend.start_cluster(User("alice"), {})


async def running_cluster(backend: DockerBackend, user: str = "alice", **options: Any) -> Any:
    cluster = backend.db.get_cluster(await backend.start_cluster(User(user), options))
    backend.db.update_cluster(cluster, status=JobStatus.RUNNING)
    return cluster


@pytest.mark.asyncio
async def test_heartbeats_are_clipped_to_what_the_users_other_clusters_leave(profiles: Path) -> None:
    backend = make_backend(profiles)
    one = await running_cluster(backend)
    two = await running_cluster(backend)
    await backend.on_cluster_heartbeat(one.name, heartbeat(2))
    assert one.count == 2
    await backend.on_cluster_heartbeat(two.name, heartbeat(3))
    assert two.count == 1  # max_workers=3, two held by the other cluster
    await backend.on_cluster_heartbeat(one.name, heartbeat(0))
    await backend.on_cluster_heartbeat(two.name, heartbeat(3))
    assert (one.count, two.count) == (0, 3)


def heartbeat(count: int) -> dict[str, Any]:
    return {"count": count, "active_workers": [], "closing_workers": [], "closed_workers": [],
            "scheduler_address": "tls://127.0.0.1:1", "dashboard_address": "", "api_address": "http://127.0.0.1:2"}


@pytest.mark.asyncio
async def test_scale_is_clipped_reserved_and_the_user_told(profiles: Path, forwarded: list[dict[str, Any]]) -> None:
    backend = make_backend(profiles)
    one = await running_cluster(backend)
    two = await running_cluster(backend)
    clip = routes._Clip(requested=5)
    token = routes._clip.set(clip)
    try:
        await backend.forward_message_to_scheduler(one.to_model(), {"op": "scale", "count": 3})
        assert forwarded[-1] == {"op": "scale", "count": 3}
        assert clip.notes and "Scale request of 5 workers exceeds" in clip.notes[0]
        assert "max_workers=3" in clip.notes[0]
        # Before any heartbeat, the reservation already counts against the other cluster.
        clip.notes.clear()
        clip.requested = 2
        await backend.forward_message_to_scheduler(two.to_model(), {"op": "scale", "count": 2})
        assert forwarded[-1] == {"op": "scale", "count": 0}
        assert "Scaling to 0 instead" in clip.notes[0]
        # Adaptive maximum too.
        clip.notes.clear()
        clip.requested = 3
        await backend.forward_message_to_scheduler(two.to_model(), {"op": "adapt", "minimum": 1, "maximum": 3,
                                                                     "active": True})
        assert forwarded[-1] == {"op": "adapt", "minimum": 0, "maximum": 0, "active": True}
        assert "Adapt maximum of 3 workers" in clip.notes[0]
    finally:
        routes._clip.reset(token)


@pytest.mark.asyncio
async def test_stopping_a_server_stops_only_its_clusters(profiles: Path) -> None:
    backend = make_backend(profiles)
    lab = await running_cluster(backend, server="lab")
    other = await running_cluster(backend, server="other")
    bobs = await running_cluster(backend, user="bob", server="lab")
    stopped = await backend.stop_server_clusters("alice", "lab", wait=0)
    assert stopped == [lab.name]
    assert lab.target == JobStatus.STOPPED
    assert other.target == bobs.target == JobStatus.RUNNING


@pytest.mark.asyncio
async def test_reaping_stops_clusters_whose_server_is_gone_and_removes_orphans(profiles: Path) -> None:
    backend = make_backend(profiles)
    alive = await running_cluster(backend, server="lab")
    orphaned = await running_cluster(backend, server="old")
    worker = backend.db.create_worker(alive)
    engine = fake(backend)
    engine.containers.pop("cid-alice-old")  # that server is gone
    dask = {"titan.deployment": "t", "titan.dask.cluster": alive.name}
    engine.add_container("s1", {**dask, "titan.dask.role": "scheduler"})
    engine.add_container("w1", {**dask, "titan.dask.role": "worker", "titan.dask.worker": worker.name})
    engine.add_container("w2", {**dask, "titan.dask.role": "worker", "titan.dask.worker": "unknown"})
    engine.add_container("x1", {**dask, "titan.dask.cluster": "no-such-cluster", "titan.dask.role": "scheduler"},
                         state="exited")
    engine.add_container("y1", {"titan.deployment": "other", "titan.dask.cluster": "no-such-cluster"})
    await backend.reap()
    assert orphaned.target == JobStatus.STOPPED
    assert alive.target == JobStatus.RUNNING
    assert sorted(engine.removed) == ["w2", "x1"]  # not another deployment's, not the servers'
    assert "y1" in engine.containers


@pytest.mark.asyncio
async def test_retired_workers_go_once_their_container_exits_not_at_the_next_heartbeat(profiles: Path) -> None:
    backend = make_backend(profiles)
    cluster = await running_cluster(backend)
    retiring, busy, working = (backend.db.create_worker(cluster) for _ in range(3))
    for worker, cid in ((retiring, "w1"), (busy, "w2"), (working, "w3")):
        backend.db.update_worker(worker, state={"container_id": cid}, status=JobStatus.RUNNING)
    backend.db.update_workers([(retiring, {"close_expected": True}), (busy, {"close_expected": True})])
    engine = fake(backend)
    for cid, state in {"w1": "exited", "w2": "running", "w3": "running"}.items():
        engine.add_container(cid, {"titan.deployment": "t", "titan.dask.cluster": cluster.name}, state=state)
    await backend.reap_closed_workers()
    # Only the retired worker whose container exited is stopped (what a heartbeat listing it as closed does).
    assert (retiring.target, busy.target, working.target) == (JobStatus.STOPPED, JobStatus.RUNNING,
                                                               JobStatus.RUNNING)
    assert backend.queue.items[-1] is retiring
    # No worker retiring: no Docker call at all.
    backend.db.update_workers([(busy, {"close_expected": False})])
    backend.db.update_worker(retiring, status=JobStatus.STOPPED)
    engine.calls.clear()
    await backend.reap_closed_workers()
    assert engine.calls == []


@pytest.mark.asyncio
async def test_a_clusters_tls_files_go_with_it(profiles: Path, tmp_path: Path) -> None:
    backend = make_backend(profiles)
    backend.tls_dir = str(tmp_path / "state" / "dask-tls")  # before first use
    cluster = await running_cluster(backend)
    other = await running_cluster(backend)

    backend.container_user = f"{os.geteuid()}:{os.getegid()}"
    for c in (cluster, other):
        async for state in backend.do_start_cluster(c):
            backend.db.update_cluster(c, state=state)
    root = tmp_path / "state" / "dask-tls"
    assert os.stat(root).st_mode & 0o777 == 0o700
    assert (root / cluster.name / "dask.pem").read_bytes() == cluster.tls_key
    spec = fake(backend).specs[cluster.state["container_id"]]
    assert spec.mounts == (Mount(str(root / cluster.name), "/run/dask-gateway", read_only=True),)
    assert cluster.tls_key not in str(spec).encode()  # the key is in a file, not in the spec
    await backend.do_stop_cluster(cluster)
    assert cluster.state["container_id"] in fake(backend).removed
    assert sorted(p.name for p in root.iterdir()) == [other.name]
    # Left behind by a crash: the reaper removes the directories of clusters that are gone or stopped.
    (root / "gone").mkdir()
    backend.db.update_cluster(other, status=JobStatus.STOPPED)
    await backend.reap()
    assert list(root.iterdir()) == []
