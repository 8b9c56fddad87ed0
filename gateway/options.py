"""Cluster options: the ``dask`` section of the profile data, and the options a client sends.

The profile data (``profiles/*.yaml``, section ``dask``) is the one source of truth: it lists the
worker sizes users may choose (cores, memory, and GPUs per worker of the profile data's
``gpu_types``), the scheduler's size, and the limits. :func:`dask_settings`
normalises it once (every default filled in); the options are declared once, in
:data:`OPTIONS`: :func:`parse_request` checks what a client sent against it and raises
:class:`OptionsError` with a message meant for the user; :func:`options_spec` gives dask-gateway's
``Options`` from it, so ``Gateway().cluster_options()`` shows the same choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from dask_gateway_server.options import Field, Float, Integer, Options, Select, String

from core.profiles import deep_merge
from core.units import parse_memory
from gateway.limits import DEFAULT_LIMITS, Limits, parse_limits

SERVER_FIELD = "server"

DEFAULT_DASK: Mapping[str, Any] = {
    "worker_cores": {"choices": [1], "default": 1},
    "worker_memory": {"choices": ["1G", "2G", "4G"], "default": "2G"},
    "worker_gpus": {"choices": [0], "default": 0},
    "scheduler": {"cores": 1, "memory": "1G"},
    "limits": DEFAULT_LIMITS,
    "group_limits": {},
}


class OptionsError(ValueError):
    """The cluster options a client sent cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class DaskSettings:
    worker_cores: tuple[float, ...]
    default_cores: float
    worker_memory: tuple[str, ...]  # as written in the profile data, e.g. "512M"
    default_memory: str
    scheduler_cores: float
    scheduler_memory: int
    limits: Limits
    group_limits: Mapping[str, Mapping[str, Any]]
    worker_gpus: tuple[int, ...] = (0,)  # GPUs per worker a user may ask for
    default_gpus: int = 0
    gpu_types: tuple[str, ...] = ()  # the profile data's gpu_types workers may use


@dataclass(frozen=True)
class ClusterRequest:
    """Validated options: the server the cluster belongs to and the worker size.

    ``worker_gpu_type`` is ``""`` until :func:`resolve_gpu_type` fills in the server's type."""

    server: str
    worker_cores: float
    worker_memory: str
    idle_timeout: float
    worker_gpus: int = 0
    worker_gpu_type: str = ""

    @property
    def worker_memory_bytes(self) -> int:
        return parse_memory(self.worker_memory)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_cores(value: float) -> str:
    return f"{value:g}"


def dask_settings(raw: Mapping[str, Any], gpu_types: Iterable[str] | None = None) -> DaskSettings:
    """The profile data's ``dask`` section (already schema-checked) with every default filled in.

    ``gpu_types`` are the names in the profile data's ``gpu_types``; ``dask.worker_gpus.types``
    may only name those (absent: all of them). Without ``gpu_types`` no type is checked."""
    merged = deep_merge(DEFAULT_DASK, raw)
    for key in ("worker_cores", "worker_memory", "worker_gpus"):  # choices without a default: the first
        if "choices" in raw.get(key, {}) and "default" not in raw[key]:
            merged[key]["default"] = raw[key]["choices"][0]
    cores = tuple(float(c) for c in merged["worker_cores"]["choices"])
    default_cores = float(merged["worker_cores"]["default"])
    if default_cores not in cores:
        raise ValueError(f"dask.worker_cores: the default {default_cores:g} is not one of the choices "
                         f"({', '.join(map(format_cores, cores))})")
    memory = tuple(str(m) for m in merged["worker_memory"]["choices"])
    default_memory = str(merged["worker_memory"]["default"])
    if parse_memory(default_memory) not in {parse_memory(m) for m in memory}:
        raise ValueError(f"dask.worker_memory: the default {default_memory} is not one of the choices "
                         f"({', '.join(memory)})")
    gpus = tuple(int(n) for n in merged["worker_gpus"]["choices"])
    default_gpus = int(merged["worker_gpus"]["default"])
    if default_gpus not in gpus:
        raise ValueError(f"dask.worker_gpus: the default {default_gpus} is not one of the choices "
                         f"({', '.join(map(str, gpus))})")
    given = merged["worker_gpus"].get("types")
    if gpu_types is None:  # not checked against gpu_types (callers that only look at sizes)
        types = tuple(given or ())
    else:
        known = list(gpu_types)
        types = tuple(known if given is None else given)
        unknown = [t for t in types if t not in known]
        if unknown:
            raise ValueError(f"dask.worker_gpus.types: {', '.join(unknown)} not in gpu_types "
                             f"({', '.join(known) or 'none'})")
    for group, override in merged["group_limits"].items():
        try:
            parse_limits(override, parse_limits(merged["limits"]))
        except ValueError as error:
            raise ValueError(f"dask.group_limits.{group}: {error}") from None
    return DaskSettings(
        worker_cores=cores, default_cores=default_cores, worker_memory=memory, default_memory=default_memory,
        scheduler_cores=float(merged["scheduler"]["cores"]),
        scheduler_memory=parse_memory(str(merged["scheduler"]["memory"])),
        limits=parse_limits(merged["limits"]), group_limits=dict(merged["group_limits"]),
        worker_gpus=gpus, default_gpus=default_gpus, gpu_types=types,
    )


def _cores(settings: DaskSettings, value: Any) -> float:
    offered = ", ".join(map(format_cores, settings.worker_cores))
    try:
        cores = float(value)
    except (TypeError, ValueError):
        raise OptionsError(f"worker_cores must be a number, one of: {offered}.") from None
    if isinstance(value, bool) or not math.isfinite(cores) or cores not in settings.worker_cores:
        raise OptionsError(f"worker_cores={value!r} is not offered. Choose one of: {offered}.")
    return cores


def _memory(settings: DaskSettings, value: Any) -> str:
    offered = ", ".join(settings.worker_memory)
    if not isinstance(value, str):
        raise OptionsError(f"worker_memory must be a string like {settings.default_memory!r}, one of: {offered}.")
    try:
        size = parse_memory(value)
    except ValueError:
        raise OptionsError(f"worker_memory={value!r} is not a memory size. Choose one of: {offered}.") from None
    for choice in settings.worker_memory:
        if parse_memory(choice) == size:
            return choice
    raise OptionsError(f"worker_memory={value!r} is not offered. Choose one of: {offered}.")


def _gpus(settings: DaskSettings, value: Any) -> int:
    offered = ", ".join(map(str, settings.worker_gpus))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionsError(f"worker_gpus must be a whole number of GPUs per worker, one of: {offered}.")
    if value not in settings.worker_gpus:
        raise OptionsError(f"worker_gpus={value!r} is not offered. Choose one of: {offered}.")
    return value


def _gpu_type(settings: DaskSettings, value: Any) -> str:
    offered = ", ".join(settings.gpu_types) or "none on this deployment"
    if not isinstance(value, str):
        raise OptionsError(f"worker_gpu_type must be a GPU type name ('' for your server's), one of: {offered}.")
    if value and value not in settings.gpu_types:
        raise OptionsError(f"worker_gpu_type={value!r} is not offered. Choose one of: {offered} "
                           "(or '' for your server's type).")
    return value


def _idle_timeout(value: Any, max_idle_timeout: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OptionsError(f"idle_timeout must be a number of seconds, not {value!r}.")
    if max_idle_timeout > 0 and not 0 < value <= max_idle_timeout:
        raise OptionsError(f"idle_timeout must be between 1 and {max_idle_timeout:g} seconds "
                           f"(this deployment stops idle clusters after {max_idle_timeout:g} s).")
    if value < 0:
        raise OptionsError("idle_timeout cannot be negative.")
    return float(value)


def resolve_gpu_type(settings: DaskSettings, request: ClusterRequest, server_type: str | None) -> ClusterRequest:
    """Fill in the workers' GPU type: the one asked for, else ``server_type`` (the type of the GPUs
    the cluster's server holds, or of its profile). No GPUs per worker: no type."""
    if not request.worker_gpus:
        return replace(request, worker_gpu_type="")
    if request.worker_gpu_type:
        return request
    offered = ", ".join(settings.gpu_types) or "none on this deployment"
    if not server_type:
        raise OptionsError(f"worker_gpus={request.worker_gpus} needs a GPU type: your server has no GPU, so "
                           f"pass worker_gpu_type, one of: {offered}.")
    if server_type not in settings.gpu_types:
        raise OptionsError(f"Your server's GPU type {server_type} is not offered to Dask workers. "
                           f"Pass worker_gpu_type, one of: {offered}.")
    return replace(request, worker_gpu_type=server_type)


def _server(settings: DaskSettings, max_idle_timeout: float, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 255:
        raise OptionsError("server must be the name of one of your servers ('' for the default one).")
    return value


@dataclass(frozen=True)
class Option:
    """One cluster option: how a client's value is checked, its default, and how dask-gateway's
    options form shows it (``None``: not shown, as the GPU fields where workers get no GPUs)."""

    name: str
    parse: Callable[[DaskSettings, float, Any], Any]  # (settings, max_idle_timeout, value) -> value
    default: Callable[[DaskSettings, float], Any]
    field: Callable[[DaskSettings, float], Field | None]


def _gpus_offered(settings: DaskSettings) -> bool:
    return any(settings.worker_gpus)


#: The cluster options, declared once: :func:`parse_request` and :func:`options_spec` read this table.
OPTIONS: tuple[Option, ...] = (
    Option(SERVER_FIELD, _server, lambda s, m: "",
           lambda s, m: String(SERVER_FIELD, default="", label="Server the cluster belongs to (stops with it)")),
    Option("worker_cores", lambda s, m, v: _cores(s, v), lambda s, m: s.default_cores,
           lambda s, m: Select("worker_cores", [format_cores(c) for c in s.worker_cores],
                               default=format_cores(s.default_cores), label="Worker cores")),
    Option("worker_memory", lambda s, m, v: _memory(s, v), lambda s, m: s.default_memory,
           lambda s, m: Select("worker_memory", list(s.worker_memory), default=s.default_memory,
                               label="Worker memory")),
    Option("worker_gpus", lambda s, m, v: _gpus(s, v), lambda s, m: s.default_gpus,
           lambda s, m: Integer("worker_gpus", default=s.default_gpus, min=min(s.worker_gpus),
                                max=max(s.worker_gpus), label="GPUs per worker") if _gpus_offered(s) else None),
    Option("worker_gpu_type", lambda s, m, v: _gpu_type(s, v), lambda s, m: "",
           lambda s, m: Select("worker_gpu_type", ["", *s.gpu_types], default="",
                               label="Worker GPU type ('' for your server's)") if _gpus_offered(s) else None),
    Option("idle_timeout", lambda s, m, v: _idle_timeout(v, m), lambda s, m: m,
           lambda s, m: Float("idle_timeout", default=m, min=0, max=m or None,
                              label="Stop after this many idle seconds")),
)
FIELDS = tuple(option.name for option in OPTIONS)


def parse_request(settings: DaskSettings, request: Any, max_idle_timeout: float) -> ClusterRequest:
    """Validate the ``cluster_options`` a client sent. Missing fields take their defaults."""
    if request is None:
        request = {}
    if not isinstance(request, Mapping):
        raise OptionsError(f"Cluster options must be a mapping, not {type(request).__name__}.")
    unknown = sorted(str(k) for k in request if k not in FIELDS)
    if unknown:
        raise OptionsError(f"Unknown cluster option(s): {', '.join(unknown)}. "
                           f"The options are: {', '.join(FIELDS)}.")
    values = {option.name: option.parse(settings, max_idle_timeout,
                                        request.get(option.name, option.default(settings, max_idle_timeout)))
              for option in OPTIONS}
    return ClusterRequest(**values)


def options_spec(settings: DaskSettings, max_idle_timeout: float) -> Options:
    """The options as dask-gateway describes them to clients (``GET /api/v1/options``)."""
    fields = (option.field(settings, max_idle_timeout) for option in OPTIONS)
    return Options(*(field for field in fields if field is not None))
