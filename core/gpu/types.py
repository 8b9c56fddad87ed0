"""GPU types named in the profiles ("T4", "H100", ...) and the host's units of each."""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.gpu.inventory import GpuUnit


def match_types(units: list[GpuUnit], rules: Mapping[str, str]) -> dict[str, list[GpuUnit]]:
    """Group ``units`` by type: ``rules`` maps a type name to a regex searched in ``unit.model``.

    Every type in ``rules`` is a key of the result, with no units when none match. A unit that
    matches several rules goes to the first in order; a unit that matches none is left out.
    Raises ``ValueError`` for a rule that is not a valid regular expression.
    """
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for name, pattern in rules.items():
        try:
            patterns.append((name, re.compile(pattern)))
        except re.error as error:
            raise ValueError(f"GPU type {name!r}: {pattern!r} is not a valid regular expression: {error}") \
                from error
    grouped: dict[str, list[GpuUnit]] = {name: [] for name in rules}
    for unit in units:
        for name, compiled in patterns:
            if compiled.search(unit.model):
                grouped[name].append(unit)
                break
    return grouped


def describe_free(type_name: str, free: int, total: int) -> str:
    """``"H100: 1 of 1 free"``, or ``"this host has no H100 GPU"`` when it has none."""
    if total == 0:
        return f"this host has no {type_name} GPU"
    return f"{type_name}: {free} of {total} free"
