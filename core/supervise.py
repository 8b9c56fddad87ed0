"""Run a process the hub starts (a managed service, the proxy) so that it ends with the hub, and
ends promptly when the hub stops it.

``python -m core.supervise --pid-file FILE -- COMMAND...`` runs COMMAND as its child and stays
beside it (a few MiB):

- the kernel sends the supervisor SIGTERM when its parent (the hub) dies, however it dies
  (``PR_SET_PDEATHSIG``), and the child the same when the supervisor dies: a hub killed with
  SIGKILL leaves no gateway, Titan service, idle culler or proxy behind holding its ports;
- JupyterHub stops a managed service with SIGINT and waits 10 s before SIGTERM, then 5 s before
  SIGKILL, one service after the other; some services ignore SIGINT (the idle culler did, for 10 s).
  The supervisor turns SIGINT and SIGTERM into SIGTERM for its child, gives it ``--grace`` seconds
  (default 8) to finish what it does on SIGTERM, then kills it;
- FILE holds ``<pid> <start time>`` of the supervisor, so ``make up`` after a crash can find a
  process that somehow outlived the hub by its pid file, and tell it from a later process with the
  same pid (titan.lifecycle).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1


def supervised(state_dir: Path, name: str, command: list[str]) -> list[str]:
    """``command``, run through this module: it ends with the hub, and ``state_dir/pids/<name>.pid``
    names it (titan.lifecycle reads it)."""
    pid_file = state_dir / "pids" / f"{name}.pid"
    return [sys.executable, "-m", "core.supervise", "--pid-file", str(pid_file), "--", *command]


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


def run(command: list[str], grace: float) -> int:
    """Run ``command`` as a child; forward SIGINT and SIGTERM to it as SIGTERM; its exit code."""
    child = subprocess.Popen(command, preexec_fn=lambda: end_with_parent(signal.SIGTERM))  # noqa: PLW1509
    stopping: list[float] = []

    def forward(signum: int, frame: object) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > grace:
                child.kill()


def main(argv: list[str]) -> int:
    grace = 8.0
    if len(argv) >= 2 and argv[0] == "--grace":
        grace, argv = float(argv[1]), argv[2:]
    if len(argv) < 4 or argv[0] != "--pid-file" or argv[2] != "--":
        print("usage: python -m core.supervise [--grace SECONDS] --pid-file FILE -- COMMAND...", file=sys.stderr)
        return 2
    pid_file, command = Path(argv[1]), argv[3:]
    if not end_with_parent():
        return 0  # the hub died before we started: nothing to serve
    write_pid_file(pid_file)
    try:
        code = run(command, grace)
    finally:
        pid_file.unlink(missing_ok=True)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
