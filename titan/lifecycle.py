"""``make up``, ``make status`` and ``make down``: one deployment's processes and ports, read from
the same settings (``titan.yaml`` / ``TITAN_SETTINGS``, through :func:`core.settings.load_settings`)
as the hub.

A deployment's processes are found by the pid files in its state directory, never by name:
``jupyterhub.pid`` (the hub writes it) and ``pids/<name>.pid`` (``core.supervise`` writes one for
the proxy and each managed service, with the process's start time, so a later process that got the
same pid is never taken for it). Its ports are the ones its settings name.

``python -m titan.lifecycle env`` prints shell assignments for scripts/titan.sh; ``status``,
``cleanup`` (what a crashed hub left: run by ``make up`` before it starts the hub) and ``down``
(stop the hub, then check that every process and port of the deployment is gone) print what they
do and exit non-zero when something is left.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psutil

from core.settings import Settings, SettingsError, load_settings

PIDS_DIR = "pids"
HUB_PID_FILE = "jupyterhub.pid"
LISTEN = "0A"


@dataclass(frozen=True)
class Tracked:
    """A process of the deployment, found through its pid file."""

    name: str
    pid_file: Path
    process: psutil.Process


def pid_file_for(state_dir: Path, name: str) -> Path:
    return state_dir / PIDS_DIR / f"{name}.pid"


def _read_pid_file(path: Path) -> tuple[int, float | None] | None:
    try:
        fields = path.read_text().split()
        return int(fields[0]), (float(fields[1]) if len(fields) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def tracked_process(path: Path, name: str) -> Tracked | None:
    """The live process a pid file names, if it is still the one that wrote it."""
    read = _read_pid_file(path)
    if read is None:
        return None
    pid, started = read
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if started is not None:
            same = abs(process.create_time() - started) < 1.0
        else:  # the hub's own pid file: written by the hub just after it started
            same = process.create_time() <= path.stat().st_mtime + 1.0 and \
                any("jupyterhub" in part for part in process.cmdline())
    except (psutil.Error, OSError):
        return None
    return Tracked(name, path, process) if same else None


def hub(settings: Settings) -> Tracked | None:
    return tracked_process(settings.state_dir / HUB_PID_FILE, "hub")


def processes(settings: Settings) -> list[Tracked]:
    """Every live process of the deployment: the hub, the proxy and the managed services."""
    found = [t for t in [hub(settings)] if t is not None]
    for path in sorted((settings.state_dir / PIDS_DIR).glob("*.pid")):
        tracked = tracked_process(path, path.stem)
        if tracked is not None:
            found.append(tracked)
    return found


def ports(settings: Settings) -> dict[int, str]:
    """The TCP ports this deployment listens on, with what listens there."""
    public = urlparse(settings.public_url)
    named = {public.port or (443 if public.scheme == "https" else 80): "the proxy (public URL)",
             settings.proxy_api_port: "the proxy's API", settings.hub_port: "the hub API"}
    if settings.gateway["enabled"]:
        named.update({int(settings.gateway["api_port"]): "the Dask gateway's API",
                      int(settings.gateway["proxy_port"]): "the Dask gateway's proxy",
                      int(settings.gateway["scheduler_proxy_port"]): "the Dask gateway's scheduler proxy"})
    if settings.service["enabled"]:
        named[int(settings.service["port"])] = "the Titan service"
        if settings.sharing["public_dashboard_port"]:
            named[int(settings.sharing["public_dashboard_port"])] = "the public dashboards' origin"
    return named


def listening_ports(tables: Iterable[Path] = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))) -> set[int]:
    """Ports with a listening socket in this network namespace (the kernel's tables, no probe)."""
    found = set()
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                found.add(int(fields[1].rsplit(":", 1)[1], 16))
    return found


def busy_ports(settings: Settings) -> dict[int, str]:
    listening = listening_ports()
    return {port: what for port, what in ports(settings).items() if port in listening}


def terminate(tracked: list[Tracked], say: Callable[[str], None], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, for each process."""
    for item in tracked:
        say(f"stopping {item.name} (pid {item.process.pid}), left by an earlier run")
        try:
            item.process.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs([t.process for t in tracked], timeout=grace)
    for process in alive:
        say(f"pid {process.pid} ignored SIGTERM for {grace:.0f} s: killing it")
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def cleanup(settings: Settings, say: Callable[[str], None]) -> int:
    """Before a start: end what an earlier run of this deployment left (a crashed hub's proxy and
    services), by pid files; then say which of its ports something else still holds."""
    left = processes(settings)
    if left:
        terminate(left, say)
    for path in (settings.state_dir / PIDS_DIR).glob("*.pid"):
        if tracked_process(path, path.stem) is None:
            path.unlink(missing_ok=True)
    busy = busy_ports(settings)
    for port, what in sorted(busy.items()):
        say(f"port {port} ({what}) is in use by a process that is not this deployment's: "
            "stop it, or choose another port in titan.yaml")
    return 1 if busy else 0


def down(settings: Settings, say: Callable[[str], None], timeout: float = 60.0) -> int:
    """Stop the hub (it stops its servers, services and proxy), then make sure nothing is left."""
    running = hub(settings)
    if running is None:
        say("Titan's hub is not running")
    else:
        say(f"stopping the hub (pid {running.process.pid}): it stops its servers, services and proxy")
        running.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        note_at = started + 5
        while _alive(running.process):
            now = time.monotonic()
            if now - started > timeout:
                say(f"the hub did not stop within {timeout:.0f} s: killing it")
                running.process.kill()
                break
            if now >= note_at:
                names = ", ".join(t.name for t in processes(settings) if t.name != "hub") or "its own exit"
                say(f"still stopping after {now - started:.0f} s (waiting for: {names})")
                note_at += 5
            time.sleep(0.1)
        say(f"hub stopped in {time.monotonic() - started:.1f} s")
    left = [t for t in processes(settings) if t.name != "hub"]
    if left:
        terminate(left, say, grace=3.0)
    deadline = time.monotonic() + 5
    busy = busy_ports(settings)
    while busy and time.monotonic() < deadline:
        time.sleep(0.1)
        busy = busy_ports(settings)
    left = processes(settings)
    for item in left:
        say(f"still running: {item.name} (pid {item.process.pid})")
    for port, what in sorted(busy.items()):
        say(f"port {port} ({what}) is still in use")
    if left or busy:
        return 1
    say("stopped: no process of this deployment is left and its ports are free")
    return 0


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def status(settings: Settings, say: Callable[[str], None]) -> int:
    running = hub(settings)
    if running is not None:
        say(f"running at {settings.public_url} (pid {running.process.pid}, state {settings.state_dir})")
        return 0
    left = processes(settings)
    say("not running" + (f"; left from an earlier run: {', '.join(t.name for t in left)} (make up cleans "
                         "them up, make down stops them)" if left else ""))
    return 3


def shell_env(settings: Settings) -> str:
    values = {"TITAN_PUBLIC_URL": settings.public_url, "TITAN_STATE": str(settings.state_dir),
              "TITAN_SETTINGS_FILE": settings.source,
              "TITAN_DEV_LOGIN": "" if settings.github_configured else "1"}
    return "\n".join(f"{key}={shlex.quote(value)}" for key, value in values.items())


def main(argv: list[str]) -> int:
    commands = ("env", "status", "cleanup", "down")
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m titan.lifecycle {'|'.join(commands)}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"[titan] error: {error}", file=sys.stderr)
        return 2

    def say(message: str) -> None:
        print(f"[titan] {message}", flush=True)

    command = argv[0]
    if command == "env":
        print(shell_env(settings))
        return 0
    if command == "status":
        return status(settings, say)
    if command == "cleanup":
        return cleanup(settings, say)
    return down(settings, say)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
