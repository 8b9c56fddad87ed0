"""What one autosave step on a repository (snapshot, push, clone) meets and shows: the errors it
reports on the repository's status, their one-line message, and the names it makes."""

from __future__ import annotations

import re
import subprocess

from service.autosave.snapshot import WorkspaceError
from service.hub import HubError

#: What a snapshot, push or clone of one repository may meet, reported on its status (anything else
#: is a bug: it reaches the watcher's or the request's log with its traceback): a home or repository
#: that is not as expected, git failing or timing out, the files, the Docker engine or the hub.
STEP_ERRORS = (WorkspaceError, LookupError, OSError, subprocess.SubprocessError, HubError)


def safe_ref_part(value: str) -> str:
    """A user or server name as one ref-name component (``alice@x y`` → ``alice-x-y``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip(".-") or "default"


def noreply_email(login: str, user_id: int | None) -> str:
    return f"{user_id}+{login}@users.noreply.github.com" if user_id else f"{login}@users.noreply.github.com"


def safe_error(error: BaseException) -> str:
    """An error message for the status page: first line only, no command lines with environment."""
    if isinstance(error, subprocess.CalledProcessError):
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else str(error.stderr or "")
        return (stderr.strip().splitlines() or [f"git exited with {error.returncode}"])[-1][:300]
    return str(error).splitlines()[0][:300] if str(error) else ""
