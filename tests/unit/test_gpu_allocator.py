"""GpuAllocator: distinct units per server, safe across threads, allocators and processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, select

from core.gpu.allocator import (
    GpuAllocator,
    GpuUnavailable,
    allocations_table,
    docker_device_request,
    gpu_label_value,
    parse_gpu_label,
)
from core.gpu.inventory import GpuUnit
from core.labels import LABEL_GPUS

ROOT = Path(__file__).resolve().parents[2]
H100 = GpuUnit(uuid="GPU-18eaba93-88f3-2a85-643f-427bd2819efb", index="0", model="NVIDIA H100 80GB HBM3",
               memory_mib=81559, mig_mode=False)


def units(gpu_type: str, count: int) -> list[GpuUnit]:
    return [GpuUnit(uuid=f"GPU-{gpu_type.lower()}-{i:04d}", index=str(i), model=f"NVIDIA {gpu_type}",
                    memory_mib=15360, mig_mode=False) for i in range(count)]


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "jupyterhub.sqlite"


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


@pytest.fixture
def make_engine(db_file: Path, engines: list[Engine]) -> Callable[[], Engine]:
    def make() -> Engine:
        engine = create_engine(f"sqlite:///{db_file}")
        engines.append(engine)
        return engine
    return make


def race(workers: int, task: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``task(i)`` in ``workers`` threads released at once; (results, errors)."""
    barrier = threading.Barrier(workers)
    results: list[Any] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            result = task(i)
        except BaseException as error:
            with guard:
                errors.append(error)
        else:
            with guard:
                results.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results, errors


# --- concurrency ------------------------------------------------------------------------------

def test_twenty_threads_race_for_four_units(make_engine: Callable[[], Engine]) -> None:
    allocator = GpuAllocator({"T4": units("T4", 4)}, make_engine())
    results, errors = race(20, lambda i: allocator.allocate("T4", 1, f"user{i}/gpu"))
    assert len(results) == 4
    handed = [unit.uuid for result in results for unit in result]
    assert sorted(handed) == [unit.uuid for unit in units("T4", 4)]
    assert len(errors) == 16
    assert all(isinstance(error, GpuUnavailable) for error in errors)
    assert {str(error) for error in errors} == {
        "No T4 GPU is free: 0 of 4 free, 1 requested. Try again when another server stops, "
        "or pick another profile."}
    assert allocator.free_count("T4") == 0
    assert sorted(allocator.allocations()) == sorted(handed)


def test_two_allocators_on_one_database_never_share_a_unit(make_engine: Callable[[], Engine]) -> None:
    inventory = {"T4": units("T4", 4), "A100": units("A100", 3)}
    first, second = GpuAllocator(inventory, make_engine()), GpuAllocator(inventory, make_engine())

    def claim(i: int) -> tuple[str, list[str]]:
        allocator = first if i % 2 else second
        gpu_type, count = ("T4", 1) if i < 14 else ("A100", 2)
        owner = f"user{i}/server"
        return owner, [unit.uuid for unit in allocator.allocate(gpu_type, count, owner)]

    results, errors = race(20, claim)
    handed = [uuid for _owner, uuids in results for uuid in uuids]
    assert len(handed) == len(set(handed))
    assert sorted(uuid for uuid in handed if "t4" in uuid) == [unit.uuid for unit in units("T4", 4)]
    assert len([uuids for _owner, uuids in results if "a100" in uuids[0]]) == 1  # 3 A100s: one pair fits
    assert all(isinstance(error, GpuUnavailable) for error in errors)
    assert len(errors) == 20 - len(results)
    recorded = first.allocations()
    assert recorded == second.allocations()
    assert recorded == {uuid: owner for owner, uuids in results for uuid in uuids}


def test_two_processes_on_one_database_never_share_a_unit(db_file: Path, make_engine: Callable[[], Engine]) -> None:
    GpuAllocator({"T4": units("T4", 4)}, make_engine())  # create the table once, up front
    script = f"""
import json, sys, threading
from sqlalchemy import create_engine
from core.gpu.allocator import GpuAllocator, GpuUnavailable
from core.gpu.inventory import GpuUnit
units = [GpuUnit(uuid=f"GPU-t4-{{i:04d}}", index=str(i), model="NVIDIA T4", memory_mib=15360, mig_mode=False)
         for i in range(4)]
allocator = GpuAllocator({{"T4": units}}, create_engine("sqlite:///{db_file}"))
barrier = threading.Barrier(10)
got, refused = [], []
def claim(i):
    barrier.wait()
    try:
        got.extend(unit.uuid for unit in allocator.allocate("T4", 1, sys.argv[1] + str(i)))
    except GpuUnavailable:
        refused.append(i)
threads = [threading.Thread(target=claim, args=(i,)) for i in range(10)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({{"got": got, "refused": len(refused)}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE, env=env, text=True)
             for name in ("a/", "b/")]
    outputs = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    got = [uuid for output in outputs for uuid in output["got"]]
    assert sorted(got) == [unit.uuid for unit in units("T4", 4)]
    assert sum(output["refused"] for output in outputs) == 16


def test_a_claim_that_collides_at_insert_is_retried(make_engine: Callable[[], Engine]) -> None:
    """Without SQLite's write lock up front, the primary key still stops a double claim."""
    inventory = {"T4": units("T4", 2)}
    engine = make_engine()
    slow, fast = GpuAllocator(inventory, engine), GpuAllocator(inventory, make_engine())
    engine.dialect.name = "sqlite-without-begin-immediate"  # this engine's allocator reads, then inserts
    interfered: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def someone_else_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT") and not interfered:
            interfered.append("x")  # between slow's read of the free list and its insert:
            fast.allocate("T4", 1, "bob/fast")

    got = slow.allocate("T4", 1, "alice/slow")
    assert interfered == ["x"]
    assert [unit.uuid for unit in got] == ["GPU-t4-0001"]
    assert slow.allocations() == {"GPU-t4-0000": "bob/fast", "GPU-t4-0001": "alice/slow"}


# --- single-threaded behaviour ------------------------------------------------------------------

def test_release_frees_units(make_engine: Callable[[], Engine]) -> None:
    allocator = GpuAllocator({"H100": [H100]}, make_engine())
    assert allocator.allocate("H100", 1, "alice/big") == [H100]
    assert (allocator.free_count("H100"), allocator.total_count("H100")) == (0, 1)
    with pytest.raises(GpuUnavailable) as refused:
        allocator.allocate("H100", 1, "bob/big")
    assert str(refused.value) == ("No H100 GPU is free: 0 of 1 free, 1 requested. "
                                  "Try again when another server stops, or pick another profile.")
    assert allocator.release("alice/big") == [H100.uuid]
    assert allocator.release("alice/big") == []
    assert allocator.free_count("H100") == 1
    assert allocator.allocate("H100", 1, "bob/big") == [H100]


def test_allocate_is_idempotent_for_an_owner(make_engine: Callable[[], Engine]) -> None:
    allocator = GpuAllocator({"T4": units("T4", 4)}, make_engine())
    first = allocator.allocate("T4", 2, "alice/x")
    assert allocator.allocate("T4", 2, "alice/x") == first
    assert allocator.free_count("T4") == 2


def test_allocate_tops_up_an_owner_holding_fewer(make_engine: Callable[[], Engine]) -> None:
    allocator = GpuAllocator({"T4": units("T4", 4)}, make_engine())
    one = allocator.allocate("T4", 1, "alice/x")
    three = allocator.allocate("T4", 3, "alice/x")
    assert three[:1] == one
    assert len({unit.uuid for unit in three}) == 3
    assert allocator.free_count("T4") == 1


def test_count_above_one(make_engine: Callable[[], Engine]) -> None:
    allocator = GpuAllocator({"A100": units("A100", 3)}, make_engine())
    pair = allocator.allocate("A100", 2, "alice/train")
    assert len({unit.uuid for unit in pair}) == 2
    with pytest.raises(GpuUnavailable, match=r"^Not enough A100 GPUs are free: 1 of 3 free, 2 requested\. "):
        allocator.allocate("A100", 2, "bob/train")
    assert allocator.free_count("A100") == 1  # the refused claim took nothing
    with pytest.raises(GpuUnavailable, match=r"^This host has only 3 A100 GPUs, and 4 were requested\."):
        allocator.allocate("A100", 4, "carol/train")


def test_unknown_or_absent_type(make_engine: Callable[[], Engine]) -> None:
    allocator = GpuAllocator({"H100": [H100], "T4": []}, make_engine())
    for gpu_type in ("T4", "A100"):
        with pytest.raises(GpuUnavailable) as refused:
            allocator.allocate(gpu_type, 1, "alice/x")
        assert str(refused.value) == f"This host has no {gpu_type} GPU."
        assert (allocator.free_count(gpu_type), allocator.total_count(gpu_type)) == (0, 0)
    assert isinstance(refused.value, RuntimeError)
    with pytest.raises(ValueError, match="at least 1"):
        allocator.allocate("H100", 0, "alice/x")


def test_a_unit_under_two_types_is_refused(make_engine: Callable[[], Engine]) -> None:
    with pytest.raises(ValueError, match="both H100 and Hopper"):
        GpuAllocator({"H100": [H100], "Hopper": [H100]}, make_engine())


def test_attach_records_the_container(make_engine: Callable[[], Engine]) -> None:
    engine = make_engine()
    allocator = GpuAllocator({"T4": units("T4", 2)}, engine)
    allocator.allocate("T4", 2, "alice/x")
    allocator.attach("alice/x", "jupyter-alice-x")
    allocator.attach("nobody/x", "jupyter-nobody")
    with engine.connect() as conn:
        rows = conn.execute(select(allocations_table.c.owner, allocations_table.c.container)).all()
    assert sorted(rows) == [("alice/x", "jupyter-alice-x")] * 2


def test_a_restarted_hub_sees_the_same_allocations(make_engine: Callable[[], Engine]) -> None:
    inventory = {"T4": units("T4", 3)}
    before = GpuAllocator(inventory, make_engine())
    held = before.allocate("T4", 2, "alice/x")
    after = GpuAllocator(inventory, make_engine())
    assert after.allocations() == before.allocations() == {unit.uuid: "alice/x" for unit in held}
    assert after.free_count("T4") == 1
    assert after.allocate("T4", 2, "alice/x") == held
    assert after.held_by("alice/x") == held


def test_reconcile(make_engine: Callable[[], Engine], caplog: pytest.LogCaptureFixture) -> None:
    t4 = units("T4", 4)
    before = GpuAllocator({"T4": t4}, make_engine())
    before.allocate("T4", 1, "alice/live")   # t4[0], container still running
    before.allocate("T4", 1, "bob/crashed")  # t4[1], container gone
    before.allocate("T4", 1, "carol/gone")   # t4[2], GPU removed from the host below
    # After the restart the host has t4[0], t4[1], t4[3]; dave's container runs with t4[3] but the DB lost it.
    after = GpuAllocator({"T4": [t4[0], t4[1], t4[3]]}, make_engine())
    live = {"alice/live": [t4[0].uuid], "dave/adopted": parse_gpu_label(t4[3].uuid), "carol/gone": [t4[2].uuid]}
    with caplog.at_level(logging.INFO, logger="core.gpu.allocator"):
        after.reconcile(live)
    assert after.allocations() == {t4[0].uuid: "alice/live", t4[3].uuid: "dave/adopted"}
    assert after.free_count("T4") == 1
    assert "whose container is gone" in caplog.text
    assert "no longer on this host" in caplog.text
    assert "Adopting GPU" in caplog.text
    assert after.allocate("T4", 1, "erin/new") == [t4[1]]
    assert after.held_by("dave/adopted") == [t4[3]]
    after.reconcile({**live, "erin/new": [t4[1].uuid]})  # running it again changes nothing
    assert after.allocations() == {t4[0].uuid: "alice/live", t4[3].uuid: "dave/adopted", t4[1].uuid: "erin/new"}


def test_reconcile_lets_a_running_container_label_win(make_engine: Callable[[], Engine]) -> None:
    t4 = units("T4", 2)
    allocator = GpuAllocator({"T4": t4}, make_engine())
    allocator.allocate("T4", 1, "alice/x")  # t4[0] in the DB, but bob's running container has it
    allocator.reconcile({"alice/x": [], "bob/y": [t4[0].uuid]})
    assert allocator.allocations() == {t4[0].uuid: "bob/y"}


# --- docker helpers -----------------------------------------------------------------------------

def test_docker_device_request() -> None:
    pair = units("A100", 2)
    assert docker_device_request(pair) == {
        "driver": "nvidia", "device_ids": ["GPU-a100-0000", "GPU-a100-0001"], "capabilities": [["gpu"]]}
    with pytest.raises(ValueError, match="at least one"):
        docker_device_request([])


def test_gpu_label_round_trip() -> None:
    pair = units("A100", 2)
    assert LABEL_GPUS == "titan.gpus"
    assert gpu_label_value(pair) == "GPU-a100-0000,GPU-a100-0001"
    assert parse_gpu_label(gpu_label_value(pair)) == ["GPU-a100-0000", "GPU-a100-0001"]
    assert parse_gpu_label(None) == parse_gpu_label("") == []
