"""The autosave engine: snapshots of a user's working tree onto an autosave branch, and pushes.

``snapshot`` never touches the user's repository: commits are built in a separate repository the
service owns (the user's objects are borrowed read-only through ``objects/info/alternates``), with
its own private index, so the user's HEAD, index, branches, config and working tree stay as they
were, and git never reads the user's (untrusted) repository config while running as root.
"""

from service.autosave.excludes import DEFAULT_MAX_FILE_SIZE, LeftOut, check_file
from service.autosave.push import PushOutcome, PushResult, push, remote_url
from service.autosave.snapshot import Identity, SnapshotResult, Workspace, WorkspaceError, locate, snapshot

__all__ = [
    "DEFAULT_MAX_FILE_SIZE", "Identity", "LeftOut", "PushOutcome", "PushResult", "SnapshotResult", "Workspace",
    "WorkspaceError", "check_file", "locate", "push", "remote_url", "snapshot",
]
