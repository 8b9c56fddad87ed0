"""Profiles as data: load the YAML files in ``profiles/``, validate them, normalise them once.

After :func:`load_profiles` nothing downstream checks for missing keys: every profile has a
slug, a description, an access rule, resources with every field, and every option has a
default choice. :func:`profiles_in` is the one cached loader the spawner, the gateway, the
service and the culler use: a directory's files are read again only when one of them changes.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from core.images import docker_images
from core.units import parse_duration, parse_memory

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
SCHEMA_FILE = PROFILES_DIR / "schema.json"
#: Processes and threads a server's container may run when its profile says nothing
#: (``resources.processes``): far above what JupyterLab, kernels and their thread pools use, and
#: low enough that a fork loop cannot exhaust the host's pid space.
DEFAULT_PROCESSES = 4096


class ProfileError(ValueError):
    """The profile data is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Resources:
    cpu: float
    memory: int  # bytes
    gpu_type: str | None
    gpu_count: int
    processes: int = DEFAULT_PROCESSES  # the container's process (and thread) limit
    pool: str = ""  # Swarm only: the node pool (node label titan.pool) it must run in; "": any node


@dataclass(frozen=True)
class Choice:
    key: str
    display_name: str
    description: str
    override: Mapping[str, Any]


@dataclass(frozen=True)
class Unlisted:
    display_name: str
    validation_regex: str
    validation_message: str
    override: Mapping[str, Any]

    def accepts(self, value: str) -> bool:
        return re.fullmatch(self.validation_regex, value) is not None


@dataclass(frozen=True)
class ProfileOption:
    key: str
    display_name: str
    choices: tuple[Choice, ...]
    default: str
    unlisted: Unlisted | None

    def choice(self, key: str) -> Choice | None:
        return next((c for c in self.choices if c.key == key), None)


@dataclass(frozen=True)
class Access:
    groups: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    @property
    def everyone(self) -> bool:
        return not self.groups and not self.users

    def allows(self, user: str, groups: Iterable[str]) -> bool:
        return self.everyone or user in self.users or bool(self.groups.intersection(groups))


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    description: str
    default: bool
    settings: Mapping[str, Any]  # {"image": str, "resources": {...}} before any choice
    access: Access
    options: tuple[ProfileOption, ...] = field(default=())
    clone: tuple[str, ...] = ()  # repositories the Titan service clones into the home at start
    idle_timeout: float | None = None  # seconds idle before the server stops; None: the deployment's default

    def option(self, key: str) -> ProfileOption | None:
        return next((o for o in self.options if o.key == key), None)


@dataclass(frozen=True)
class ProfileSet:
    profiles: tuple[Profile, ...]
    gpu_types: Mapping[str, str]  # type name → regex on the model name
    gpu_display_names: Mapping[str, str]
    dask: Mapping[str, Any] = field(default_factory=dict)  # the `dask` sections, merged; gateway/ reads it

    def get(self, slug: str) -> Profile | None:
        return next((p for p in self.profiles if p.slug == slug), None)

    @property
    def default(self) -> Profile:
        return next((p for p in self.profiles if p.default), self.profiles[0])


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:63] or "profile"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` merged over ``base``, nested mappings merged key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resources_from_settings(settings: Mapping[str, Any]) -> Resources:
    """The merged ``resources`` block of a profile and its choices → :class:`Resources`."""
    raw = settings.get("resources", {})
    gpu = raw.get("gpu") or {}
    gpu_type = gpu.get("type")
    count = int(gpu.get("count", 1 if gpu_type else 0)) if gpu_type else 0
    return Resources(cpu=float(raw["cpu"]), memory=parse_memory(str(raw["memory"])),
                     gpu_type=gpu_type, gpu_count=count, processes=int(raw.get("processes", DEFAULT_PROCESSES)),
                     pool=str(raw.get("pool", "")))


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def _error_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def validate_document(document: Any, source: str) -> None:
    """Raise :class:`ProfileError` naming the file and key of the first schema violation."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        message = error.message
        if error.validator == "additionalProperties":
            message = f"unknown key: {message}"
        raise ProfileError(f"{source}: at {_error_path(error)}: {message}")


def _normalise_option(key: str, raw: Mapping[str, Any], source: str, where: str) -> ProfileOption:
    choices = tuple(
        Choice(key=str(choice_key), display_name=c["display_name"], description=c.get("description", ""),
               override=c.get("override", {}))
        for choice_key, c in raw["choices"].items()
    )
    defaults = [str(k) for k, c in raw["choices"].items() if c.get("default")]
    if len(defaults) > 1:
        raise ProfileError(f"{source}: at {where}: more than one default choice ({', '.join(defaults)})")
    unlisted = None
    raw_unlisted = raw.get("unlisted_choice")
    if raw_unlisted and raw_unlisted.get("enabled", False):
        regex = raw_unlisted.get("validation_regex", ".*")
        try:
            re.compile(regex)
        except re.error as error:
            raise ProfileError(f"{source}: at {where}.unlisted_choice.validation_regex: {error}") from None
        unlisted = Unlisted(
            display_name=raw_unlisted.get("display_name", "Other"),
            validation_regex=regex,
            validation_message=raw_unlisted.get("validation_message", f"Does not match {regex}"),
            override=raw_unlisted.get("override", {}),
        )
    return ProfileOption(key=key, display_name=raw["display_name"], choices=choices,
                         default=defaults[0] if defaults else choices[0].key, unlisted=unlisted)


def _normalise_profile(raw: Mapping[str, Any], source: str, index: int) -> Profile:
    slug = raw.get("slug") or slugify(raw["display_name"])
    where = f"profiles.{index} ({slug})"
    settings = {"image": raw["image"], "resources": copy.deepcopy(dict(raw["resources"]))}
    if "cpu" not in settings["resources"] or "memory" not in settings["resources"]:
        raise ProfileError(f"{source}: at {where}.resources: cpu and memory are required")
    access = raw.get("access", {})
    options = tuple(
        _normalise_option(key, option, source, f"{where}.profile_options.{key}")
        for key, option in raw.get("profile_options", {}).items()
    )
    return Profile(
        slug=slug, display_name=raw["display_name"], description=raw.get("description", ""),
        default=bool(raw.get("default", False)), settings=settings,
        access=Access(groups=frozenset(access.get("groups", [])), users=frozenset(access.get("users", []))),
        options=options, clone=tuple(raw.get("clone", ())),
        idle_timeout=parse_duration(raw["idle_timeout"]) if "idle_timeout" in raw else None,
    )


def _check_references(profiles: list[Profile], gpu_types: Mapping[str, str], images: Iterable[str],
                      source: str) -> None:
    known_images = set(images)
    for profile in profiles:
        blocks = [profile.settings] + [c.override for o in profile.options for c in o.choices]
        for block in blocks:
            image = block.get("image")
            if image is not None and image not in known_images:
                raise ProfileError(f"{source}: profile {profile.slug!r} names image {image!r}, "
                                   f"not one of {', '.join(sorted(known_images))}")
            gpu_type = block.get("resources", {}).get("gpu", {}).get("type")
            if gpu_type is not None and gpu_type not in gpu_types:
                raise ProfileError(f"{source}: profile {profile.slug!r} names GPU type {gpu_type!r}, "
                                   f"not one of gpu_types ({', '.join(gpu_types) or 'none'})")
        try:
            resources_from_settings(profile.settings)
        except ValueError as error:
            raise ProfileError(f"{source}: profile {profile.slug!r}: {error}") from None


def load_profiles(paths: Iterable[Path], images: Iterable[str]) -> ProfileSet:
    """Load, validate and normalise profile files (read in the order given)."""
    profiles: list[Profile] = []
    gpu_types: dict[str, str] = {}
    gpu_names: dict[str, str] = {}
    dask: dict[str, Any] = {}
    sources: list[str] = []
    for path in paths:
        source = str(path)
        sources.append(source)
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ProfileError(f"{source}: not valid YAML: {error}") from None
        validate_document(document, source)
        dask = deep_merge(dask, document.get("dask", {}))
        for name, rule in document.get("gpu_types", {}).items():
            try:
                re.compile(rule["match"])
            except re.error as error:
                raise ProfileError(f"{source}: at gpu_types.{name}.match: {error}") from None
            gpu_types[name] = rule["match"]
            gpu_names[name] = rule.get("display_name", name)
        for index, raw in enumerate(document.get("profiles", [])):
            profile = _normalise_profile(raw, source, index)
            if any(p.slug == profile.slug for p in profiles):
                raise ProfileError(f"{source}: at profiles.{index}: slug {profile.slug!r} is used twice")
            profiles.append(profile)
    where = ", ".join(sources) or "(no files)"
    if not profiles:
        raise ProfileError(f"{where}: no profiles defined")
    if sum(p.default for p in profiles) > 1:
        raise ProfileError(f"{where}: more than one profile has default: true")
    _check_references(profiles, gpu_types, images, where)
    return ProfileSet(profiles=tuple(profiles), gpu_types=gpu_types, gpu_display_names=gpu_names, dask=dask)


def profile_files(directory: Path) -> list[Path]:
    """The YAML files of a profiles directory, sorted by name."""
    return sorted(p for p in directory.glob("*.y*ml") if p.is_file())


_loaded: dict[Path, tuple[tuple[tuple[str, int], ...], ProfileSet]] = {}
_loading = threading.Lock()


def profiles_in(directory: Path) -> ProfileSet:
    """The validated profiles of ``directory`` (its YAML files, by name), profiles naming the
    catalogue's Docker images. Cached: read again only when a file is added, removed or changed.
    Raises :class:`ProfileError` (naming the file and key) when they are invalid; nothing is cached
    then, so the next call tries again."""
    directory = Path(directory)
    files = profile_files(directory)
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    with _loading:
        cached = _loaded.get(directory)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        profiles = load_profiles(files, images=docker_images())
        _loaded[directory] = (stamp, profiles)
        return profiles


def loaded_profile_sets() -> list[ProfileSet]:
    """Every profile set :func:`profiles_in` holds now (one per directory read in this process)."""
    with _loading:
        return [profiles for _, profiles in _loaded.values()]
