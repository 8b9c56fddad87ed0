"""Compare the GPU inventory from every source on this host: ``python -m core.gpu.check``.

Prints one JSON document: what ``discover()`` returns, what live ``nvidia-smi -q -x`` and
``nvidia-smi --query-gpu=... --format=csv`` give, and whether they agree (same uuids, models and
memory). Exits 0 when every source that could be read agrees, 1 otherwise. Needs only the standard
library (and pynvml, when installed).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from typing import Any

from core.gpu.inventory import (
    QUERY_FIELDS,
    GpuUnit,
    InventoryError,
    discover,
    parse_nvidia_smi_xml,
    parse_query_csv,
    run_nvidia_smi,
)


def differences(expected: list[GpuUnit], found: list[GpuUnit]) -> list[str]:
    """How ``found`` differs from ``expected`` in uuids, models and memory; empty when they agree."""
    mine = {unit.uuid: unit for unit in expected}
    theirs = {unit.uuid: unit for unit in found}
    problems = [f"missing {uuid}" for uuid in mine if uuid not in theirs]
    problems += [f"extra {uuid}" for uuid in theirs if uuid not in mine]
    for uuid in mine.keys() & theirs.keys():
        a, b = mine[uuid], theirs[uuid]
        if a.model != b.model:
            problems.append(f"{uuid}: model {a.model!r} vs {b.model!r}")
        if a.memory_mib != b.memory_mib:
            problems.append(f"{uuid}: memory {a.memory_mib} MiB vs {b.memory_mib} MiB")
    return sorted(problems)


def _read(source: str) -> list[GpuUnit] | str:
    """Units from a live nvidia-smi source, or the reason it could not be read."""
    try:
        if source == "xml":
            xml = run_nvidia_smi("-q", "-x")
            listing = run_nvidia_smi("-L") if "<mig_device>" in xml else None
            return parse_nvidia_smi_xml(xml, listing)
        return parse_query_csv(run_nvidia_smi(f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv"))
    except (InventoryError, ValueError) as error:
        return str(error)


def report() -> tuple[dict[str, Any], bool]:
    """The JSON-ready comparison and whether every readable source agrees with ``discover()``."""
    found = discover()
    result: dict[str, Any] = {"discover": [asdict(unit) for unit in found]}
    agree = True
    for source in ("xml", "csv"):
        units = _read(source)
        key = f"nvidia_smi_{source}"
        if isinstance(units, str):
            result[key] = {"error": units}
            continue
        result[key] = [asdict(unit) for unit in units]
        # The CSV query lists whole GPUs only; compare it with the whole GPUs found.
        expected = found if source == "xml" else [unit for unit in found if unit.parent_uuid is None]
        problems = differences(expected, units)
        result[f"{key}_differences"] = problems
        agree = agree and not problems
    result["agree"] = agree
    return result, agree


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    result, agree = report()
    print(json.dumps(result, indent=2))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
