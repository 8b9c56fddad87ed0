"""GPUs for Dask workers: the ``worker_gpus`` option, and the backend claiming each worker's GPUs
from the spawner's own allocator (a temporary sqlite file, the inventory from the real H100
capture) before its container is created, and giving them back; the hub's reconcile keeps them.

Docker is replaced by FakeEngine (tests/fakes.py): these tests stop at the container spec the
backend hands the engine (the GPUs, the ``titan.gpus`` label) and the Docker arguments made of it.
"""

from __future__ import annotations

import asyncio
import logging
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from dask_gateway_server.backends.base import Backend, PublicException
from dask_gateway_server.backends.db_base import DataManager, JobStatus
from dask_gateway_server.models import User
from traitlets.config import Config

from core.engine.base import ContainerInfo
from core.engine.docker import create_arguments
from core.gpu import pool
from core.gpu.allocator import GpuUnavailable
from core.labels import parse_worker_gpu_owner, worker_gpu_owner, worker_gpu_owner_from_labels
from core.profiles import ProfileError, load_profiles
from core.settings import load_settings
from gateway import routes
from gateway.backend import DockerBackend
from gateway.configure import GPU_DB_FILE, configure
from gateway.options import OptionsError, dask_settings, options_spec, parse_request, resolve_gpu_type
from spawner import docker as spawner_docker
from spawner.gpu_owners import live_gpu_owners
from tests.fakes import FakeEngine
from tests.unit.shipped import IMAGES, shipped_profiles

FIXTURE_XML = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "h100" / "nvidia-smi-q.xml"
H100_UUID = "GPU-18eaba93-88f3-2a85-643f-427bd2819efb"
GPU_TYPES = {"T4": {"match": "\\bT4\\b"}, "H100": {"match": "H100"}}
DASK = {
    "worker_cores": {"choices": [1]},
    "worker_memory": {"choices": ["1G"]},
    "worker_gpus": {"choices": [0, 1, 2], "default": 0},
    "scheduler": {"cores": 0.5, "memory": "512M"},
    "limits": {"max_clusters": 4, "max_cores": 8, "max_memory": "8G", "max_workers": 3},
}


# ---- the option ---------------------------------------------------------------------------

@pytest.fixture
def settings() -> Any:
    return dask_settings(DASK, ["T4", "H100"])


def test_shipped_profiles_offer_worker_gpus_of_their_gpu_types() -> None:
    profiles = shipped_profiles()
    settings = dask_settings(profiles.dask, profiles.gpu_types)
    assert settings.default_gpus == 0 and 1 in settings.worker_gpus
    assert set(settings.gpu_types) == set(profiles.gpu_types)


def test_worker_gpus_default_to_none_and_accept_numbers_or_digits(settings: Any) -> None:
    request = parse_request(settings, {}, 0)
    assert (request.worker_gpus, request.worker_gpu_type) == (0, "")
    assert parse_request(settings, {"worker_gpus": "1", "worker_gpu_type": "T4"}, 0).worker_gpus == 1
    assert parse_request(settings, {"worker_gpus": 2}, 0).worker_gpus == 2


@pytest.mark.parametrize(("options", "message"), [
    ({"worker_gpus": 3}, "worker_gpus=3 is not offered. Choose one of: 0, 1, 2."),
    ({"worker_gpus": -1}, "worker_gpus=-1 is not offered"),
    ({"worker_gpus": True}, "worker_gpus must be a whole number"),
    ({"worker_gpus": 1.5}, "worker_gpus must be a whole number"),
    ({"worker_gpu_type": "V100"}, "worker_gpu_type='V100' is not offered. Choose one of: T4, H100"),
    ({"worker_gpu_type": 4}, "worker_gpu_type must be a GPU type name"),
    ({"worker_gpuz": 1}, "Unknown cluster option(s): worker_gpuz"),
])
def test_bad_gpu_options_are_refused(settings: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionsError) as raised:
        parse_request(settings, options, 0)
    assert message in str(raised.value)


def test_the_gpu_type_is_the_one_asked_for_else_the_servers(settings: Any) -> None:
    asked = parse_request(settings, {"worker_gpus": 1, "worker_gpu_type": "T4"}, 0)
    assert resolve_gpu_type(settings, asked, "H100").worker_gpu_type == "T4"
    default = parse_request(settings, {"worker_gpus": 1}, 0)
    assert resolve_gpu_type(settings, default, "H100").worker_gpu_type == "H100"
    with pytest.raises(OptionsError, match="your server has no GPU, so pass worker_gpu_type, one of: T4, H100"):
        resolve_gpu_type(settings, default, None)
    with pytest.raises(OptionsError, match="A100 is not offered to Dask workers"):
        resolve_gpu_type(settings, default, "A100")
    none = parse_request(settings, {"worker_gpu_type": "T4"}, 0)  # no GPUs: no type
    assert resolve_gpu_type(settings, none, "H100").worker_gpu_type == ""


@pytest.mark.parametrize(("raw", "types", "message"), [
    ({"worker_gpus": {"choices": [0, 1], "default": 2}}, ["T4"], "default 2 is not one of the choices"),
    ({"worker_gpus": {"choices": [0, 1], "types": ["V100"]}}, ["T4"], "V100 not in gpu_types"),
])
def test_inconsistent_gpu_sections_are_refused(raw: dict[str, Any], types: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dask_settings(raw, types)


@pytest.mark.parametrize("section", ["{worker_gpus: {choices: [0, 17]}}", "{worker_gpus: {choices: [1], colour: x}}"])
def test_the_schema_rejects_bad_worker_gpus(tmp_path: Path, section: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"profiles: [{{display_name: S, image: minimal, resources: {{cpu: 1, memory: 1G}}}}]\n"
                    f"dask: {section}\n")
    with pytest.raises(ProfileError, match=r"dask\.worker_gpus"):
        load_profiles([path], IMAGES)


def test_the_spec_shows_gpu_fields_only_when_offered(settings: Any) -> None:
    spec = {f["field"]: f for f in options_spec(settings, 0).get_specification()}
    assert spec["worker_gpus"]["spec"] == {"type": "int", "min": 0, "max": 2}
    assert spec["worker_gpu_type"]["spec"]["options"] == ["", "T4", "H100"]
    plain = {f["field"] for f in options_spec(dask_settings({}, ["T4"]), 0).get_specification()}
    assert "worker_gpus" not in plain


def test_owner_keys_of_workers_are_distinct_from_servers() -> None:
    key = worker_gpu_owner("alice", "c0ffee", "w1")
    assert key == "alice/dask/c0ffee/w1" and parse_worker_gpu_owner(key) == ("alice", "c0ffee", "w1")
    assert parse_worker_gpu_owner("alice/dask") is None  # a server named "dask"
    labels = {"titan.owner": "alice", "titan.dask.cluster": "c0ffee", "titan.dask.role": "worker",
              "titan.dask.worker": "w1"}
    assert worker_gpu_owner_from_labels(labels) == key
    assert worker_gpu_owner_from_labels({**labels, "titan.dask.role": "scheduler"}) is None


# ---- the backend and the allocator --------------------------------------------------------

class Queue:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, item: Any) -> None:
        self.items.append(item)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def backend(tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> DockerBackend:
    monkeypatch.setattr(pool, "_allocators", {})
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    document = {
        "gpu_types": GPU_TYPES,
        "profiles": [
            {"display_name": "Small", "image": "minimal", "resources": {"cpu": 1, "memory": "1G"}},
            {"display_name": "GPU", "image": "minimal",
             "resources": {"cpu": 1, "memory": "1G", "gpu": {"type": "H100", "count": 1}}},
        ],
        "dask": DASK,
    }
    (profiles / "p.yaml").write_text(yaml.safe_dump(document))
    made = DockerBackend(deployment="t", profiles_dir=str(profiles), api_url="http://127.0.0.1:1/api",
                         gpu_db_url=f"sqlite:///{tmp_path / 'gpu-allocations.sqlite'}",
                         gpu_inventory_xml=str(FIXTURE_XML), tls_dir=str(tmp_path / "tls"))
    made.db = DataManager()
    made.queue = Queue()
    made.engine = engine
    for user in ("alice", "bob"):  # their running servers: "lab" (no GPU) and "gpu" (the H100)
        server = {"titan.deployment": "t", "titan.owner": user, "titan.profile": "small"}
        engine.add_container(f"cid-{user}-lab", {**server, "titan.server": "lab"})
        engine.add_container(f"cid-{user}-gpu", {**server, "titan.server": "gpu", "titan.profile": "gpu",
                                                 "titan.gpus": H100_UUID})
    return made


async def gpu_cluster(backend: DockerBackend, user: str = "alice", **options: Any) -> Any:
    options = {"worker_gpus": 1, "worker_gpu_type": "H100", **options}
    cluster = backend.db.get_cluster(await backend.start_cluster(User(user), options))
    backend.db.update_cluster(cluster, status=JobStatus.RUNNING)
    return cluster


async def start_worker(backend: DockerBackend, cluster: Any) -> Any:
    worker = backend.db.create_worker(cluster)
    async for state in backend.do_start_worker(worker):
        backend.db.update_worker(worker, state=state)
    backend.db.update_worker(worker, status=JobStatus.SUBMITTED)
    return worker


def allocations(backend: DockerBackend) -> dict[str, str]:
    allocator = backend.gpus()
    assert allocator is not None
    return allocator.allocations()


@pytest.mark.asyncio
@pytest.mark.parametrize(("server", "options", "message"), [
    ("lab", {"worker_gpus": 1}, "your server has no GPU, so pass worker_gpu_type"),
    ("lab", {"worker_gpus": 2, "worker_gpu_type": "H100"}, "worker_gpus=2: this host has only 1 H100 GPU."),
    ("lab", {"worker_gpus": 1, "worker_gpu_type": "T4"}, "worker_gpus=1: this host has no T4 GPUs."),
    ("lab", {"worker_gpus": 5}, "worker_gpus=5 is not offered"),
])
async def test_gpu_requests_the_host_cannot_meet_are_refused_and_start_nothing(
        backend: DockerBackend, server: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(PublicException) as raised:
        await backend.start_cluster(User("alice"), {"server": server, **options})
    assert message in str(raised.value)
    assert backend.db.list_clusters() == []


@pytest.mark.asyncio
async def test_workers_default_to_the_gpu_type_of_their_server(backend: DockerBackend) -> None:
    allocator = backend.gpus()
    assert allocator is not None
    allocator.allocate("H100", 1, "alice/gpu")  # the server holds the H100
    cluster = await gpu_cluster(backend, server="gpu", worker_gpu_type="")
    assert (cluster.config.worker_gpus, cluster.config.worker_gpu_type) == (1, "H100")
    assert cluster.options["worker_gpu_type"] == "H100"


@pytest.mark.asyncio
async def test_each_worker_claims_its_gpu_before_its_container_and_gives_it_back(
        backend: DockerBackend, engine: FakeEngine, caplog: pytest.LogCaptureFixture) -> None:
    cluster = await gpu_cluster(backend, server="lab")
    worker = await start_worker(backend, cluster)
    owner = f"alice/dask/{cluster.name}/{worker.name}"
    assert allocations(backend) == {H100_UUID: owner}
    spec = engine.created[-1]
    assert spec.gpus == (H100_UUID,)
    assert create_arguments(spec)[1]["device_requests"] == [
        {"driver": "nvidia", "device_ids": [H100_UUID], "capabilities": [["gpu"]]}]
    assert spec.labels["titan.gpus"] == H100_UUID
    assert worker_gpu_owner_from_labels(spec.labels) == owner  # the key the hub derives at a restart
    assert spec.environment["NVIDIA_VISIBLE_DEVICES"] == H100_UUID
    assert list(spec.command[-2:]) == ["--resources", "GPU=1"]

    # The only H100 is taken: the next worker is refused with the reason, and no container is made.
    second = backend.db.create_worker(cluster)
    with caplog.at_level(logging.WARNING), pytest.raises(GpuUnavailable, match="No H100 GPU is free: 0 of 1 free"):
        await anext(backend.do_start_worker(second))
    assert len(engine.created) == 1
    assert "cannot start: No H100 GPU is free" in caplog.text

    await backend.do_stop_worker(worker)
    assert allocations(backend) == {}
    assert engine.removed == ["id-1"] and "id-1" not in engine.containers


@pytest.mark.asyncio
async def test_a_worker_that_fails_to_start_gives_its_gpu_back(backend: DockerBackend, engine: FakeEngine) -> None:
    cluster = await gpu_cluster(backend, server="lab")
    engine.fail("start", RuntimeError('could not select device driver "nvidia" with capabilities: [[gpu]]'))
    worker = backend.db.create_worker(cluster)
    held: list[dict[str, str]] = []

    async def run() -> None:
        async for state in backend.do_start_worker(worker):
            held.append(allocations(backend))
            backend.db.update_worker(worker, state=state)

    with pytest.raises(RuntimeError, match="nvidia"):
        await run()
    assert held == [{H100_UUID: f"alice/dask/{cluster.name}/{worker.name}"}]  # held at the checkpoint
    assert allocations(backend) == {}
    await backend.do_stop_worker(worker)  # what the base class does next: nothing left to free
    assert allocations(backend) == {}


@pytest.mark.asyncio
async def test_stopping_a_cluster_frees_all_of_its_workers_gpus(backend: DockerBackend) -> None:
    cluster = await gpu_cluster(backend, server="lab")
    other = await gpu_cluster(backend, server="lab", worker_gpus=0)
    await start_worker(backend, cluster)
    await backend.do_stop_cluster(other)
    assert len(allocations(backend)) == 1
    await backend.do_stop_cluster(cluster)  # bulk shutdown: do_stop_worker is not called
    assert allocations(backend) == {}


def heartbeat(count: int) -> dict[str, Any]:
    return {"count": count, "active_workers": [], "closing_workers": [], "closed_workers": [],
            "scheduler_address": "tls://127.0.0.1:1", "dashboard_address": "", "api_address": "http://127.0.0.1:2"}


@pytest.mark.asyncio
async def test_workers_are_only_asked_for_when_their_gpus_are_free(
        backend: DockerBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    async def record(self: Backend, cluster: Any, msg: dict[str, Any]) -> None:
        sent.append(msg)

    monkeypatch.setattr(Backend, "forward_message_to_scheduler", record)
    cluster = await gpu_cluster(backend, server="lab")
    allocator = backend.gpus()
    assert allocator is not None
    allocator.allocate("H100", 1, "bob/train")  # another user's server holds the H100
    clip = routes._Clip(requested=2)
    token = routes._clip.set(clip)
    try:
        await backend.forward_message_to_scheduler(cluster.to_model(), {"op": "scale", "count": 2})
    finally:
        routes._clip.reset(token)
    assert sent[-1] == {"op": "scale", "count": 2}  # the request stands ...
    assert "needs 1 H100 GPU(s) and 0 of 1 are free: 0 of the 2 workers can start now" in clip.notes[0]
    await backend.on_cluster_heartbeat(cluster.name, heartbeat(2))
    assert cluster.count == 0  # ... but no worker is made to fail for want of a GPU
    allocator.release("bob/train")
    await backend.on_cluster_heartbeat(cluster.name, heartbeat(2))
    assert cluster.count == 1


@pytest.mark.asyncio
async def test_the_gateway_frees_gpus_of_workers_that_are_gone_and_nothing_else(backend: DockerBackend) -> None:
    allocator = backend.gpus()
    assert allocator is not None
    cluster = await gpu_cluster(backend, server="lab")
    worker = await start_worker(backend, cluster)
    await backend.worker_gpus.reap(backend.db)
    assert allocations(backend) == {H100_UUID: f"alice/dask/{cluster.name}/{worker.name}"}  # active: kept
    backend.db.update_worker(worker, status=JobStatus.FAILED)
    await backend.worker_gpus.reap(backend.db)
    assert allocations(backend) == {}
    allocator.allocate("H100", 1, "carol/dask")  # a server named "dask" is the hub's business
    await backend.worker_gpus.reap(backend.db)
    assert allocations(backend) == {H100_UUID: "carol/dask"}


# ---- the hub's reconcile ------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("state", ["running", "created", "exited"])
async def test_a_hub_restart_keeps_the_gpu_of_a_live_dask_worker(
        backend: DockerBackend, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    cluster = await gpu_cluster(backend, server="lab")
    await start_worker(backend, cluster)
    held = allocations(backend)
    spec = engine.created[-1]
    hub_engine = FakeEngine()
    hub_engine.add_container("srv", {"titan.deployment": "t", "titan.owner": "alice", "titan.server": "lab",
                                     "titan.profile": "small"})
    hub_engine.add_container("w", spec.labels, state=state)
    hub_engine.add_container("s", {**spec.labels, "titan.dask.role": "scheduler"})
    hub = types.SimpleNamespace(gpu_db_url=backend.gpu_db_url, gpu_inventory_xml=backend.gpu_inventory_xml,
                                profile_set=backend.profile_set(), log=logging.getLogger("hub"), engine=hub_engine,
                                deployment="t")
    monkeypatch.setattr(pool, "_allocators", {})  # a new hub process: its allocator reconciles at first use
    allocator = await spawner_docker.TitanDockerSpawner.gpus(hub)  # type: ignore[arg-type]
    assert allocator.allocations() == (held if state != "exited" else {})


def test_live_gpu_owners_lists_running_servers_and_live_workers() -> None:
    worker = {"titan.owner": "alice", "titan.dask.cluster": "c", "titan.dask.role": "worker",
              "titan.dask.worker": "w", "titan.dask.server": "lab"}
    listing = [
        ContainerInfo("1", "a", "i", "running", {"titan.owner": "bob", "titan.server": "", "titan.gpus": "GPU-1"}),
        ContainerInfo("2", "b", "i", "exited", {"titan.owner": "bob", "titan.server": "old", "titan.gpus": "GPU-2"}),
        ContainerInfo("3", "c", "i", "running", {**worker, "titan.gpus": "GPU-3,GPU-4"}),
        ContainerInfo("4", "d", "i", "running", {**worker, "titan.dask.worker": "v"}),  # no GPU
    ]
    assert live_gpu_owners(listing) == {"bob/": ["GPU-1"], "alice/dask/c/w": ["GPU-3", "GPU-4"]}


def test_gpu_calls_do_not_block_when_no_database_is_configured(tmp_path: Path) -> None:
    plain = DockerBackend(deployment="t", api_url="http://127.0.0.1:1/api")
    assert plain.gpus() is None
    asyncio.run(plain.worker_gpus.reap(DataManager()))


def test_the_gateway_uses_the_spawners_gpu_database_and_inventory(tmp_path: Path) -> None:
    path = tmp_path / "titan.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"),
                                    "spawner": {"gpu_inventory_xml": str(FIXTURE_XML)}}))
    settings = load_settings(path, environ={})
    c = Config()
    configure(c, settings, "10.213.0.1")
    assert c.DockerBackend.gpu_db_url == f"sqlite:///{settings.state_dir / GPU_DB_FILE}"
    assert c.DockerBackend.gpu_inventory_xml == str(FIXTURE_XML)
    # jupyterhub_config.py gives the spawner the same file.
    hub_config = (Path(__file__).resolve().parents[2] / "jupyterhub_config.py").read_text()
    assert f"gpu_db_url = f\"sqlite:///{{state / '{GPU_DB_FILE}'}}\"" in hub_config
