"""Who may open a link: parsing the publisher's access request and deciding for one viewer.

Pure functions on plain data; every error is an ``errors.Invalid`` whose message a user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.sharing.errors import Invalid
from service.sharing.models import MODES

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,254}$")  # JupyterHub user and group names (org:team too)
MAX_NAMES = 200
MAX_EXPIRY = timedelta(days=3650)


@dataclass(frozen=True)
class Access:
    mode: str = "users"  # users (named users and groups; the owner always), team, public
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Viewer:
    name: str | None  # None: not logged in
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"access.{what} must be a list of names")
    if len(value) > MAX_NAMES:
        raise Invalid(f"access.{what} may name at most {MAX_NAMES}")
    names = []
    for item in value:
        item = item.strip()
        if not NAME.match(item):
            raise Invalid(f"access.{what}: {item[:60]!r} is not a valid name")
        if item not in names:
            names.append(item)
    return tuple(names)


def parse_access(value: Any, public_allowed: bool) -> Access:
    """``{"mode": "users"|"team"|"public", "users": [...], "groups": [...]}``."""
    if value is None:
        return Access()
    if not isinstance(value, Mapping):
        raise Invalid("access must be an object like {\"mode\": \"users\", \"users\": [\"ada\"]}")
    unknown = set(value) - {"mode", "users", "groups"}
    if unknown:
        raise Invalid(f"access has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    mode = value.get("mode", "users")
    if mode not in MODES:
        raise Invalid(f"access.mode must be one of {', '.join(MODES)}")
    if mode == "public" and not public_allowed:
        raise Invalid("public links are turned off on this hub; an admin can enable sharing.public_links")
    return Access(mode=mode, users=_names(value.get("users"), "users"), groups=_names(value.get("groups"), "groups"))


def parse_expiry(value: Any, now: datetime) -> datetime | None:
    """None / "" (never), an ISO 8601 time with a zone, or ``{"in_seconds": N}``; must be in the future."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping) and set(value) == {"in_seconds"}:
        seconds = value["in_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise Invalid("expires.in_seconds must be a positive number")
        if seconds > MAX_EXPIRY.total_seconds():
            raise Invalid("a link may expire at most ten years from now")
        return now + timedelta(seconds=float(seconds))
    if not isinstance(value, str):
        raise Invalid("expires_at must be an ISO 8601 time such as 2030-01-31T18:00:00Z, or null for never")
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"expires_at {value[:40]!r} is not an ISO 8601 time such as 2030-01-31T18:00:00Z") from None
    if when.tzinfo is None:
        raise Invalid("expires_at needs a time zone, for example 2030-01-31T18:00:00Z")
    when = when.astimezone(UTC)
    if when <= now:
        raise Invalid("expires_at is in the past")
    if when - now > MAX_EXPIRY:
        raise Invalid("a link may expire at most ten years from now")
    return when


def may_view(owner: str, access: Access, viewer: Viewer, public_allowed: bool) -> bool:
    """Whether this viewer may open an active link. A public link whose hub has since turned
    public links off falls back to team access (logged-in users)."""
    if access.mode == "public" and public_allowed:
        return True
    if viewer.name is None:
        return False
    if viewer.name == owner or access.mode in ("team", "public"):
        return True
    return viewer.name in access.users or bool(viewer.groups.intersection(access.groups))


def needs_login(access: Access, public_allowed: bool) -> bool:
    return not (access.mode == "public" and public_allowed)


def access_of(row: Any) -> Access:
    return Access(mode=row.mode, users=tuple(row.users or ()), groups=tuple(row.groups or ()))


def listed_for(viewer: Viewer, owner: str, access: Access) -> bool:
    """"Shared with me": links naming the viewer or one of their groups, and team links."""
    if viewer.name is None or viewer.name == owner:
        return False
    return access.mode in ("team", "public") or viewer.name in access.users or bool(
        viewer.groups.intersection(access.groups))
