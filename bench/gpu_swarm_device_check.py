"""GPU device check for Swarm nodes, on a real GPU machine: ``python3 bench/gpu_swarm_device_check.py``.

Needs only the standard library, Titan's own ``core/gpu`` modules (run it from the repository root)
and the NVIDIA driver (``nvidia-smi``; ``libcuda.so.1`` for the visibility check). No Docker, no
network. It:

1. reads the real ``nvidia-smi -q -x`` (and ``-L`` for MIG) with Titan's inventory code and checks
   it against ``nvidia-smi --query-gpu`` (same uuids, models, memory);
2. prints the lines the titan_swarm role would write on this node: daemon.json's
   ``node-generic-resources`` and the NVIDIA runtime's ``swarm-resource`` (a GPU of no profile type
   is given a type named after its model, e.g. ``B200``, with a warning: add it to the profiles);
3. for each unit, as a Swarm task would be given it (``DOCKER_RESOURCE_<KIND>=<uuid>``, which the
   NVIDIA runtime turns into the container's visible devices), checks that a process told
   ``CUDA_VISIBLE_DEVICES=<uuid>`` sees exactly that device through the CUDA driver API (count 1,
   same uuid), that ``nvidia-smi --id=<uuid>`` names that GPU, and that a uuid of no unit gives no
   device at all.

Exits 0 when every check passes, 1 with one line per mismatch, 2 when the machine cannot be checked
(no nvidia-smi). ``--xml FILE`` checks only steps 1-2 against a saved inventory (no GPU needed).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.gpu.check import differences  # noqa: E402 - after the path above
from core.gpu.inventory import (  # noqa: E402
    QUERY_FIELDS,
    GpuUnit,
    InventoryError,
    parse_nvidia_smi_xml,
    parse_query_csv,
    run_nvidia_smi,
)
from core.gpu.swarm_resources import (  # noqa: E402
    NodeGpuResources,
    node_resources,
    parse_types,
    resource_variable,
)

PROFILES = Path(__file__).resolve().parents[1] / "profiles" / "profiles.yaml"
#: profiles/profiles.yaml's gpu_types, for a machine without PyYAML (the script needs only the standard library).
SHIPPED_TYPES = {"T4": r"\bT4\b", "A100": "A100", "H100": "H100", "H200": "H200"}
NO_SUCH_UUID = "GPU-00000000-0000-0000-0000-000000000000"
CUDA_SUCCESS = 0


def profile_types() -> str:
    """The GPU types of profiles/profiles.yaml as JSON (the shipped ones when PyYAML is missing)."""
    try:
        import yaml
    except ImportError:
        return json.dumps(SHIPPED_TYPES)
    return json.dumps(yaml.safe_load(PROFILES.read_text()).get("gpu_types") or {})


def type_for_model(model: str) -> str:
    """A type name for a GPU of no profile type, from its model: ``"NVIDIA B200"`` → ``"B200"``."""
    words = [w for w in model.replace("NVIDIA", "").split() if any(c.isdigit() for c in w)]
    return words[0] if words else "GPU"


def plan(units: list[GpuUnit], types: dict[str, str]) -> tuple[NodeGpuResources, list[str]]:
    """The node's resources, with a type made up for each unit of no type; and warnings saying so."""
    resources = node_resources(units, types)
    warnings: list[str] = []
    if resources.unmatched:
        extra = dict(types)
        for unit in resources.unmatched:
            name = type_for_model(unit.model)
            extra.setdefault(name, name)
            warnings.append(f"{unit.model} ({unit.uuid}) matches no profile GPU type; checked as type {name!r}: "
                            f"add `{name}: {{match: \"{name}\"}}` to gpu_types in profiles/profiles.yaml")
        resources = node_resources(units, extra)
    return resources, warnings


def settings_lines(resources: NodeGpuResources) -> list[str]:
    return [f"/etc/docker/daemon.json: \"node-generic-resources\": {json.dumps(resources.generic_resources)}",
            f"/etc/nvidia-container-runtime/config.toml: swarm-resource = \"{resources.swarm_resource}\""]


def cuda_uuid(raw: bytes) -> str:
    """CUDA's 16-byte ``CUuuid`` as nvidia-smi writes it: ``GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``."""
    h = raw.hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def probe_cuda() -> dict[str, object]:
    """What this process sees through the CUDA driver API: {"count": n, "uuids": [...]} or {"error": ...}."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as error:
        return {"error": f"libcuda.so.1: {error}"}
    result = cuda.cuInit(0)
    if result == 100:  # CUDA_ERROR_NO_DEVICE
        return {"count": 0, "uuids": []}
    if result != CUDA_SUCCESS:
        return {"error": f"cuInit returned {result}"}
    count = ctypes.c_int()
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != CUDA_SUCCESS:
        return {"error": "cuDeviceGetCount failed"}
    uuids = []
    for ordinal in range(count.value):
        device = ctypes.c_int()
        raw = ctypes.create_string_buffer(16)
        if cuda.cuDeviceGet(ctypes.byref(device), ordinal) != CUDA_SUCCESS or \
                cuda.cuDeviceGetUuid(raw, device) != CUDA_SUCCESS:
            return {"error": f"cannot read device {ordinal}'s uuid"}
        uuids.append(cuda_uuid(raw.raw))
    return {"count": count.value, "uuids": uuids}


def seen_with(uuid: str, kind: str) -> dict[str, object]:
    """What a fresh process sees when given ``uuid`` as a Swarm task is (its variables set before CUDA starts)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=uuid, NVIDIA_VISIBLE_DEVICES=uuid, **{resource_variable(kind): uuid})
    done = subprocess.run([sys.executable, __file__, "--probe-cuda"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    try:
        seen: dict[str, object] = json.loads(done.stdout)
        return seen
    except json.JSONDecodeError:
        return {"error": f"probe exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"}


def visibility_problems(resources: NodeGpuResources) -> list[str]:
    problems: list[str] = []
    for kind, units in sorted(resources.kinds.items()):
        for uuid in units:
            seen = seen_with(uuid, kind)
            print(f"  {resource_variable(kind)}={uuid}: CUDA sees {seen}")
            if "error" in seen:
                problems.append(f"{uuid}: {seen['error']}")
            elif uuid.startswith("GPU-") and seen.get("uuids") != [uuid]:
                problems.append(f"{uuid}: a process given it sees {seen.get('uuids')}, not exactly it")
            elif seen.get("count") != 1:
                problems.append(f"{uuid}: a process given it sees {seen.get('count')} devices, not 1")
            try:
                named = run_nvidia_smi(f"--id={uuid}", "--query-gpu=uuid", "--format=csv,noheader").split()
            except InventoryError as error:
                problems.append(f"{uuid}: {error}")
                continue
            if uuid.startswith("GPU-") and named != [uuid]:
                problems.append(f"{uuid}: nvidia-smi --id names {named}")
    seen = seen_with(NO_SUCH_UUID, "gpu")
    print(f"  CUDA_VISIBLE_DEVICES={NO_SUCH_UUID} (no such unit): CUDA sees {seen}")
    if seen.get("count") not in (0, None) or seen.get("uuids"):
        problems.append(f"a uuid of no unit still shows devices: {seen}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--types", help="GPU types as JSON (default: profiles/profiles.yaml's)")
    parser.add_argument("--xml", help="check a saved `nvidia-smi -q -x` instead of this machine (steps 1-2 only)")
    parser.add_argument("--probe-cuda", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_cuda:
        print(json.dumps(probe_cuda()))
        return 0
    try:
        if args.xml:
            units = parse_nvidia_smi_xml(Path(args.xml).read_text())
        else:
            xml = run_nvidia_smi("-q", "-x")
            units = parse_nvidia_smi_xml(xml, run_nvidia_smi("-L") if "<mig_device>" in xml else None)
    except InventoryError as error:
        print(f"FAIL: cannot read this machine's GPUs: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    problems: list[str] = [] if units else ["Titan's inventory code found no GPU"]
    print("1. Titan's inventory of nvidia-smi -q -x:")
    for unit in units:
        print(f"  {unit.index} {unit.model} {unit.uuid} {unit.memory_mib} MiB{' (MIG)' if unit.mig_mode else ''}")
    if not args.xml:
        try:
            csv_units = parse_query_csv(run_nvidia_smi(f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv"))
            problems += [f"XML vs --query-gpu: {p}" for p in differences(
                [u for u in units if u.parent_uuid is None], csv_units)]
        except (InventoryError, ValueError) as error:
            problems.append(f"nvidia-smi --query-gpu: {error}")
    try:
        resources, warnings = plan(units, parse_types(args.types or profile_types()))
    except ValueError as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"WARNING: {warning}")
    print("2. What the titan_swarm role writes on this node:")
    for line in settings_lines(resources):
        print(f"  {line}")
    if not args.xml:
        print("3. A process given each unit as a Swarm task is:")
        problems += visibility_problems(resources)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
