"""One GPU allocator per hub process: the inventory matched to the profiles' GPU types, over
the allocation table, reconciled with the running containers when it is first made."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import create_engine

from core.gpu.allocator import GpuAllocator
from core.gpu.inventory import GpuUnit, discover, parse_nvidia_smi_xml
from core.gpu.types import match_types

_allocators: dict[tuple[str, str, tuple[tuple[str, str], ...]], GpuAllocator] = {}


def load_inventory(inventory_xml: str, log: logging.Logger) -> list[GpuUnit]:
    """The host's GPUs: from an ``nvidia-smi -q -x`` file when one is configured, else discovered."""
    if not inventory_xml:
        return discover(log)
    try:
        return parse_nvidia_smi_xml(Path(inventory_xml).read_text())
    except (OSError, ValueError) as error:
        log.warning("Could not read the GPU inventory from %s (%s); assuming no GPUs", inventory_xml, error)
        return []


def gpu_allocator(db_url: str, inventory_xml: str, rules: Mapping[str, str], log: logging.Logger) -> tuple[
        GpuAllocator, bool]:
    """The process-wide allocator for these settings, and whether it was just made (reconcile it then)."""
    key = (db_url, inventory_xml, tuple(sorted(rules.items())))
    if key in _allocators:
        return _allocators[key], False
    units = load_inventory(inventory_xml, log)
    by_type = match_types(units, rules)
    log.info("GPU inventory: %s", ", ".join(f"{t}: {len(u)}" for t, u in by_type.items()) or "none")
    engine = create_engine(db_url, future=True)
    allocator = GpuAllocator(by_type, engine, log=log)
    _allocators[key] = allocator
    return allocator, True


def allocators() -> list[GpuAllocator]:
    """The allocators this process has made (for the metrics: GPUs allocated by type)."""
    return list(_allocators.values())
