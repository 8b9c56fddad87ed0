"""``titan.yaml``: the one settings file an admin edits, validated against a schema that
rejects unknown keys, with every default filled in once."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from core.network import NetworkPlan
from core.registry import RegistryError, check_registry
from core.units import parse_duration, parse_memory

log = logging.getLogger("core.settings")

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = Path(__file__).resolve().parent / "settings-schema.json"


class SettingsError(ValueError):
    """titan.yaml is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Settings:
    source: str
    state_dir: Path
    deployment: str
    public_url: str
    hub_port: int
    proxy_api_port: int
    admin_users: frozenset[str]
    named_server_limit_per_user: int
    log_level: str
    github: Mapping[str, Any]
    dev_password: str
    profiles_dir: Path
    home_volume_template: str  # "" until titan.homes resolves it: <deployment>-home-{username}
    start_timeout: int
    host_cpus: float
    host_memory: int
    gpu_inventory_xml: str
    sharing: Mapping[str, Any]
    gateway: Mapping[str, Any]
    service: Mapping[str, Any]  # the Titan service (service/); titan.yaml ``service:`` (formerly ``autosave:``)
    culling: Mapping[str, Any] = field(default_factory=dict)  # timeout in seconds
    network: Mapping[str, Any] = field(default_factory=lambda: dict(NETWORK_DEFAULTS))
    poll_interval: float = 30.0
    engine: str = "docker"  # "docker" or "swarm": core.engine.factory.build_engine
    swarm: Mapping[str, Any] = field(default_factory=lambda: dict(SWARM_DEFAULTS))  # titan.yaml swarm:

    @property
    def published_ports(self) -> tuple[int, int]:
        """The swarm's published port range (swarm.published_ports) as (low, high)."""
        return port_range(self.swarm["published_ports"])

    @property
    def network_plan(self) -> NetworkPlan:
        """Where this deployment's networks come from (core.network)."""
        return NetworkPlan.of(self.deployment, self.network["pool"], self.network["subnet_prefix"])

    @property
    def github_configured(self) -> bool:
        return bool(self.github.get("client_id") and self.github.get("client_secret"))


def settings_path() -> Path:
    """TITAN_SETTINGS, else titan.yaml at the repository root (which may not exist)."""
    return Path(os.environ.get("TITAN_SETTINGS") or REPO_ROOT / "titan.yaml")


def _validate(document: Any, source: str) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document),
                    key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        prefix = "unknown key: " if error.validator == "additionalProperties" else ""
        raise SettingsError(f"{source}: at {where}: {prefix}{error.message}")


def _github_settings(github_doc: Mapping[str, Any], env: Mapping[str, str], public_url: str) -> dict[str, Any]:
    """``auth.github`` with every default filled in; the client id and secret stay as given."""
    github = dict(github_doc)
    # oauthenticator's own variables are honoured, so secrets can stay out of the file.
    for key, variable in (("client_id", "OAUTH_CLIENT_ID"), ("client_secret", "OAUTH_CLIENT_SECRET"),
                          ("callback_url", "OAUTH_CALLBACK_URL")):
        if env.get(variable):
            github[key] = env[variable]
    github["url"] = str(github.get("url") or "https://github.com").rstrip("/")
    github["callback_url"] = github.get("callback_url") or public_url.rstrip("/") + "/hub/oauth_callback"
    github["allowed_organizations"] = list(github.get("allowed_organizations", []))
    github["allowed_users"] = list(github.get("allowed_users", []))
    github["admin_team"] = github.get("admin_team", "")
    github["autosave_push"] = bool(github.get("autosave_push", False))
    github["refresh_age"] = int(github.get("refresh_age", 300))
    return github


GATEWAY_DEFAULTS: Mapping[str, Any] = {
    "enabled": True, "api_port": 8010, "proxy_port": 8011, "scheduler_proxy_port": 8012,
    "idle_timeout": 1800, "server_check_period": 10, "log_level": "INFO",
}


SERVICE_DEFAULTS: Mapping[str, Any] = {
    "enabled": True, "port": 8020, "interval": 600, "min_interval": 60, "check_interval": 10,
    "max_file_size_mb": 10, "max_body_mb": 10, "branch_template": "autosave/{user}/{server}", "db_url": "",
    "log_level": "INFO",
}

SHARING_DEFAULTS: Mapping[str, Any] = {
    "public_links": False, "frame_ancestors": [], "max_notebook_mb": 100, "dashboard_profile": "",
    "guess_limit": 20, "guess_window": 60, "versions_kept": 10, "public_dashboard_port": 0,
    "public_dashboard_url": "",
}


#: Sections renamed in titan.yaml: old key -> (new key, the release that renamed it). The old key is
#: still read, with a warning naming the new one.
DEPRECATED_SECTIONS: Mapping[str, tuple[str, str]] = {"autosave": ("service", "2026.12")}


NETWORK_DEFAULTS: Mapping[str, Any] = {"pool": "10.213.0.0/16", "subnet_prefix": 24}


#: homes_root "": homes are Docker volumes (core.homes says what a root changes).
SWARM_DEFAULTS: Mapping[str, Any] = {"manager": "", "hub_address": "", "published_ports": "30000-30999",
                                     "registry": "", "homes_root": ""}


def port_range(text: str) -> tuple[int, int]:
    """``"30000-30999"`` as (30000, 30999); ValueError when it is not a range of ports."""
    low_text, _, high_text = text.partition("-")
    low, high = int(low_text), int(high_text)
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"{text!r} is not a port range low-high within 1024-65535")
    return low, high


def _swarm(document: Mapping[str, Any], engine: str, source: str) -> dict[str, Any]:
    swarm = {**SWARM_DEFAULTS, **document}
    try:
        port_range(swarm["published_ports"])
    except ValueError as error:
        raise SettingsError(f"{source}: at swarm.published_ports: {error}") from None
    try:
        check_registry(swarm["registry"])
    except RegistryError as error:
        raise SettingsError(f"{source}: at swarm.registry: {error}") from None
    if swarm["homes_root"] and engine != "swarm":
        raise SettingsError(f"{source}: at swarm.homes_root: homes on shared storage need engine: swarm "
                            f"(engine is {engine})")
    if engine == "swarm" and not swarm["hub_address"]:
        raise SettingsError(f"{source}: at swarm.hub_address: engine: swarm needs the hub host's address on the "
                            f"nodes' network (where servers on every node reach the hub)")
    return swarm


CULLING_DEFAULTS: Mapping[str, Any] = {"enabled": True, "timeout": 7200.0, "every": 300, "log_level": "INFO"}


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and normalise the settings; a missing file means all defaults."""
    path = path or settings_path()
    env = os.environ if environ is None else environ
    document: Any = {}
    if path.exists():
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise SettingsError(f"{path}: not valid YAML: {error}") from None
    _validate(document, str(path))
    document = _renamed_sections(document, str(path))
    hub = document.get("hub", {})
    auth = document.get("auth", {})
    spawner = document.get("spawner", {})
    github = _github_settings(auth.get("github", {}), env, hub.get("public_url", "http://127.0.0.1:8000"))
    state_dir = Path(env.get("TITAN_STATE_DIR") or document.get("state_dir") or REPO_ROOT / "state")
    network = {**NETWORK_DEFAULTS, **document.get("network", {})}
    try:
        NetworkPlan.of("check", network["pool"], network["subnet_prefix"])
    except ValueError as error:
        raise SettingsError(f"{path}: at network: {error}") from None
    engine = document.get("engine", "docker")
    return Settings(
        source=str(path),
        state_dir=state_dir.resolve(),
        deployment=document.get("deployment", "titan"),
        public_url=hub.get("public_url", "http://127.0.0.1:8000").rstrip("/"),
        hub_port=hub.get("hub_port", 8081),
        proxy_api_port=hub.get("proxy_api_port", 8001),
        admin_users=frozenset(hub.get("admin_users", [])),
        named_server_limit_per_user=hub.get("named_server_limit_per_user", 3),
        log_level=hub.get("log_level", "INFO"),
        github=github,
        dev_password=auth.get("dev_password", ""),
        profiles_dir=Path(spawner.get("profiles_dir") or REPO_ROOT / "profiles"),
        home_volume_template=spawner.get("home_volume_template", ""),  # "": titan.homes decides
        start_timeout=spawner.get("start_timeout", 120),
        host_cpus=float(spawner.get("host_cpus", 0)),
        host_memory=parse_memory(spawner["host_memory"]) if "host_memory" in spawner else 0,
        gpu_inventory_xml=spawner.get("gpu_inventory_xml", ""),
        sharing={**SHARING_DEFAULTS, **document.get("sharing", {})},
        gateway={**GATEWAY_DEFAULTS, **document.get("gateway", {})},
        service={**SERVICE_DEFAULTS, **document.get("service", {})},
        culling=_culling(document.get("culling", {})),
        poll_interval=float(spawner.get("poll_interval", 30)),
        network=network,
        engine=engine,
        swarm=_swarm(document.get("swarm", {}), engine, str(path)),
    )


def _renamed_sections(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``document`` with each deprecated section under its new name (DEPRECATED_SECTIONS)."""
    result = dict(document)
    for old, (new, since) in DEPRECATED_SECTIONS.items():
        if old not in result:
            continue
        if new in result:
            raise SettingsError(f"{source}: both {old}: and {new}: are set; {old}: is the old name of {new}: "
                                f"(since {since}), keep only {new}:")
        log.warning("%s: the %s: section is now called %s: (since %s); rename it, the old name will go",
                    source, old, new, since)
        result[new] = result.pop(old)
    return result


def _culling(document: Mapping[str, Any]) -> dict[str, Any]:
    culling = {**CULLING_DEFAULTS, **document}
    culling["timeout"] = parse_duration(culling["timeout"])
    return culling
