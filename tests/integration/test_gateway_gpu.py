"""Dask workers with GPUs, end to end on a host without GPUs: a real hub and gateway whose GPU
inventory is the real H100 capture (tests/fixtures/gpu/h100), a real user server, a real cluster.

This machine has no GPU and no NVIDIA container runtime, so the Docker part stops at the
request the gateway builds: the engine itself refuses the worker's `nvidia` device request,
which proves the request reached it, and the test checks the H100 is free again afterwards (in
the allocation table the spawner and the gateway share) and no container is left.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.hub import Hub, remove_deployment, start_hub, stop_hub
from tests.integration.test_gateway import dask_containers, run_in_server, server_container

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

FIXTURE_XML = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "h100" / "nvidia-smi-q.xml"
H100_UUID = "GPU-18eaba93-88f3-2a85-643f-427bd2819efb"

NEW_GPU_CLUSTER = """
from dask_gateway import Gateway

gateway = Gateway()
cluster = gateway.new_cluster(worker_gpus=1, worker_gpu_type="H100", worker_cores="0.5", worker_memory="512M",
                              shutdown_on_close=False)
cluster.scale(1)
print(json.dumps({"name": cluster.name}))
"""


@pytest.fixture(scope="module")
def gpu_hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("gpugateway")
    hub = start_hub(root, {"spawner": {"gpu_inventory_xml": str(FIXTURE_XML)}, "gateway": {"server_check_period": 2}})
    try:
        yield hub
    finally:
        stop_hub(hub)
        remove_deployment(hub.deployment)


def log(hub: Hub) -> str:
    return hub.log_path.read_text(errors="replace")


def gpu_rows(hub: Hub) -> list[tuple[str, str]]:
    with sqlite3.connect(hub.root / "state" / "gpu-allocations.sqlite") as db:
        return db.execute("SELECT uuid, owner FROM titan_gpu_allocations").fetchall()


def test_a_gpu_worker_draws_from_the_spawners_allocator_and_gives_it_back(gpu_hub: Hub) -> None:
    user = "g" + secrets.token_hex(3)
    gpu_hub.admin.create_user(user)
    gpu_hub.admin.spawn(user, "", {"profile": "small", "image": "minimal"})
    name = run_in_server(server_container(gpu_hub, user), NEW_GPU_CLUSTER)["name"]
    owner = f"{user}/dask/{name}/"
    # The worker claimed the H100 in the shared table, and the engine refused its exact DeviceRequest.
    claim = wait_for(lambda: [line for line in log(gpu_hub).splitlines() if f"GPUs for Dask worker {owner}" in line],
                     60, "the worker's GPU claim")
    assert claim[0].endswith(H100_UUID)
    wait_for(lambda: 'could not select device driver "nvidia"' in log(gpu_hub), 60, "the engine's refusal")
    # Each failed worker gives the H100 back; after the start-failure limit the cluster fails and goes.
    wait_for(lambda: not dask_containers(gpu_hub, user), 120, "the cluster's containers to go")
    wait_for(lambda: gpu_rows(gpu_hub) == [], 30, "the H100 to be free again")
    form = gpu_hub.login(user).get(f"{gpu_hub.url}/hub/spawn/{user}/gpuform", timeout=30).text
    assert "H100: 1 of 1 free" in form
    gpu_hub.admin.stop(user)
