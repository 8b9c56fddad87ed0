"""The swarm test bed's registry (``Testbed(registry=True)``): Debian's ``docker-registry`` run in the
manager's network namespace, as a deployment runs it on its manager (docs/swarm-registry.md), and a
loopback relay so that the main engine can push to it.

The main engine trusts plain-HTTP registries on 127.0.0.0/8 only, and its daemon.json must not
change (everyone on this machine uses it): :func:`loopback_relay` listens on 127.0.0.1 and moves the
bytes to the registry on the manager's address; the engine pushes ``127.0.0.1:<port>/titan/...``,
which lands in the same registry the nodes pull ``<manager>:5000/titan/...`` from. In a deployment
the hub host's engine trusts ``<manager>:5000`` itself and no relay is needed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from core.registry import registry_answers, registry_config
from tests.swarm.host import TestbedError, pids_mentioning, send


def start_registry(directory: Path, namespace: str, listen: str, timeout: float = 20) -> subprocess.Popen[bytes]:
    """``docker-registry serve`` in ``namespace`` on ``listen``; its config, log and storage in
    ``directory``. Returns once it answers."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    config = directory / "config.yml"
    config.write_text(registry_config(listen, str(directory / "data")))
    command = ["nsenter", f"--net=/run/netns/{namespace}", "--", "docker-registry", "serve", str(config)]
    with open(directory / "registry.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TestbedError(f"docker-registry exited: {(directory / 'registry.log').read_text()[-500:]}")
        if registry_answers(listen, timeout=2):
            return process
        time.sleep(0.1)
    process.kill()
    raise TestbedError(f"docker-registry did not answer on {listen} in {timeout:.0f} s")


def stop_registry(directory: Path, process: subprocess.Popen[bytes] | None = None) -> None:
    """End the registry whose config is in ``directory`` (found by its command line: a bed brought
    down from another process has no ``process``)."""
    for pid in pids_mentioning(str(directory / "config.yml")):
        send(pid, signal.SIGKILL)
    if process is not None:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(1 << 16):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextmanager
def loopback_relay(target: str) -> Iterator[str]:
    """Relay TCP from ``127.0.0.1:<a free port>`` to ``target`` (``host:port``) while the block runs;
    yields ``127.0.0.1:<port>``. Threads in this process: nothing outlives the block."""
    host, _, port = target.rpartition(":")
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the block has ended
            try:
                upstream = socket.create_connection((host, int(port)), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            connections.extend((client, upstream))
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (a close alone does not)
        listener.close()
        for connection in connections:
            with suppress(OSError):
                connection.close()
        thread.join(timeout=5)


def push_to_bed(registry: str, names: list[str], manager: str = "") -> dict[str, float]:
    """Push Titan's images ``names`` (and their ancestors) from the main engine to the test bed's
    registry, as `scripts/titan.sh images` pushes to a swarm's; the main engine keeps no tag of it.
    With the bed's ``manager``, every node then pulls them, as `scripts/titan.sh images` has them do."""
    from core.images import build_order, image_tag
    from core.registry import registry_image
    from images.build import push, warm_nodes

    with loopback_relay(registry) as local:
        try:
            spent = push(names, local)
        finally:
            tags = [registry_image(image_tag(name), local) for name in build_order(names)]
            subprocess.run(["docker", "rmi", *tags], capture_output=True, check=False)
    if manager:
        started = time.monotonic()
        missing = warm_nodes(names, registry, manager, within=300)
        assert missing == 0, f"{missing} node(s) could not pull {names} from {registry}"
        spent["nodes pull"] = time.monotonic() - started
    return spent
