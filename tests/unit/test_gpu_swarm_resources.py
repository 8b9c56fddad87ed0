"""A Swarm node's GPUs as generic resources, from the outputs captured on a real H100 host
(tests/fixtures/gpu/h100, from shared/) and a MIG variant of that capture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.gpu.inventory import parse_nvidia_smi_xml
from core.gpu.swarm_resources import main, node_resources, resource_variable, swarm_kind
from tests.unit.test_gpu_inventory import FIXTURES, H100_UUID, MIG_INSTANCES, mig_xml, read_fixture

#: The GPU types shipped in profiles/profiles.yaml.
SHIPPED_TYPES = {"T4": r"\bT4\b", "A100": "A100", "H100": "H100"}


def test_kinds_are_lower_case_names_with_underscores() -> None:
    assert swarm_kind("H100") == "h100"
    assert swarm_kind("A100 80GB") == "a100_80gb"
    assert swarm_kind("a100-80gb") == "a100_80gb"
    assert swarm_kind("RTX 4090") == "rtx_4090"
    assert swarm_kind("4090") == "4090"  # Swarm takes it; DOCKER_RESOURCE_4090 is a valid name
    assert resource_variable("a100_80gb") == "DOCKER_RESOURCE_A100_80GB"
    with pytest.raises(ValueError, match="letters or digits"):
        swarm_kind(" -- ")


def test_the_real_h100_node_announces_its_gpu_under_its_type() -> None:
    resources = node_resources(parse_nvidia_smi_xml(read_fixture("nvidia-smi-q.xml")), SHIPPED_TYPES)
    assert resources.generic_resources == [f"h100={H100_UUID}"]
    assert resources.swarm_resource == "DOCKER_RESOURCE_H100"
    assert resources.unmatched == ()


def test_a_gpu_of_no_profile_type_is_announced_to_nobody() -> None:
    resources = node_resources(parse_nvidia_smi_xml(read_fixture("nvidia-smi-q.xml")), {"T4": r"\bT4\b"})
    assert resources.generic_resources == []
    assert resources.swarm_resource == ""
    assert [unit.uuid for unit in resources.unmatched] == [H100_UUID]


def test_mig_instances_are_units_by_their_mig_uuid_and_several_types_share_the_runtime_setting() -> None:
    listing = f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {H100_UUID})\n" + "".join(
        f"  MIG {profile:<7} Device  {index}: (UUID: {uuid})\n" for index, _gi, profile, uuid, _mem in MIG_INSTANCES)
    units = parse_nvidia_smi_xml(mig_xml(), listing)
    types = {"H100 1g": r"MIG 1g\.", "H100 3g": r"MIG 3g\."}
    resources = node_resources(units, types)
    small = [uuid for _i, _gi, profile, uuid, _m in MIG_INSTANCES if profile == "1g.10gb"]
    large = [uuid for _i, _gi, profile, uuid, _m in MIG_INSTANCES if profile == "3g.40gb"]
    assert resources.generic_resources == [f"h100_1g={u}" for u in small] + [f"h100_3g={u}" for u in large]
    assert resources.swarm_resource == "DOCKER_RESOURCE_H100_1G,DOCKER_RESOURCE_H100_3G"


def test_two_types_of_one_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="same Swarm resource kind 'a100'"):
        node_resources([], {"A100": "A100", "a100": "a100"})


def test_a_unit_id_swarm_would_read_as_a_count_is_refused() -> None:
    xml = read_fixture("nvidia-smi-q.xml").replace(H100_UUID, "12345")
    with pytest.raises(ValueError, match="cannot be a Swarm named resource"):
        node_resources(parse_nvidia_smi_xml(xml), SHIPPED_TYPES)


def test_the_command_prints_json_from_an_inventory_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--types", json.dumps(SHIPPED_TYPES), "--xml", str(FIXTURES / "nvidia-smi-q.xml")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"node_generic_resources": [f"h100={H100_UUID}"], "swarm_resource": "DOCKER_RESOURCE_H100",
                       "kinds": {"h100": [H100_UUID]}, "unmatched": []}


def test_the_command_says_what_is_wrong(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--types", "[1]", "--xml", str(FIXTURES / "nvidia-smi-q.xml")]) == 1
    assert "--types must be a JSON object" in capsys.readouterr().err
    (tmp_path / "bad.xml").write_text("<html/>")
    assert main(["--types", "{}", "--xml", str(tmp_path / "bad.xml")]) == 1
    assert "unreadable nvidia-smi XML" in capsys.readouterr().err


def test_a_node_without_nvidia_smi_has_no_gpu(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["--types", json.dumps(SHIPPED_TYPES)]) == 0
    assert json.loads(capsys.readouterr().out)["node_generic_resources"] == []


def test_the_command_takes_the_profiles_gpu_types_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "profiles" / "profiles.yaml").read_text())
    assert main(["--types", json.dumps(shipped["gpu_types"]), "--xml", str(FIXTURES / "nvidia-smi-q.xml")]) == 0
    assert json.loads(capsys.readouterr().out)["node_generic_resources"] == [f"h100={H100_UUID}"]
    assert main(["--types", '{"H100": {"display_name": "x"}}', "--xml", str(FIXTURES / "nvidia-smi-q.xml")]) == 1
    assert "'H100' has no regex" in capsys.readouterr().err
