"""Discover the host's GPUs: the units (whole GPUs or MIG instances) a server can be given.

Three sources, all reduced to the same ``GpuUnit`` list:

* NVML through nvidia-ml-py (``inventory_from_nvml``), the first choice;
* ``nvidia-smi -q -x`` (``parse_nvidia_smi_xml``), the fallback when NVML cannot be used;
* ``nvidia-smi --query-gpu=... --format=csv`` (``parse_query_csv``), a cross-check for whole GPUs.

A GPU in MIG mode is never a unit itself; each of its MIG instances is. This module needs only the
standard library (pynvml is imported lazily), so ``python -m core.gpu.check`` runs on a bare host.
"""

from __future__ import annotations

import csv
import importlib
import io
import logging
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
NVIDIA_SMI_TIMEOUT_S = 10.0
QUERY_FIELDS = ("index", "uuid", "name", "pci.bus_id", "memory.total", "memory.used", "memory.free",
                "utilization.gpu", "compute_mode", "mig.mode.current", "driver_version")
NVML_DEVICE_MIG_ENABLE = 1


@dataclass(frozen=True)
class GpuUnit:
    """One allocatable GPU: a whole GPU, or one MIG instance of a GPU in MIG mode."""

    uuid: str  # "GPU-..." for a whole GPU, "MIG-..." for a MIG instance; what Docker's device_ids get
    index: str  # "0" for GPU 0, "0:1" for MIG device 1 of GPU 0
    model: str  # "NVIDIA H100 80GB HBM3", or "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
    memory_mib: int
    mig_mode: bool  # the (parent) GPU's current MIG mode
    parent_uuid: str | None = None  # the GPU a MIG instance lives on; None for a whole GPU


class InventoryError(RuntimeError):
    """A GPU source could not be read; the message says why, for one log line."""


class _MemoryInfo(Protocol):
    total: int


class NvmlModule(Protocol):
    """The part of the nvidia-ml-py (``pynvml``) API this module uses."""

    @property
    def NVMLError(self) -> type[Exception]: ...  # the base of every NVML error

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> _MemoryInfo: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> Sequence[int]: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any: ...


ModuleLike = NvmlModule


# --- nvidia-smi -q -x -------------------------------------------------------------------------

_LIST_GPU = re.compile(r"^GPU\s+(\d+):\s+(.*?)\s+\(UUID:\s*(GPU-[^)\s]+)\)\s*$")
_LIST_MIG = re.compile(r"^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s+\(UUID:\s*(MIG-[^)\s]+)\)\s*$")


def parse_nvidia_smi_list(text: str) -> dict[str, dict[int, tuple[str, str]]]:
    """``nvidia-smi -L`` → {GPU uuid: {MIG device index: (profile, MIG uuid)}}.

    The XML of ``nvidia-smi -q -x`` carries neither the MIG profile nor (on most drivers) the MIG
    UUID of an instance; the listing does.
    """
    result: dict[str, dict[int, tuple[str, str]]] = {}
    current: dict[int, tuple[str, str]] | None = None
    for line in text.splitlines():
        gpu = _LIST_GPU.match(line)
        if gpu:
            current = result.setdefault(gpu.group(3), {})
            continue
        mig = _LIST_MIG.match(line)
        if mig and current is not None:
            current[int(mig.group(2))] = (mig.group(1), mig.group(3))
    return result


def _text(element: ET.Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    return (found.text or "").strip() if found is not None else ""


def _mib(value: str) -> int:
    """``"81559 MiB"`` → 81559; ``"N/A"`` or empty → 0."""
    match = re.match(r"^\s*(\d+)", value)
    return int(match.group(1)) if match else 0


def parse_nvidia_smi_xml(text: str, listing: str | None = None) -> list[GpuUnit]:
    """Units from ``nvidia-smi -q -x`` output; ``listing`` is optional ``nvidia-smi -L`` output.

    A GPU whose current MIG mode is Enabled yields one unit per ``<mig_device>`` and none for
    itself. A MIG instance's uuid comes from its ``<uuid>`` element when the driver writes one,
    else from ``listing``, else falls back to its ``"gpu:mig"`` index (which the NVIDIA container
    toolkit also accepts as a device id). Raises ``ValueError`` when ``text`` is not that XML.
    """
    try:
        root = ET.fromstring(text.strip())  # noqa: S314 - nvidia-smi's own output
    except ET.ParseError as error:
        raise ValueError(f"not nvidia-smi XML: {error}") from error
    if root.tag != "nvidia_smi_log":
        raise ValueError(f"not nvidia-smi XML: root element is <{root.tag}>")
    migs_by_gpu = parse_nvidia_smi_list(listing) if listing else {}
    units: list[GpuUnit] = []
    for position, gpu in enumerate(root.findall("gpu")):
        uuid = _text(gpu, "uuid")
        name = _text(gpu, "product_name")
        if not uuid or not name:
            raise ValueError(f"nvidia-smi XML: GPU {position} has no uuid or product_name")
        mig_mode = _text(gpu, "mig_mode/current_mig") == "Enabled"
        if not mig_mode:
            units.append(GpuUnit(uuid=uuid, index=str(position), model=name,
                                 memory_mib=_mib(_text(gpu, "fb_memory_usage/total")), mig_mode=False))
            continue
        listed = migs_by_gpu.get(uuid, {})
        migs = gpu.findall("mig_devices/mig_device")
        if not migs:
            logger.info("GPU %s is in MIG mode but has no MIG instances; it offers no unit", uuid)
        for order, mig in enumerate(migs):
            mig_index = int(_text(mig, "index") or order)
            profile, listed_uuid = listed.get(mig_index, ("", ""))
            mig_uuid = _text(mig, "uuid") or listed_uuid or f"{position}:{mig_index}"
            if not mig_uuid.startswith("MIG-"):
                logger.warning("No MIG UUID for MIG device %s of GPU %s; using index %s as its id",
                               mig_index, uuid, mig_uuid)
            units.append(GpuUnit(uuid=mig_uuid, index=f"{position}:{mig_index}",
                                 model=f"{name} MIG {profile}" if profile else f"{name} MIG",
                                 memory_mib=_mib(_text(mig, "fb_memory_usage/total")),
                                 mig_mode=True, parent_uuid=uuid))
    return units


# --- nvidia-smi --query-gpu=... --format=csv --------------------------------------------------

def parse_query_csv(text: str) -> list[GpuUnit]:
    """Whole GPUs from ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv``.

    Works with or without the header line (without it, columns are taken in ``QUERY_FIELDS``
    order). This query cannot list MIG instances, so a GPU in MIG mode is left out, as it is not a
    unit itself. Raises ``ValueError`` when ``text`` is not that CSV.
    """
    rows = [[cell.strip() for cell in row]
            for row in csv.reader(io.StringIO(text.strip()), skipinitialspace=True) if row]
    if not rows:
        return []
    header = [re.sub(r"\s*\[.*\]$", "", cell) for cell in rows[0]]
    if "uuid" in header:
        fields, rows = header, rows[1:]
    else:
        fields = list(QUERY_FIELDS)
    missing = {"index", "uuid", "name", "memory.total"} - set(fields)
    if missing:
        raise ValueError(f"nvidia-smi CSV lacks column(s): {', '.join(sorted(missing))}")
    units: list[GpuUnit] = []
    for row in rows:
        if len(row) != len(fields):
            raise ValueError(f"nvidia-smi CSV: {len(row)} columns where the header has {len(fields)}")
        record = dict(zip(fields, row, strict=True))
        if not record["uuid"].startswith("GPU-"):
            raise ValueError(f"nvidia-smi CSV: {record['uuid']!r} is not a GPU uuid")
        if record.get("mig.mode.current") == "Enabled":
            logger.debug("GPU %s is in MIG mode; the CSV query cannot list its instances", record["uuid"])
            continue
        units.append(GpuUnit(uuid=record["uuid"], index=record["index"], model=record["name"],
                             memory_mib=_mib(record["memory.total"]), mig_mode=False))
    return units


# --- NVML -------------------------------------------------------------------------------------

def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def inventory_from_nvml(nvml: ModuleLike) -> list[GpuUnit]:
    """Units through the NVML API of ``nvml`` (the ``pynvml`` module, or a stand-in with its API).

    Calls ``nvmlInit`` and ``nvmlShutdown`` itself; NVML errors propagate.
    """
    nvml.nvmlInit()
    try:
        units: list[GpuUnit] = []
        for position in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(position)
            uuid = _str(nvml.nvmlDeviceGetUUID(handle))
            name = _str(nvml.nvmlDeviceGetName(handle))
            try:
                mig_mode = nvml.nvmlDeviceGetMigMode(handle)[0] == NVML_DEVICE_MIG_ENABLE
            except nvml.NVMLError:  # not MIG-capable
                mig_mode = False
            if not mig_mode:
                units.append(GpuUnit(uuid=uuid, index=str(position), model=name,
                                     memory_mib=nvml.nvmlDeviceGetMemoryInfo(handle).total // MIB,
                                     mig_mode=False))
                continue
            found = 0
            for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
                try:
                    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                except nvml.NVMLError:  # an empty slot
                    continue
                mig_name = _str(nvml.nvmlDeviceGetName(mig))  # NVML names it "<parent> MIG 1g.10gb"
                if not mig_name.startswith(name):
                    mig_name = f"{name} MIG {mig_name.split('MIG', 1)[-1].strip()}".strip()
                units.append(GpuUnit(uuid=_str(nvml.nvmlDeviceGetUUID(mig)), index=f"{position}:{found}",
                                     model=mig_name, memory_mib=nvml.nvmlDeviceGetMemoryInfo(mig).total // MIB,
                                     mig_mode=True, parent_uuid=uuid))
                found += 1
            if not found:
                logger.info("GPU %s is in MIG mode but has no MIG instances; it offers no unit", uuid)
        return units
    finally:
        nvml.nvmlShutdown()


# --- discovery --------------------------------------------------------------------------------

def run_nvidia_smi(*args: str, timeout: float = NVIDIA_SMI_TIMEOUT_S) -> str:
    """stdout of ``nvidia-smi *args``; ``InventoryError`` saying why when it cannot be had."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        raise InventoryError("nvidia-smi is not on PATH")
    try:
        done = subprocess.run([executable, *args], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as error:
        raise InventoryError(f"nvidia-smi {' '.join(args)} timed out after {timeout:g} s") from error
    except OSError as error:
        raise InventoryError(f"nvidia-smi could not run: {error}") from error
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise InventoryError(f"nvidia-smi {' '.join(args)} exited {done.returncode}"
                             + (f": {said[0][:200]}" if said else ""))
    return done.stdout


def _from_nvml() -> list[GpuUnit]:
    try:
        module = importlib.import_module("pynvml")
    except ImportError as error:
        raise InventoryError(f"pynvml is not installed ({error})") from error
    try:
        return inventory_from_nvml(cast(NvmlModule, module))
    except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: any reason is a miss
        raise InventoryError(f"NVML failed: {type(error).__name__}: {error}") from error


def _from_nvidia_smi(timeout: float) -> list[GpuUnit]:
    xml = run_nvidia_smi("-q", "-x", timeout=timeout)
    listing: str | None = None
    if "<mig_device>" in xml:
        try:
            listing = run_nvidia_smi("-L", timeout=timeout)
        except InventoryError as error:
            logger.warning("MIG instances found but %s; their profiles and UUIDs are unknown", error)
    try:
        return parse_nvidia_smi_xml(xml, listing)
    except ValueError as error:
        raise InventoryError(f"nvidia-smi -q -x gave unreadable output ({error})") from error


def discover(log: logging.Logger | None = None, *, timeout: float = NVIDIA_SMI_TIMEOUT_S) -> list[GpuUnit]:
    """The host's GPU units: NVML first, then ``nvidia-smi -q -x``; ``[]`` when neither finds any.

    Never raises. Logs one line: what was found and from where, or why nothing was.
    """
    log = log or logger
    reasons: list[str] = []
    for source, read in (("NVML", _from_nvml), ("nvidia-smi", lambda: _from_nvidia_smi(timeout))):
        try:
            units = read()
        except InventoryError as error:
            reasons.append(str(error))
            continue
        except Exception as error:  # never let discovery take the hub down
            reasons.append(f"{source} failed unexpectedly: {type(error).__name__}: {error}")
            continue
        if units:
            log.info("GPUs found through %s: %s", source,
                     ", ".join(f"{unit.index} {unit.model} ({unit.uuid})" for unit in units))
            return units
        reasons.append(f"{source} reports no GPU")
    # A host without the NVIDIA tools is a CPU host, not a fault; a present but failing one is.
    level = logging.WARNING if shutil.which("nvidia-smi") else logging.INFO
    log.log(level, "No GPU found on this host: %s", "; ".join(reasons))
    return []
