"""Idle culling: per-profile timeouts from the profile data, the single-user server's own idle
settings, the culler service with the README's exact role, and the titan.yaml section."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from core.capacity import HostCapacity
from core.profiles import ProfileError, load_profiles
from core.settings import SettingsError, load_settings
from core.units import parse_duration
from spawner.container import build_container_settings
from spawner.idle import cull_interval, idle_shutdown_args
from spawner.options import resolve_selection
from tests.unit.shipped import IMAGES, shipped_profiles
from titan import culling, monitoring

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3
HOST = HostCapacity(cpus=64, memory=1024 * GIB, gpus_total={"T4": 2}, gpus_free={"T4": 2})
SHIPPED = shipped_profiles()


def write_profiles(directory: Path, profiles: list[dict[str, Any]]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "p.yaml"
    path.write_text(yaml.safe_dump({"profiles": profiles}))
    return [path]


def small(slug: str, **extra: Any) -> dict[str, Any]:
    return {"display_name": slug, "slug": slug, "image": "minimal", "resources": {"cpu": 1, "memory": "1G"}, **extra}


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), (2.5, 2.5), ("45s", 45.0), ("30m", 1800.0), ("2h", 7200.0), ("1.5h", 5400.0), ("1d", 86400.0)])
def test_durations_are_read_in_seconds(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2 hours", "h", "10", "-5s", "1w", True])
def test_bad_durations_say_how_to_write_one(text: Any) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_shipped_gpu_profile_culls_sooner_than_the_small_one() -> None:
    timeouts = culling.profile_timeouts(SHIPPED, default=7200)
    assert timeouts["gpu"] == 1800
    assert timeouts["high-memory"] == 3600
    assert timeouts["small"] == 7200  # no idle_timeout: the deployment's default
    assert culling.backstop_timeout(SHIPPED, 7200) == 7200
    assert culling.backstop_timeout(SHIPPED, 600) == 3600  # the longest, whichever it is


def test_profile_idle_timeout_is_normalised_and_checked(tmp_path: Path) -> None:
    profiles = load_profiles(write_profiles(tmp_path / "a", [small("quick", idle_timeout="90s"), small("plain"),
                                                             small("secs", idle_timeout=20)]), IMAGES)
    assert [p.idle_timeout for p in profiles.profiles] == [90.0, None, 20.0]
    with pytest.raises(ProfileError, match=r"p\.yaml: at profiles\.0\.idle_timeout"):
        load_profiles(write_profiles(tmp_path / "b", [small("bad", idle_timeout="2 hours")]), IMAGES)
    with pytest.raises(ProfileError, match="idle_timeout"):
        load_profiles(write_profiles(tmp_path / "c", [small("zero", idle_timeout=0)]), IMAGES)


def test_the_server_gets_its_profiles_idle_shutdown_arguments() -> None:
    gpu = resolve_selection(SHIPPED, {"profile": "gpu"}, "alice", [], HOST)
    settings = build_container_settings(gpu, "titan/datascience:x", "alice", "", "titan", "h-{username}", network="n",
                                        default_idle_timeout=7200)
    assert settings.idle_timeout == 1800
    assert settings.environment["TITAN_IDLE_TIMEOUT"] == "1800"
    assert settings.args == (
        "--ServerApp.shutdown_no_activity_timeout=1800",
        "--MappingKernelManager.cull_idle_timeout=1800",
        "--MappingKernelManager.cull_interval=60",
        "--MappingKernelManager.cull_connected=True",
        "--MappingKernelManager.cull_busy=False",
        "--TerminalManager.cull_inactive_timeout=1800",
        "--TerminalManager.cull_interval=60",
    )
    plain = resolve_selection(SHIPPED, {"profile": "small"}, "alice", [], HOST)
    defaulted = build_container_settings(plain, "t", "alice", "", "titan", "h-{username}", network="n",
                                         default_idle_timeout=300)
    assert "--ServerApp.shutdown_no_activity_timeout=300" in defaulted.args
    assert "--MappingKernelManager.cull_interval=30" in defaulted.args
    never = build_container_settings(plain, "t", "alice", "", "titan", "h-{username}", network="n",
                                     default_idle_timeout=0)
    assert never.args == () and "TITAN_IDLE_TIMEOUT" not in never.environment


def test_short_timeouts_are_checked_often() -> None:
    assert [cull_interval(t) for t in (5, 30, 600, 7200)] == [1, 3, 60, 60]
    assert idle_shutdown_args(0) == ()
    assert "--MappingKernelManager.cull_interval=1" in idle_shutdown_args(5)


def test_the_culler_is_a_hub_service_with_exactly_its_readme_role(tmp_path: Path) -> None:
    path = tmp_path / "titan.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"),
                                    "culling": {"timeout": "45m", "every": 120}}))
    settings = load_settings(path, environ={})
    assert settings.culling["timeout"] == 2700
    service = culling.service(settings, SHIPPED)
    assert service["name"] == "idle-culler"
    # Run through core.supervise: it ends with the hub, and state/pids/idle-culler.pid names it.
    assert service["command"][:5] == [sys.executable, "-m", "core.supervise", "--pid-file",
                                      str(settings.state_dir / "pids" / "idle-culler.pid")]
    assert service["command"][6:9] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    # the longest profile timeout: high-memory's 1h outlasts the 45m default
    assert "--timeout=3600" in service["command"]
    assert "--cull-every=120" in service["command"]
    assert "--cull-users=False" in service["command"]
    role = culling.role()
    assert role["scopes"] == ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    assert role["services"] == ["idle-culler"]
    assert culling.spawner_settings(settings) == {"idle_shutdown": True, "idle_timeout": 2700.0}


def test_culling_settings_have_defaults_and_refuse_unknown_keys(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.yaml", environ={})
    assert settings.culling == {"enabled": True, "timeout": 7200.0, "every": 300, "log_level": "INFO"}
    assert settings.poll_interval == 30
    path = tmp_path / "titan.yaml"
    path.write_text("culling: {idle: 5}\n")
    with pytest.raises(SettingsError, match="at culling: unknown key"):
        load_settings(path, environ={})
    path.write_text("culling: {timeout: forever}\n")
    with pytest.raises(SettingsError, match="at culling.timeout"):
        load_settings(path, environ={})


@pytest.fixture
def deployment() -> Iterator[str]:
    """A deployment of its own: loading jupyterhub_config.py makes its network (core.network)."""
    name = "unit-" + secrets.token_hex(3)
    yield name
    subprocess.run(["docker", "network", "rm", f"{name}-titan"], capture_output=True, check=False)


def hub_config(tmp_path: Path, document: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
               deployment: str) -> Config:
    path = tmp_path / "titan.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "deployment": deployment, **document}))
    monkeypatch.setenv("TITAN_SETTINGS", str(path))
    monkeypatch.delenv("TITAN_STATE_DIR", raising=False)
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    config = Config()
    source = (ROOT / "jupyterhub_config.py").read_text()
    exec(compile(source, "jupyterhub_config.py", "exec"), {"c": config, "__file__": str(ROOT / "jupyterhub_config.py")})  # noqa: S102
    return config


def test_jupyterhub_config_wires_the_culler_the_spawner_and_the_metrics_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deployment: str) -> None:
    config = hub_config(tmp_path, {"culling": {"timeout": "20m"}, "spawner": {"poll_interval": 5}}, monkeypatch,
                        deployment)
    services = {s["name"]: s for s in config.JupyterHub.services}
    roles = {r["name"]: r for r in config.JupyterHub.load_roles}
    assert "--timeout=3600" in services["idle-culler"]["command"]  # high-memory's 1h is the longest
    assert roles["idle-culler"]["scopes"] == list(culling.CULLER_SCOPES)
    assert config.TitanDockerSpawner.idle_timeout == 1200
    assert config.TitanDockerSpawner.idle_shutdown is True
    assert config.Spawner.poll_interval == 5
    token = (tmp_path / "state" / "metrics-token").read_text().strip()
    assert services["titan-metrics"]["api_token"] == token
    assert (tmp_path / "state" / "metrics-token").stat().st_mode & 0o777 == 0o600
    assert roles["titan-metrics"]["scopes"] == ["read:metrics", "access:services!service=titan"]
    assert monitoring.scopes(None) == ["read:metrics"]


def test_culling_off_means_no_culler_and_no_server_stops_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deployment: str) -> None:
    config = hub_config(tmp_path, {"culling": {"enabled": False}}, monkeypatch, deployment)
    assert "idle-culler" not in {s["name"] for s in config.JupyterHub.services}
    assert "idle-culler" not in {r["name"] for r in config.JupyterHub.load_roles}
    assert config.TitanDockerSpawner.idle_shutdown is False


def test_durations_print_for_people() -> None:
    from core.units import format_duration

    assert [format_duration(s) for s in (45, 1800, 5400, 90061)] == ["45s", "30m", "1h 30m", "1d 1h 1m 1s"]
