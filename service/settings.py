"""Parsing a user's autosave settings (form or JSON): untrusted input, no side effects.

Bad input raises ``SettingsError`` with a message the user can act on (HTTP 400).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import urlsplit

MAX_REPOSITORIES = 20
_REMOTE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class SettingsError(ValueError):
    pass


class UserSettings(NamedTuple):
    enabled: bool
    interval: int | None  # None: unchanged
    repositories: list[dict[str, str]]
    clone: list[dict[str, str]] | None = None  # None: unchanged
    strip_outputs: bool | None = None  # None: unchanged


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


def clean_url(value: Any) -> str:
    """A repository URL to clone: http(s), a host and a path, no credentials, query or fragment."""
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("a repository URL must be a non-empty string")
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError(f"{value!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise SettingsError(f"{value!r}: give an https URL, like https://github.com/owner/repo.git")
    if parts.username or parts.password:
        raise SettingsError("no credentials in a repository URL: your GitHub sign-in is used")
    if parts.query or parts.fragment or not parts.path.strip("/") or any(c.isspace() for c in url):
        raise SettingsError(f"{value!r} is not a repository URL")
    return url


def clone_entries(items: Any) -> list[dict[str, str]]:
    """Repositories to clone: ``url`` or ``{"url": ..., "path": ...}`` (path: default the URL's name)."""
    from service.autosave.clone import default_path

    if not isinstance(items, list):
        raise SettingsError("'clone' is a list")
    if len(items) > MAX_REPOSITORIES:
        raise SettingsError(f"at most {MAX_REPOSITORIES} repositories to clone")
    result: dict[str, dict[str, str]] = {}
    for item in items:
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict) or set(item) - {"url", "path"}:
            raise SettingsError("each repository to clone is a URL or {\"url\": ..., \"path\": ...}")
        url = clean_url(item.get("url"))
        try:
            path = clean_path(item["path"]) if item.get("path") else default_path(url)
        except ValueError as error:
            raise SettingsError(str(error)) from None
        result[path] = {"url": url, "path": clean_path(path)}
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


def parse_json(body: Any) -> UserSettings:
    """``{"enabled": bool, "interval": seconds, "repositories": [path | {path, remote}],
    "clone": [url | {url, path}], "strip_outputs": bool}``; ``clone`` and ``strip_outputs`` stay
    as they were when absent."""
    if not isinstance(body, dict):
        raise SettingsError("the body must be a JSON object")
    unknown = set(body) - {"enabled", "interval", "repositories", "clone", "strip_outputs"}
    if unknown:
        raise SettingsError(f"unknown keys: {', '.join(sorted(unknown))}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SettingsError("'enabled' is true or false")
    repositories = body.get("repositories", [])
    if not isinstance(repositories, list):
        raise SettingsError("'repositories' is a list")
    strip = body.get("strip_outputs")
    if strip is not None and not isinstance(strip, bool):
        raise SettingsError("'strip_outputs' is true or false")
    clone = clone_entries(body["clone"]) if body.get("clone") is not None else None
    return UserSettings(enabled, _interval(body.get("interval")), _repositories(repositories), clone, strip)


def parse_form(form: dict[str, list[str]]) -> UserSettings:
    """The settings form: ``enabled`` and ``strip_outputs`` checkboxes, ``interval_minutes``,
    ``repositories`` (one a line), ``clone`` (one ``URL [path]`` a line)."""
    enabled = form.get("enabled", [""])[0] in ("on", "true", "1")
    minutes = form.get("interval_minutes", [""])[0].strip()
    try:
        interval = _interval(round(float(minutes) * 60)) if minutes else None
    except ValueError:
        raise SettingsError("the interval is a number of minutes") from None
    lines = [line.strip() for line in form.get("repositories", [""])[0].splitlines() if line.strip()]
    clones: list[Any] = []
    for line in form.get("clone", [""])[0].splitlines():
        words = line.split()
        if len(words) > 2:
            raise SettingsError(f"{line.strip()!r}: one URL and, optionally, a path a line")
        if words:
            clones.append({"url": words[0], "path": words[1]} if len(words) == 2 else words[0])
    strip = form.get("strip_outputs", [""])[0] in ("on", "true", "1")
    return UserSettings(enabled, interval, _repositories(lines), clone_entries(clones), strip)
