"""GPU profiles end to end on a host without GPUs: the inventory comes from the real H100
capture (tests/fixtures/gpu/h100), and the allocation, the form and the restart are real.

This machine has no GPU and no NVIDIA container runtime, so the Docker part stops at the
request the spawner builds: the engine itself refuses the `nvidia` device request, which
proves the request reached it, and the test checks the GPU is released after that failure.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.hub import Hub, remove_deployment, start_hub, stop_hub

pytestmark = [pytest.mark.docker, pytest.mark.hub]

FIXTURE_XML = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "h100" / "nvidia-smi-q.xml"
H100_UUID = "GPU-18eaba93-88f3-2a85-643f-427bd2819efb"


@pytest.fixture(scope="module")
def gpu_hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("gpuhub")
    hub = start_hub(root, {"spawner": {"gpu_inventory_xml": str(FIXTURE_XML)}})
    try:
        yield hub
    finally:
        stop_hub(hub)
        remove_deployment(hub.deployment)


def gpu_form(hub: Hub, user: str) -> str:
    return hub.login(user).get(f"{hub.url}/hub/spawn/{user}/gpuform", timeout=30).text


def test_form_shows_free_gpus_and_disables_missing_types(gpu_hub: Hub) -> None:
    user = "g" + secrets.token_hex(3)
    html = gpu_form(gpu_hub, user)
    assert "H100: 1 of 1 free" in html
    assert "T4 (unavailable: this host has no NVIDIA T4 GPU)" in html


def test_more_gpus_than_the_host_has_is_refused(gpu_hub: Hub) -> None:
    user = "g" + secrets.token_hex(3)
    gpu_hub.admin.create_user(user)
    response = gpu_hub.admin.api("POST", f"/users/{user}/servers/x", json={"profile": "gpu-small", "gpu_count": "2"})
    assert response.status_code == 400
    assert "needs 2 NVIDIA H100 GPUs; this host has 1" in response.json()["message"]


def test_the_device_request_reaches_the_engine_and_the_gpu_is_released(gpu_hub: Hub) -> None:
    user = "g" + secrets.token_hex(3)
    gpu_hub.admin.create_user(user)
    response = gpu_hub.admin.api("POST", f"/users/{user}/servers/train", json={"profile": "gpu-small"})
    # The engine has no nvidia runtime here: it refuses the exact DeviceRequest Titan built.
    assert response.status_code >= 400
    log = gpu_hub.log_tail(200)
    assert f"GPUs for {user}:train: {H100_UUID}" in log
    assert 'could not select device driver "nvidia"' in log
    wait_for(lambda: f"Released GPUs of {user}:train: {H100_UUID}" in gpu_hub.log_tail(200), 30, "GPU release")
    assert "H100: 1 of 1 free" in gpu_form(gpu_hub, user)


def test_a_restarted_hub_rebuilds_allocations_from_container_labels(gpu_hub: Hub) -> None:
    """A container holding the H100 survives a hub restart: the GPU stays taken, a spawn is refused."""
    holder = subprocess.run(
        ["docker", "run", "-d", "--network", "none", "--label", f"titan.deployment={gpu_hub.deployment}",
         "--label", "titan.owner=carol", "--label", "titan.server=train", "--label", f"titan.gpus={H100_UUID}",
         "--name", f"{gpu_hub.deployment}-holder", "--entrypoint", "sleep", "titan/base:" + _base_tag(), "300"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    stop_hub(gpu_hub)
    restarted = start_hub(gpu_hub.root, {"spawner": {"gpu_inventory_xml": str(FIXTURE_XML)}},
                          deployment=gpu_hub.deployment)
    try:
        user = "g" + secrets.token_hex(3)
        assert "H100: 0 of 1 free" in gpu_form(restarted, user)
        restarted.admin.create_user(user)
        response = restarted.admin.api("POST", f"/users/{user}/servers/t", json={"profile": "gpu-small"})
        assert response.status_code in (400, 409)
        assert "NVIDIA H100" in response.json()["message"] or "H100" in response.json()["message"]
        subprocess.run(["docker", "rm", "-f", holder], capture_output=True, check=True)
    finally:
        gpu_hub.process = restarted.process
        gpu_hub.url = restarted.url
        gpu_hub.admin = restarted.admin


def _base_tag() -> str:
    from core.images import image_tag

    return image_tag("base").split(":")[1]
