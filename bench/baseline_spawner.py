"""The baseline: stock ``DockerSpawner`` with only what host networking needs.

As /work/shared/environment.md describes: ``network_name = "host"`` alone fails (port bindings),
``use_internal_ip`` avoids them, and each start must get its own free 127.0.0.1 port or every
server listens on 8888. Nothing else is changed; image, limits, labels and volumes are plain
config in bench/baseline_config.py.
"""

from __future__ import annotations

import socket

from dockerspawner import DockerSpawner
from traitlets import default

LOOPBACK = "127.0.0.1"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class BaselineSpawner(DockerSpawner):
    """DockerSpawner on the host network, one free loopback port per start."""

    @default("network_name")
    def _default_network_name(self) -> str:
        return "host"

    @default("use_internal_ip")
    def _default_use_internal_ip(self) -> bool:
        return True

    @default("remove")
    def _default_remove(self) -> bool:
        return True

    async def start(self) -> tuple[str, int]:
        self.port = free_loopback_port()
        self.ip = LOOPBACK
        ip, port = await super().start()
        return ip, port

    async def get_ip_and_port(self) -> tuple[str, int]:
        return LOOPBACK, int(self.port)
