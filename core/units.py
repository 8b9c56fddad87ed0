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


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])$")


def parse_duration(value: str | int | float) -> float:
    """A duration in seconds: a number of seconds, or ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration; write seconds or a number and s, m, h or d, e.g. 2h")
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds → ``"2h"``, ``"30m"``, ``"1h 30m"``, ``"45s"``."""
    seconds = round(seconds)
    parts = []
    for suffix, factor in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= factor:
            parts.append(f"{seconds // factor}{suffix}")
            seconds %= factor
    return " ".join(parts) or "0s"
