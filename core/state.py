"""The state directory: databases, logs and secrets, created on first use with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ensure_state_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def secret_file(path: Path, nbytes: int = 32) -> str:
    """The hex secret stored at ``path``; generated (mode 0600) when absent."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(nbytes) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()
