"""Run a process the hub starts (a managed service, the proxy) so that it ends with the hub.

``python -m titan.supervise --pid-file FILE -- COMMAND...`` asks the kernel to send the process
SIGTERM when its parent (the hub) dies, however it dies (``PR_SET_PDEATHSIG``, kept across
``exec``), records ``<pid> <start time>`` in FILE (so ``make up`` after a crash can find a process
that somehow outlived the hub by its pid file, and tell it from a later process with the same pid),
then becomes COMMAND. A hub killed with SIGKILL therefore leaves no gateway, Titan service, idle
culler or proxy behind holding its ports.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1


def supervised(state_dir: Path, name: str, command: list[str]) -> list[str]:
    """``command``, run through this module: it ends with the hub, and ``state_dir/pids/<name>.pid``
    names it (titan.lifecycle reads it)."""
    pid_file = state_dir / "pids" / f"{name}.pid"
    return [sys.executable, "-m", "titan.supervise", "--pid-file", str(pid_file), "--", *command]


def end_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask for ``sig`` when the parent dies; False when the parent is already gone (we were reparented)."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return os.getppid() == parent and parent != 1


def write_pid_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    me = psutil.Process()
    partial = path.with_suffix(".tmp")
    partial.write_text(f"{me.pid} {me.create_time():.2f}\n")
    os.replace(partial, path)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--pid-file" or argv[2] != "--":
        print("usage: python -m titan.supervise --pid-file FILE -- COMMAND...", file=sys.stderr)
        return 2
    pid_file, command = Path(argv[1]), argv[3:]
    if not end_with_parent():
        return 0  # the hub died before we started: nothing to serve
    write_pid_file(pid_file)
    os.execvp(command[0], command)  # noqa: S606  (the command is the hub's own configuration)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
