"""Per-user Dask limits: which apply to a user, and what a new cluster or a scale request may use.

Pure functions on plain data. The backend calls them with no ``await`` between the check and the
change it guards, so two requests of one user cannot both pass a check that only one of them fits.

A user's usage is the sum over their active clusters of the scheduler plus every worker that is
running, starting, or asked for (the largest of those counts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.units import format_memory, parse_memory

LIMIT_KEYS = ("max_clusters", "max_cores", "max_memory", "max_workers")

DEFAULT_LIMITS: Mapping[str, Any] = {"max_clusters": 2, "max_cores": 8, "max_memory": "16G", "max_workers": 8}


class LimitExceeded(ValueError):
    """A request would take a user past one of their limits; the message names the limit."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    max_clusters: int
    max_cores: float
    max_memory: int  # bytes
    max_workers: int


@dataclass(frozen=True)
class Shape:
    """What one cluster holds: its scheduler and ``workers`` workers of one size."""

    scheduler_cores: float
    scheduler_memory: int
    worker_cores: float
    worker_memory: int
    workers: int = 0

    @property
    def cores(self) -> float:
        return self.scheduler_cores + self.workers * self.worker_cores

    @property
    def memory(self) -> int:
        return self.scheduler_memory + self.workers * self.worker_memory


def parse_limits(raw: Mapping[str, Any], base: Limits | None = None) -> Limits:
    """A ``limits`` block of the profile data (keys may be missing when ``base`` is given)."""
    values: dict[str, Any] = {}
    for key in LIMIT_KEYS:
        if key in raw:
            value = raw[key]
            values[key] = parse_memory(str(value)) if key == "max_memory" else value
        elif base is not None:
            values[key] = getattr(base, key)
        else:
            raise ValueError(f"dask limits: {key} is missing")
    return Limits(max_clusters=int(values["max_clusters"]), max_cores=float(values["max_cores"]),
                  max_memory=int(values["max_memory"]), max_workers=int(values["max_workers"]))


def limits_for(base: Limits, group_limits: Mapping[str, Mapping[str, Any]], groups: Iterable[str]) -> Limits:
    """The limits of a member of ``groups``: for each limit that one of their groups overrides,
    the most generous override; for the others, ``base``."""
    limits = base
    overrides = [group_limits[g] for g in sorted(set(groups)) if g in group_limits]
    for key in LIMIT_KEYS:
        values = [getattr(parse_limits({key: o[key]}, base), key) for o in overrides if key in o]
        if values:
            limits = replace(limits, **{key: max(values)})
    return limits


def _cores(value: float) -> str:
    return f"{value:g} core" + ("" if value == 1 else "s")


def check_new_cluster(limits: Limits, active: Sequence[Shape], new: Shape) -> None:
    """Raise :class:`LimitExceeded` if a user whose clusters are ``active`` may not start ``new``."""
    if len(active) + 1 > limits.max_clusters:
        raise LimitExceeded(
            "max_clusters",
            f"Cluster limit reached: you have {len(active)} active cluster(s) and your limit is "
            f"{limits.max_clusters} (max_clusters). Shut one down (cluster.shutdown(), or "
            f"Gateway().stop_cluster(name)) and try again.",
        )
    cores = sum(s.cores for s in active)
    if cores + new.cores > limits.max_cores + 1e-9:
        raise LimitExceeded(
            "max_cores",
            f"Core limit reached: your clusters use {_cores(cores)}, a new scheduler needs "
            f"{_cores(new.cores)}, and your limit is {_cores(limits.max_cores)} (max_cores).",
        )
    memory = sum(s.memory for s in active)
    if memory + new.memory > limits.max_memory:
        raise LimitExceeded(
            "max_memory",
            f"Memory limit reached: your clusters use {format_memory(memory)}, a new scheduler needs "
            f"{format_memory(new.memory)}, and your limit is {format_memory(limits.max_memory)} (max_memory).",
        )


def workers_allowed(limits: Limits, others: Sequence[Shape], this: Shape) -> tuple[int, str]:
    """How many workers the cluster ``this`` may have while the user's other clusters hold
    ``others``, and the limit that decides it (``max_workers``, ``max_cores`` or ``max_memory``)."""
    by_limit = {
        "max_workers": limits.max_workers - sum(s.workers for s in others),
        "max_cores": math.floor((limits.max_cores - sum(s.cores for s in others) - this.scheduler_cores + 1e-9)
                                / this.worker_cores),
        "max_memory": (limits.max_memory - sum(s.memory for s in others) - this.scheduler_memory)
        // this.worker_memory,
    }
    limit = min(by_limit, key=lambda k: by_limit[k])
    return max(0, int(by_limit[limit])), limit


def describe_limit(limits: Limits, limit: str) -> str:
    """``max_cores=4`` style text for messages."""
    value = getattr(limits, limit)
    shown = format_memory(value) if limit == "max_memory" else f"{value:g}"
    return f"{limit}={shown}"
