"""Parsing a user's autosave settings (form or JSON): untrusted input, no side effects.

Bad input raises ``SettingsError`` with a message the user can act on (HTTP 400).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

MAX_REPOSITORIES = 20
_REMOTE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class SettingsError(ValueError):
    pass


def clean_path(value: Any) -> str:
    """A repository path relative to the home directory (``project``, ``work/analysis``)."""
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("a repository path must be a non-empty string")
    text = value.strip().removeprefix("~/").removeprefix("/home/jovyan/").rstrip("/")
    path = PurePosixPath(text)
    if not text or path.is_absolute() or any(part in ("..", ".", "") for part in path.parts) or "\0" in text:
        raise SettingsError(f"{value!r}: give a path inside your home directory, like 'project' or 'work/analysis'")
    if len(text) > 1000:
        raise SettingsError("a repository path is too long")
    return str(path)


def clean_remote(value: Any) -> str:
    if value in (None, ""):
        return "origin"
    if not isinstance(value, str) or not _REMOTE.match(value):
        raise SettingsError(f"{value!r} is not a git remote name")
    return value


def _repositories(items: list[Any]) -> list[dict[str, str]]:
    if len(items) > MAX_REPOSITORIES:
        raise SettingsError(f"at most {MAX_REPOSITORIES} repositories")
    result: dict[str, dict[str, str]] = {}
    for item in items:
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or set(item) - {"path", "remote"}:
            raise SettingsError("each repository is a path or {\"path\": ..., \"remote\": ...}")
        path = clean_path(item.get("path"))
        result[path] = {"path": path, "remote": clean_remote(item.get("remote"))}
    return list(result.values())


def _interval(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SettingsError("the interval is a number of seconds")
    try:
        seconds = int(float(value))
    except ValueError:
        raise SettingsError("the interval is a number of seconds") from None
    if seconds <= 0 or seconds > 7 * 24 * 3600:
        raise SettingsError("the interval must be between 1 second and a week")
    return seconds


def parse_json(body: Any) -> tuple[bool, int | None, list[dict[str, str]]]:
    """``{"enabled": bool, "interval": seconds, "repositories": [path | {path, remote}]}``."""
    if not isinstance(body, dict):
        raise SettingsError("the body must be a JSON object")
    unknown = set(body) - {"enabled", "interval", "repositories"}
    if unknown:
        raise SettingsError(f"unknown keys: {', '.join(sorted(unknown))}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SettingsError("'enabled' is true or false")
    repositories = body.get("repositories", [])
    if not isinstance(repositories, list):
        raise SettingsError("'repositories' is a list")
    return enabled, _interval(body.get("interval")), _repositories(repositories)


def parse_form(form: dict[str, list[str]]) -> tuple[bool, int | None, list[dict[str, str]]]:
    """The settings form: ``enabled`` checkbox, ``interval_minutes``, ``repositories`` (one a line)."""
    enabled = form.get("enabled", [""])[0] in ("on", "true", "1")
    minutes = form.get("interval_minutes", [""])[0].strip()
    try:
        interval = _interval(round(float(minutes) * 60)) if minutes else None
    except ValueError:
        raise SettingsError("the interval is a number of minutes") from None
    lines = [line.strip() for line in form.get("repositories", [""])[0].splitlines() if line.strip()]
    return enabled, interval, _repositories(lines)
