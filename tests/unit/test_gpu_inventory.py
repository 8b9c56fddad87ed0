"""GPU discovery over the outputs captured on a real H100 host (tests/fixtures/gpu/h100, from shared/)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.gpu import check
from core.gpu.inventory import (
    GpuUnit,
    discover,
    inventory_from_nvml,
    parse_nvidia_smi_list,
    parse_nvidia_smi_xml,
    parse_query_csv,
)
from core.gpu.types import describe_free, match_types

FIXTURES = Path(os.environ.get("TITAN_GPU_FIXTURES") or Path(__file__).resolve().parents[1] / "fixtures/gpu/h100")
H100_UUID = "GPU-18eaba93-88f3-2a85-643f-427bd2819efb"
H100_MODEL = "NVIDIA H100 80GB HBM3"
H100 = GpuUnit(uuid=H100_UUID, index="0", model=H100_MODEL, memory_mib=81559, mig_mode=False, parent_uuid=None)

# MIG layout used to derive a MIG variant of the real capture. The instances, their UUIDs and sizes are
# made up for the test (the capture was taken with MIG disabled); everything else is the real XML.
MIG_INSTANCES = [  # (device index, gpu instance id, profile, MIG uuid, memory MiB)
    (0, 2, "3g.40gb", "MIG-5b1c3a54-7d0f-5e59-9b8a-1f6f0d2c0a01", 40448),
    (1, 9, "1g.10gb", "MIG-7e2d4b65-8e1a-5f6a-ac9b-2a7a1e3d1b02", 9984),
    (2, 10, "1g.10gb", "MIG-9f3e5c76-9f2b-5a7b-bdac-3b8b2f4e2c03", 9984),
]


def read_fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def mig_xml() -> str:
    """The real ``nvidia-smi -q -x`` capture, edited to MIG mode with three MIG devices."""
    real = read_fixture("nvidia-smi-q.xml")
    assert real.count("<current_mig>Disabled</current_mig>") == 1
    assert len(re.findall(r"<mig_devices>\s*None\s*</mig_devices>", real)) == 1
    devices = "".join(
        f"""
\t\t\t<mig_device>
\t\t\t\t<index>{index}</index>
\t\t\t\t<gpu_instance_id>{gi}</gpu_instance_id>
\t\t\t\t<compute_instance_id>0</compute_instance_id>
\t\t\t\t<device_attributes>
\t\t\t\t\t<shared>
\t\t\t\t\t\t<multiprocessor_count>{16 if profile.startswith("1g") else 60}</multiprocessor_count>
\t\t\t\t\t\t<copy_engine_count>1</copy_engine_count>
\t\t\t\t\t</shared>
\t\t\t\t</device_attributes>
\t\t\t\t<fb_memory_usage>
\t\t\t\t\t<total>{memory} MiB</total>
\t\t\t\t\t<reserved>0 MiB</reserved>
\t\t\t\t\t<used>12 MiB</used>
\t\t\t\t\t<free>{memory - 12} MiB</free>
\t\t\t\t</fb_memory_usage>
\t\t\t\t<bar1_memory_usage>
\t\t\t\t\t<total>32767 MiB</total>
\t\t\t\t\t<used>0 MiB</used>
\t\t\t\t\t<free>32767 MiB</free>
\t\t\t\t</bar1_memory_usage>
\t\t\t</mig_device>"""
        for index, gi, profile, _uuid, memory in MIG_INSTANCES)
    edited = real.replace("<current_mig>Disabled</current_mig>", "<current_mig>Enabled</current_mig>")
    edited = edited.replace("<pending_mig>Disabled</pending_mig>", "<pending_mig>Enabled</pending_mig>")
    return re.sub(r"<mig_devices>\s*None\s*</mig_devices>",
                  lambda _: f"<mig_devices>{devices}\n\t\t</mig_devices>", edited)


def mig_listing() -> str:
    """``nvidia-smi -L`` for the MIG variant."""
    lines = [f"GPU 0: {H100_MODEL} (UUID: {H100_UUID})"]
    lines += [f"  MIG {profile}     Device  {index}: (UUID: {uuid})" for index, _gi, profile, uuid, _m in MIG_INSTANCES]
    return "\n".join(lines) + "\n"


class ReplayNvml:
    """Replays the NVML values captured in nvml.json through the nvidia-ml-py calls the inventory makes.

    There is no GPU on this machine, so this stands in for the ``pynvml`` module; it answers only with
    the captured values (plus, when ``migs`` is given, the made-up MIG instances of ``MIG_INSTANCES``).
    """

    class NVMLError(Exception):
        pass

    def __init__(self, captured: dict[str, Any], migs: list[tuple[int, int, str, str, int]] | None = None):
        self.captured = captured
        self.migs = {slot: mig for slot, mig in enumerate(migs or [])}
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.captured["gpus"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[str, int]:
        return ("gpu", index)

    def _gpu(self, handle: tuple[Any, ...]) -> dict[str, Any]:
        gpu: dict[str, Any] = self.captured["gpus"][handle[1]]
        return gpu

    def nvmlDeviceGetName(self, handle: tuple[Any, ...]) -> str:
        name: str = self._gpu(handle)["name"]
        return name if handle[0] == "gpu" else f"{name} MIG {self.migs[handle[2]][2]}"

    def nvmlDeviceGetUUID(self, handle: tuple[Any, ...]) -> str:
        return self._gpu(handle)["uuid"] if handle[0] == "gpu" else self.migs[handle[2]][3]

    def nvmlDeviceGetMemoryInfo(self, handle: tuple[Any, ...]) -> SimpleNamespace:
        if handle[0] == "gpu":
            gpu = self._gpu(handle)
            return SimpleNamespace(total=gpu["memory_total"], used=gpu["memory_used"],
                                   free=gpu["memory_total"] - gpu["memory_used"])
        total = self.migs[handle[2]][4] * 1024 * 1024
        return SimpleNamespace(total=total, used=0, free=total)

    def nvmlDeviceGetMigMode(self, handle: tuple[Any, ...]) -> list[int]:
        return [1, 1] if self.migs else list(self._gpu(handle)["mig"])

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: tuple[Any, ...]) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: tuple[Any, ...], index: int) -> tuple[str, int, int]:
        if index not in self.migs:
            raise self.NVMLError("Not Found")
        return ("mig", handle[1], index)


def captured_nvml() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(read_fixture("nvml.json"))
    return data


# --- the three real captures ------------------------------------------------------------------

def test_xml_capture_gives_the_one_h100() -> None:
    assert parse_nvidia_smi_xml(read_fixture("nvidia-smi-q.xml")) == [H100]


def test_csv_capture_gives_the_one_h100() -> None:
    assert parse_query_csv(read_fixture("nvidia-smi-query.csv")) == [H100]


def test_csv_without_header_uses_the_query_order() -> None:
    body = read_fixture("nvidia-smi-query.csv").splitlines()[1]
    assert parse_query_csv(body + "\n") == [H100]


def test_nvml_capture_gives_the_one_h100() -> None:
    captured = captured_nvml()
    nvml = ReplayNvml(captured)
    assert inventory_from_nvml(nvml) == [H100]
    assert captured["gpus"][0]["memory_total"] // (1024 * 1024) == 81559
    assert nvml.calls == ["init", "shutdown"]


def test_the_three_sources_agree() -> None:
    xml = parse_nvidia_smi_xml(read_fixture("nvidia-smi-q.xml"))
    csv = parse_query_csv(read_fixture("nvidia-smi-query.csv"))
    nvml = inventory_from_nvml(ReplayNvml(captured_nvml()))
    assert xml == csv == nvml
    assert check.differences(nvml, xml) == []
    assert check.differences(nvml, csv) == []


def test_differences_names_what_disagrees() -> None:
    other = GpuUnit(uuid="GPU-other", index="1", model="NVIDIA T4", memory_mib=15360, mig_mode=False)
    smaller = GpuUnit(uuid=H100_UUID, index="0", model=H100_MODEL, memory_mib=80000, mig_mode=False)
    assert check.differences([H100], [smaller, other]) == [
        f"{H100_UUID}: memory 81559 MiB vs 80000 MiB", "extra GPU-other"]


# --- MIG ----------------------------------------------------------------------------------------

def expected_mig_units() -> list[GpuUnit]:
    return [GpuUnit(uuid=uuid, index=f"0:{index}", model=f"{H100_MODEL} MIG {profile}", memory_mib=memory,
                    mig_mode=True, parent_uuid=H100_UUID)
            for index, _gi, profile, uuid, memory in MIG_INSTANCES]


def test_mig_instances_are_units_and_their_parent_is_not() -> None:
    units = parse_nvidia_smi_xml(mig_xml(), mig_listing())
    assert units == expected_mig_units()
    assert H100_UUID not in {unit.uuid for unit in units}


def test_mig_without_listing_falls_back_to_index_ids(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core.gpu.inventory"):
        units = parse_nvidia_smi_xml(mig_xml())
    assert [(unit.uuid, unit.model, unit.memory_mib) for unit in units] == [
        ("0:0", f"{H100_MODEL} MIG", 40448), ("0:1", f"{H100_MODEL} MIG", 9984), ("0:2", f"{H100_MODEL} MIG", 9984)]
    assert all(unit.parent_uuid == H100_UUID and unit.mig_mode for unit in units)
    assert "No MIG UUID for MIG device 0" in caplog.text


def test_mig_uuid_element_is_used_when_the_driver_writes_one() -> None:
    xml = mig_xml().replace("<index>1</index>", "<index>1</index>\n<uuid>MIG-from-xml</uuid>")
    assert [unit.uuid for unit in parse_nvidia_smi_xml(xml)] == ["0:0", "MIG-from-xml", "0:2"]


def test_mig_enabled_without_instances_offers_nothing() -> None:
    xml = read_fixture("nvidia-smi-q.xml").replace("<current_mig>Disabled</current_mig>",
                                                   "<current_mig>Enabled</current_mig>")
    assert parse_nvidia_smi_xml(xml) == []


def test_csv_leaves_out_a_gpu_in_mig_mode() -> None:
    csv = read_fixture("nvidia-smi-query.csv").replace(", Disabled,", ", Enabled,")
    assert parse_query_csv(csv) == []


def test_nvml_mig_instances_are_units() -> None:
    assert inventory_from_nvml(ReplayNvml(captured_nvml(), MIG_INSTANCES)) == expected_mig_units()


def test_listing_parser() -> None:
    assert parse_nvidia_smi_list(mig_listing()) == {
        H100_UUID: {index: (profile, uuid) for index, _gi, profile, uuid, _m in MIG_INSTANCES}}


# --- garbage ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "garbage <<<", "<html><body>no</body></html>",
                                  "<nvidia_smi_log><gpu><uuid></uuid></gpu></nvidia_smi_log>"])
def test_xml_parser_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="nvidia-smi XML"):
        parse_nvidia_smi_xml(text)


@pytest.mark.parametrize("text", ["index, name\n0, x\n", "no such thing, at all\n",
                                  "index, uuid, name, memory.total [MiB]\n0, GPU-x\n"])
def test_csv_parser_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="nvidia-smi CSV"):
        parse_query_csv(text)


# --- discover() ---------------------------------------------------------------------------------

def fake_nvidia_smi(directory: Path, body: str) -> None:
    """An ``nvidia-smi`` shell script in ``directory``; ``body`` is its shell code."""
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def serving(tmp_path: Path, xml: str, listing: str = "", csv: str = "") -> str:
    """Shell code answering ``-q -x``, ``-L`` and ``--query-gpu`` with the given texts."""
    for name, text in (("q.xml", xml), ("list.txt", listing), ("query.csv", csv)):
        (tmp_path / name).write_text(text)
    return (f'case "$1" in\n  -q) exec cat "{tmp_path}/q.xml";;\n  -L) exec cat "{tmp_path}/list.txt";;\n'
            f'  --query-gpu=*) exec cat "{tmp_path}/query.csv";;\nesac\nexit 2')


@pytest.fixture
def smi_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH, for a fake nvidia-smi; pynvml made unimportable."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    return directory


def test_discover_on_this_gpu_less_machine_returns_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi; the real pynvml finds no driver library
    with caplog.at_level(logging.INFO, logger="core.gpu.inventory"):
        assert discover() == []
    lines = [record for record in caplog.records if "No GPU found" in record.getMessage()]
    assert len(lines) == 1
    assert "NVML failed: NVMLError" in lines[0].getMessage()
    assert "nvidia-smi is not on PATH" in lines[0].getMessage()
    assert lines[0].levelno == logging.INFO


def test_discover_without_pynvml(smi_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("titan.test.discover")
    with caplog.at_level(logging.INFO, logger="titan.test.discover"):
        assert discover(log) == []
    assert "pynvml is not installed" in caplog.text
    assert "nvidia-smi is not on PATH" in caplog.text


def test_discover_falls_back_to_nvidia_smi(smi_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake_nvidia_smi(smi_dir, serving(tmp_path, read_fixture("nvidia-smi-q.xml")))
    with caplog.at_level(logging.INFO, logger="core.gpu.inventory"):
        assert discover() == [H100]
    assert "through nvidia-smi" in caplog.text


def test_discover_mig_through_nvidia_smi(smi_dir: Path, tmp_path: Path) -> None:
    fake_nvidia_smi(smi_dir, serving(tmp_path, mig_xml(), mig_listing()))
    assert discover() == expected_mig_units()


def test_discover_prefers_nvml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pynvml", ReplayNvml(captured_nvml()))
    with caplog.at_level(logging.INFO, logger="core.gpu.inventory"):
        assert discover() == [H100]
    assert "through NVML" in caplog.text


@pytest.mark.parametrize(("body", "reason"), [
    ("echo 'this is not XML <<<'", "unreadable output"),
    ("echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"; exit 9",
     "exited 9: NVIDIA-SMI has failed"),
    ("exec sleep 5", "timed out after 0.5 s"),
    ("echo '<nvidia_smi_log><attached_gpus>0</attached_gpus></nvidia_smi_log>'", "nvidia-smi reports no GPU"),
])
def test_discover_survives_a_broken_nvidia_smi(smi_dir: Path, caplog: pytest.LogCaptureFixture,
                                               body: str, reason: str) -> None:
    fake_nvidia_smi(smi_dir, body)
    with caplog.at_level(logging.INFO, logger="core.gpu.inventory"):
        assert discover(timeout=0.5) == []
    lines = [record for record in caplog.records if "No GPU found" in record.getMessage()]
    assert len(lines) == 1
    assert reason in lines[0].getMessage()
    assert lines[0].levelno == logging.WARNING


# --- python -m core.gpu.check ----------------------------------------------------------------

def test_check_reports_agreement(smi_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", ReplayNvml(captured_nvml()))
    fake_nvidia_smi(smi_dir, serving(tmp_path, read_fixture("nvidia-smi-q.xml"),
                                     csv=read_fixture("nvidia-smi-query.csv")))
    assert check.main() == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["agree"] is True
    assert [unit["uuid"] for unit in printed["discover"]] == [H100_UUID]
    assert printed["nvidia_smi_xml"] == printed["nvidia_smi_csv"] == printed["discover"]
    assert printed["nvidia_smi_xml_differences"] == printed["nvidia_smi_csv_differences"] == []


def test_check_reports_disagreement(smi_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", ReplayNvml(captured_nvml()))
    csv = read_fixture("nvidia-smi-query.csv").replace("81559 MiB", "40960 MiB")
    fake_nvidia_smi(smi_dir, serving(tmp_path, read_fixture("nvidia-smi-q.xml"), csv=csv))
    result, agree = check.report()
    assert agree is False
    assert result["nvidia_smi_csv_differences"] == [f"{H100_UUID}: memory 81559 MiB vs 40960 MiB"]
    assert result["nvidia_smi_xml_differences"] == []


def test_check_without_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    result, agree = check.report()
    assert result["discover"] == []
    assert result["nvidia_smi_xml"] == {"error": "nvidia-smi is not on PATH"}
    assert result["nvidia_smi_csv"] == {"error": "nvidia-smi is not on PATH"}
    assert agree is True


# --- GPU types ----------------------------------------------------------------------------------

def test_match_types_over_the_real_h100() -> None:
    units = parse_nvidia_smi_xml(read_fixture("nvidia-smi-q.xml"))
    rules = {"T4": r"\bT4\b", "A100": "A100", "H100": "H100"}
    assert match_types(units, rules) == {"T4": [], "A100": [], "H100": [H100]}


def test_match_types_first_rule_wins_and_unmatched_are_left_out() -> None:
    t4 = GpuUnit(uuid="GPU-t4", index="1", model="Tesla T4", memory_mib=15360, mig_mode=False)
    mig = expected_mig_units()
    grouped = match_types([H100, t4, *mig], {"H100-MIG": r"H100.* MIG ", "H100": "H100", "A100": "A100"})
    assert grouped == {"H100-MIG": mig, "H100": [H100], "A100": []}
    assert list(grouped) == ["H100-MIG", "H100", "A100"]


def test_match_types_rejects_a_bad_pattern() -> None:
    with pytest.raises(ValueError, match="'H100'.*not a valid regular expression"):
        match_types([H100], {"H100": "H100("})


def test_describe_free() -> None:
    assert describe_free("H100", 1, 1) == "H100: 1 of 1 free"
    assert describe_free("A100", 0, 2) == "A100: 0 of 2 free"
    assert describe_free("H100", 0, 0) == "this host has no H100 GPU"
