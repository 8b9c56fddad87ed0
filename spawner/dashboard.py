"""Live dashboards: a named server that serves one notebook or script as an app, never JupyterLab.

``user_options`` may carry ``{"dashboard": {"app": "voila" | "panel", "path": "<relative path>"}}``
next to ``"profile"``. :func:`parse_dashboard` checks its shape and path, :func:`check_image` that
the profile's image can run that app (``dashboards`` in ``images/catalog.yaml``), and
:func:`spawner.container.with_dashboard` turns a server's container settings into a dashboard
server's: the same image, limits, home volume and labels, plus the label ``titan.dashboard=<app>``,
and the command ``titan-dashboard`` (from ``images/datascience/titan_dashboard``) instead of
``jupyterhub-singleuser``. The apps are core.dashboards'. Pure functions; errors are
:class:`DashboardError` with a message meant for the user.
"""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from core.dashboards import APP_NAMES, APP_SUFFIXES

DASHBOARD_FIELD = "dashboard"
COMMAND = "titan-dashboard"
MAX_PATH_LENGTH = 1024
# The form's fields (the spawn page, or /hub/spawn?... links the service makes).
FORM_APP_FIELD = "dashboard-app"
FORM_PATH_FIELD = "dashboard-path"


class DashboardError(ValueError):
    """The dashboard options cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Dashboard:
    """A validated dashboard: the app that serves it and its path relative to the home."""

    app: str
    path: str


def _check_path(app: str, path: Any) -> str:
    if not isinstance(path, str):
        raise DashboardError(f"Dashboard 'path' must be a string, not {type(path).__name__}.")
    if not path:
        raise DashboardError("Dashboard 'path' is empty: give the notebook's path in your home, "
                             "for example 'reports/sales.ipynb'.")
    if len(path) > MAX_PATH_LENGTH:
        raise DashboardError(f"Dashboard 'path' is longer than {MAX_PATH_LENGTH} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in path):
        raise DashboardError("Dashboard 'path' contains control characters.")
    if path.startswith("/") or "\\" in path:
        raise DashboardError(f"Dashboard 'path' must be relative to your home, with '/' between folders "
                             f"(like 'reports/sales{APP_SUFFIXES[app][0]}'), not {path!r}.")
    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise DashboardError(f"Dashboard 'path' must name a file inside your home: no empty, '.' or '..' "
                             f"parts, not {path!r}.")
    suffixes = APP_SUFFIXES[app]
    if posixpath.splitext(path)[1].lower() not in suffixes or posixpath.splitext(segments[-1])[0] == "":
        raise DashboardError(f"{APP_NAMES[app]} dashboards serve {' or '.join(suffixes)} files; "
                             f"{path!r} is not one.")
    return path


def parse_dashboard(raw: Any) -> Dashboard:
    """``user_options["dashboard"]`` → a :class:`Dashboard`, or :class:`DashboardError`."""
    if not isinstance(raw, Mapping):
        raise DashboardError('Option \'dashboard\' must be an object like {"app": "voila", '
                             '"path": "reports/sales.ipynb"}.')
    unknown = sorted(str(k) for k in raw if k not in ("app", "path"))
    if unknown:
        raise DashboardError(f"Unknown dashboard option(s): {', '.join(unknown)}. Dashboard options: app, path.")
    app = raw.get("app")
    if not isinstance(app, str) or app not in APP_SUFFIXES:
        offered = ", ".join(APP_SUFFIXES)
        shown = repr(app) if isinstance(app, str) and len(app) <= 64 else "that"
        raise DashboardError(f"Dashboard app {shown} is not offered. Choose one of: {offered}.")
    return Dashboard(app=app, path=_check_path(app, raw.get("path")))


def check_image(dashboard: Dashboard, profile: str, image: str, image_apps: Mapping[str, Collection[str]]) -> None:
    """Refuse a dashboard that the profile's image cannot run (``image_apps``: image → its apps)."""
    if dashboard.app in image_apps.get(image, ()):
        return
    able = [name for name, apps in image_apps.items() if dashboard.app in apps]
    hint = f"choose an environment with {APP_NAMES[dashboard.app]}" + (f" ({', '.join(able)})" if able else "")
    raise DashboardError(f"The image of profile {profile!r} ({image}) cannot run {dashboard.app} dashboards; "
                         f"{hint}.")


def form_dashboard(formdata: Mapping[str, list[str]]) -> dict[str, str] | None:
    """The dashboard fields of the spawn form, as ``user_options["dashboard"]`` (None: not asked for)."""
    app = (formdata.get(FORM_APP_FIELD) or [""])[0].strip()
    path = (formdata.get(FORM_PATH_FIELD) or [""])[0].strip()
    if not app and not path:
        return None
    return {"app": app, "path": path}


def dashboard_command(dashboard: Dashboard) -> tuple[str, ...]:
    """The container's command: the dashboard proxy, which starts the app and serves only it."""
    return (COMMAND, f"--app={dashboard.app}", f"--path={dashboard.path}")
