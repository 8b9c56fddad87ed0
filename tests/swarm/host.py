"""What the swarm test bed (:mod:`tests.swarm.testbed`) needs of this host: commands with bounded
time, the networks the root namespace uses, and processes found by their command line."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Test beds take the first of these that nothing here uses (never 10.231.0.0/16: the reference
#: script's, ../shared/tools/swarm-netns.sh).
CANDIDATES = [ipaddress.IPv4Network(f"10.{b}.0.0/16") for b in range(232, 240)]


class TestbedError(RuntimeError):
    """The test bed could not be built (the message says which step and shows the engine's log)."""


def sh(*args: str, timeout: float = 30, check: bool = True, stdin: Any = None) -> str:
    """Run a command (never a shell); its stdout. Bounded by ``timeout``."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=stdin)
    if check and done.returncode != 0:
        raise TestbedError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def can_run() -> str:
    """"" when a test bed can be built here, else why not."""
    if os.geteuid() != 0:
        return "the swarm test bed needs root (network namespaces, dockerd)"
    for tool in ("dockerd", "docker", "ip", "nsenter", "unshare", "runc"):
        if shutil.which(tool) is None:
            return f"the swarm test bed needs {tool}, which is not installed"
    return ""


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the root namespace routes or has an address on."""
    found: list[ipaddress.IPv4Network] = []
    for line in sh("ip", "-4", "-o", "route", "show", "table", "all").splitlines():
        words = line.split()
        dest = words[1] if words and words[0] in ("local", "broadcast", "unicast") else (words[0] if words else "")
        if dest and dest != "default" and dest[0].isdigit():
            found.append(ipaddress.IPv4Network(dest, strict=False))
    for line in sh("ip", "-4", "-o", "addr").splitlines():
        words = line.split()
        if "inet" in words:
            found.append(ipaddress.IPv4Interface(words[words.index("inet") + 1]).network)
    return found


def choose_subnet(recorded: Sequence[str]) -> ipaddress.IPv4Network:
    taken = used_networks() + [ipaddress.IPv4Network(s) for s in recorded]
    for candidate in CANDIDATES:
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise TestbedError("every subnet of 10.232.0.0/16 .. 10.239.0.0/16 is in use")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_mentioning(text: str) -> list[int]:
    me = os.getpid()
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and int(p.name) != me and text in cmdline(int(p.name))]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
