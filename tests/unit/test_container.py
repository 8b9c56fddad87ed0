"""The pure builder: a selection becomes exactly these container settings."""

from __future__ import annotations

from core.capacity import HostCapacity
from core.gpu.inventory import GpuUnit
from core.labels import docker_safe, home_volume_name
from spawner.container import build_container_settings
from spawner.options import resolve_selection
from tests.unit.shipped import shipped_profiles

GIB = 1024**3
HOST = HostCapacity(cpus=64, memory=1024 * GIB, gpus_total={"H100": 4}, gpus_free={"H100": 4})
PROFILES = shipped_profiles()


def test_small_profile_settings() -> None:
    selection = resolve_selection(PROFILES, {"profile": "small"}, "alice", [], HOST)
    settings = build_container_settings(selection, "titan/minimal:abc", "alice", "work", "titan",
                                        "titan-home-{username}", network="titan-user-alice")
    assert settings.image == "titan/minimal:abc"
    assert settings.mem_limit == 2 * GIB
    assert settings.memswap_limit == 2 * GIB
    assert settings.host_config["memswap_limit"] == 2 * GIB
    assert settings.cpu_limit == 1
    assert settings.host_config["network_mode"] == "titan-user-alice"
    # Hardened: no capability, no privilege gain, a process limit.
    assert settings.host_config["cap_drop"] == ["ALL"]
    assert settings.host_config["security_opt"] == ["no-new-privileges:true"]
    assert settings.host_config["pids_limit"] == 4096
    assert settings.volumes == {"titan-home-alice": {"bind": "/home/jovyan", "mode": "rw"}}
    assert settings.labels == {"titan.deployment": "titan", "titan.owner": "alice", "titan.server": "work",
                               "titan.profile": "small"}
    assert "device_requests" not in settings.host_config
    assert "172.17" not in repr(settings)


def test_gpu_choice_requests_exact_devices() -> None:
    selection = resolve_selection(PROFILES, {"profile": "gpu", "gpu_type": "H100", "gpu_count": "2"}, "bob", [], HOST)
    uuids = ["GPU-18eaba93-88f3-2a85-643f-427bd2819efb", "GPU-00000000-0000-0000-0000-000000000002"]
    units = [GpuUnit(uuid=u, index=str(i), model="NVIDIA H100 80GB HBM3", memory_mib=81559, mig_mode=False)
             for i, u in enumerate(uuids)]
    settings = build_container_settings(selection, "titan/datascience:abc", "bob", "", "titan",
                                        "titan-home-{username}", network="titan-user-bob", gpus=units)
    assert settings.host_config["device_requests"] == [
        {"driver": "nvidia", "device_ids": uuids, "capabilities": [["gpu"]]}
    ]
    assert settings.labels["titan.gpus"] == ",".join(uuids)


def test_names_are_escaped_for_docker() -> None:
    assert docker_safe("alice") == "alice"
    assert docker_safe("Bob.Smith@x") == docker_safe("bob.smith@x")
    assert set(docker_safe("../../etc")) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert home_volume_name("titan-home-{username}", "../x") != home_volume_name("titan-home-{username}", "x")
