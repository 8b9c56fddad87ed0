"""Idle culling: what JupyterHub needs for it, built from titan.yaml and the profiles.

Two layers, no culler of our own:

1. Each server stops itself after its profile's ``idle_timeout`` (default: ``culling.timeout``):
   the spawner passes jupyter_server's own idle settings (``spawner.idle``). The hub notices the exit
   at its next poll (``spawner.poll_interval``) and runs the spawner's ``stop``: the server's Dask
   clusters stop and its GPUs are freed; the Titan service takes the final autosave snapshot.
2. jupyterhub-idle-culler, a hub-managed service with exactly the role its README gives, culls any
   server idle (by the hub's ``last_activity``) for longer than the *longest* profile timeout: the
   backstop for a server that does not stop itself (an image without the settings, a stuck server).
   It stops servers through the hub's API, so the same ``stop`` runs.

The culler's timeout is computed when the hub starts: after changing a profile's ``idle_timeout``,
restart the hub for the backstop (new servers get the new timeout at once).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from core.profiles import ProfileSet, profiles_in
from core.settings import Settings
from core.supervise import supervised

SERVICE_NAME = "idle-culler"
ROLE_NAME = "idle-culler"

#: Exactly the scopes jupyterhub-idle-culler's README lists (no ``admin:users``: users are not culled).
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")


def profile_timeouts(profiles: ProfileSet, default: float) -> dict[str, float]:
    """Profile slug → its idle timeout in seconds (the profile's own, else ``default``)."""
    return {p.slug: (p.idle_timeout if p.idle_timeout is not None else default) for p in profiles.profiles}


def backstop_timeout(profiles: ProfileSet, default: float) -> int:
    """The culler's timeout: the longest of the profiles' timeouts, in whole seconds."""
    return int(round(max(profile_timeouts(profiles, default).values(), default=default)))


def load_shipped_profiles(settings: Settings) -> ProfileSet:
    """The profiles the spawner will use (validated: a bad file fails the hub's start, named)."""
    return profiles_in(settings.profiles_dir)


def command(timeout: int, every: int, log_level: str = "INFO") -> list[str]:
    """The culler's command: servers idle for ``timeout`` s are stopped, checked every ``every`` s.
    Users and named-server definitions are kept (``--cull-users`` and ``--remove-named-servers`` off)."""
    return [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={timeout}",
        f"--cull-every={every}",
        "--cull-users=False",
        "--remove-named-servers=False",
        f"--IdleCuller.log_level={log_level}",
    ]


def service(settings: Settings, profiles: ProfileSet | None = None) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry for the culler (the hub starts and stops it)."""
    culling = settings.culling
    profiles = profiles or load_shipped_profiles(settings)
    timeout = backstop_timeout(profiles, float(culling["timeout"]))
    every = min(int(culling["every"]), max(1, timeout // 2))
    return {"name": SERVICE_NAME,
            "command": supervised(settings.state_dir, SERVICE_NAME, command(timeout, every, str(culling["log_level"]))),
            "display": False}


def role() -> dict[str, Any]:
    return {"name": ROLE_NAME, "description": "jupyterhub-idle-culler: read activity, stop idle servers.",
            "scopes": list(CULLER_SCOPES), "services": [SERVICE_NAME]}


def with_culler_role(roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in roles if r.get("name") != ROLE_NAME] + [role()]


def spawner_settings(settings: Settings) -> Mapping[str, Any]:
    """``c.TitanDockerSpawner``'s ``idle_shutdown`` and ``idle_timeout`` (the default for profiles
    without their own)."""
    culling = settings.culling
    return {"idle_shutdown": bool(culling["enabled"]), "idle_timeout": float(culling["timeout"])}
