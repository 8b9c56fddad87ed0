"""What autosave must never commit: files over a size cap and files that look like secrets.

Pure functions on names and bytes, unit-tested without git. A file is left out for one reason,
the first that applies: its name (``.env``, private keys), its size, or a secret in its content.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

#: Default size cap: 10 MB (GitHub warns at 50 MB and rejects files over 100 MB).
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024

#: File names (last path component, glob) that hold credentials by convention.
SECRET_NAMES: tuple[str, ...] = (
    ".env", ".env.*", "*.env", ".netrc", ".git-credentials", ".pgpass",
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "*.pem", "*.p12", "*.pfx", "*.key",
    "credentials.json", ".pypirc", ".npmrc",
)
#: Template files that are safe by convention even though they match SECRET_NAMES.
SAFE_NAMES: tuple[str, ...] = (".env.example", ".env.sample", ".env.template", "*.pub")

#: Content patterns: (reason, regular expression on bytes).
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("GitHub token", re.compile(rb"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b")),
    ("GitHub token", re.compile(rb"\bgithub_pat_[A-Za-z0-9_]{22,}\b")),
    ("AWS access key", re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("AWS secret key", re.compile(rb"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}")),
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("Google API key", re.compile(rb"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Slack token", re.compile(rb"\bxox[abposr]-[0-9A-Za-z-]{10,}\b")),
)


@dataclass(frozen=True)
class LeftOut:
    """A file autosave did not commit, and why (shown on the status page)."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def secret_name(path: str) -> bool:
    """True when the file name alone marks it as a credential (``.env``, ``id_rsa``, ``*.pem``)."""
    name = PurePosixPath(path).name
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in SAFE_NAMES):
        return False
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_NAMES)


def secret_in(content: bytes) -> str | None:
    """The kind of the first secret found in ``content``, or None."""
    for reason, pattern in SECRET_PATTERNS:
        if pattern.search(content):
            return reason
    return None


def check_file(path: str, size: int, read: Callable[[], bytes],
               max_size: int = DEFAULT_MAX_FILE_SIZE) -> LeftOut | None:
    """Why ``path`` (``size`` bytes; ``read`` returns its content) must be left out, or None."""
    if secret_name(path):
        return LeftOut(path, "secret file name")
    if size > max_size:
        return LeftOut(path, f"larger than {format_size(max_size)} ({format_size(size)})")
    kind = secret_in(read())
    if kind:
        return LeftOut(path, f"looks like it holds a secret ({kind})")
    return None


def format_size(size: int) -> str:
    """``10485760`` -> ``"10 MB"`` (powers of 1024)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024:
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + " GB"
