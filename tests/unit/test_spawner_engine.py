"""The spawner's own calls go through the engine (core.engine): the image check, the user's
network made at a start and removed with their last container, the host's size. FakeEngine
stands in for Docker; DockerSpawner's own create and start are not reached."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from tornado import web

from core.engine.spec import ContainerSpec
from core.gpu import pool
from spawner.docker import TitanDockerSpawner
from tests.fakes import FakeEngine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"


@pytest.fixture
def spawner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TitanDockerSpawner:
    monkeypatch.setattr(pool, "_allocators", {})
    monkeypatch.setattr(TitanDockerSpawner, "_engine_capacity", None)
    user = types.SimpleNamespace(name="alice", url="/user/alice/", groups=[], orm_spawners={}, spawners={})
    made = TitanDockerSpawner(user=user, deployment="t", gpu_db_url=f"sqlite:///{tmp_path / 'gpu.sqlite'}",
                              gpu_inventory_xml=str(FIXTURES / "h100" / "nvidia-smi-q.xml"))
    made.engine = FakeEngine(images=["titan/minimal:1"], cpus=6, memory=12 * 1024**3)
    made._progress_events = []
    return made


def engine_of(spawner: TitanDockerSpawner) -> FakeEngine:
    assert isinstance(spawner.engine, FakeEngine)
    return spawner.engine


@pytest.mark.asyncio
async def test_an_image_not_built_here_is_a_clear_error(spawner: TitanDockerSpawner) -> None:
    await spawner.pull_image("titan/minimal:1")
    assert spawner._progress_events[-1]["message"] == "Image titan/minimal:1 is present (1 GiB)"
    with pytest.raises(web.HTTPError) as raised:
        await spawner.pull_image("titan/gone:1")
    assert raised.value.status_code == 500 and "is not built on this host" in str(raised.value.log_message)


@pytest.mark.asyncio
async def test_the_users_network_is_made_at_start_and_goes_with_their_last_container(
        spawner: TitanDockerSpawner) -> None:
    engine = engine_of(spawner)
    await spawner._ensure_network()
    assert list(engine.networks) == ["t-user-alice"]
    server = await engine.create(ContainerSpec(name="t-alice", image="titan/minimal:1", network="t-user-alice"))
    await spawner._release_resources()  # another server of alice's is still on it
    assert list(engine.networks) == ["t-user-alice"]
    await engine.remove(server)
    await spawner._release_resources()
    assert engine.networks == {}


@pytest.mark.asyncio
async def test_the_host_size_comes_from_the_engine(spawner: TitanDockerSpawner) -> None:
    capacity = await spawner.host_capacity()
    assert (capacity.cpus, capacity.memory) == (6, 12 * 1024**3)
    assert ("info", None) in engine_of(spawner).calls
