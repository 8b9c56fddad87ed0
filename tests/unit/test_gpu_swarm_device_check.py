"""bench/gpu_swarm_device_check.py's parsing half, on the real H100 capture (the device half runs on a
GPU machine: the lead runs it there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.gpu_swarm_device_check import cuda_uuid, plan, settings_lines, type_for_model
from core.gpu.inventory import parse_nvidia_smi_xml
from tests.unit.test_gpu_inventory import FIXTURES, H100_UUID, read_fixture

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_swarm_device_check.py"


def test_it_prints_what_the_role_writes_for_the_real_capture() -> None:
    resources, warnings = plan(parse_nvidia_smi_xml(read_fixture("nvidia-smi-q.xml")), {"H100": "H100"})
    assert warnings == []
    assert settings_lines(resources) == [
        f'/etc/docker/daemon.json: "node-generic-resources": ["h100={H100_UUID}"]',
        '/etc/nvidia-container-runtime/config.toml: swarm-resource = "DOCKER_RESOURCE_H100"']


def test_a_gpu_of_no_profile_type_is_checked_under_its_model_with_a_warning() -> None:
    xml = read_fixture("nvidia-smi-q.xml").replace("NVIDIA H100 80GB HBM3", "NVIDIA H200")
    resources, warnings = plan(parse_nvidia_smi_xml(xml), {"T4": r"\bT4\b", "H100": "H100"})
    assert resources.generic_resources == [f"h200={H100_UUID}"]
    assert resources.swarm_resource == "DOCKER_RESOURCE_H200"
    assert len(warnings) == 1 and "add `H200: {match: \"H200\"}`" in warnings[0]
    assert type_for_model("NVIDIA H100 80GB HBM3") == "H100"
    assert type_for_model("Tesla") == "GPU"


def test_cuda_uuids_are_written_as_nvidia_smi_does() -> None:
    raw = bytes.fromhex(H100_UUID.removeprefix("GPU-").replace("-", ""))
    assert cuda_uuid(raw) == H100_UUID


def test_it_runs_from_the_repository_root_with_a_saved_inventory_and_refuses_a_machine_without_gpus() -> None:
    root = SCRIPT.parents[1]
    done = subprocess.run([sys.executable, "bench/gpu_swarm_device_check.py", "--xml",
                           str(FIXTURES / "nvidia-smi-q.xml")], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert 'swarm-resource = "DOCKER_RESOURCE_H100"' in done.stdout and done.stdout.strip().endswith("OK")
    bare = subprocess.run([sys.executable, "bench/gpu_swarm_device_check.py"], cwd=root, capture_output=True,
                          text=True, check=False, env={"PATH": "/nonexistent"})
    assert bare.returncode == 2
    assert "nvidia-smi is not on PATH" in bare.stderr
