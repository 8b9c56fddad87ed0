"""Memory sizes: parsing the profile notation and printing sizes for people."""

from __future__ import annotations

import re

_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGT])$")


def parse_memory(text: str) -> int:
    """``"2G"`` → bytes (powers of 1024, as Docker and KubeSpawner read them)."""
    match = _MEMORY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a memory size; write a number and K, M, G or T, e.g. 8G")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_memory(size: int) -> str:
    """Bytes → ``"23.5 GiB"`` (one decimal when it is not whole)."""
    for suffix, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {suffix}" if value == int(value) else f"{value:.1f} {suffix}"
    return f"{size} B"


def format_cpu(cpu: float) -> str:
    whole = cpu == int(cpu)
    count = f"{int(cpu)}" if whole else f"{cpu:g}"
    return f"{count} CPU" + ("" if cpu == 1 else "s")
