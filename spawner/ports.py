"""Free loopback ports for servers on host networking: one distinct port per running server."""

from __future__ import annotations

import random
import socket
import threading


class NoFreePort(RuntimeError):
    """Every port of the range is taken."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class PortPool:
    """Hands out ports in ``[low, high]`` that no other server of this hub holds and that bind now."""

    def __init__(self, low: int, high: int) -> None:
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"bad port range {low}-{high}")
        self.low, self.high = low, high
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def acquire(self) -> int:
        candidates = list(range(self.low, self.high + 1))
        random.shuffle(candidates)
        with self._lock:
            for port in candidates:
                if port not in self._held and port_is_free(port):
                    self._held.add(port)
                    return port
        raise NoFreePort(f"no free port between {self.low} and {self.high}")

    def hold(self, port: int) -> None:
        """Mark a port as taken (a server found running after a hub restart)."""
        with self._lock:
            self._held.add(port)

    def release(self, port: int) -> None:
        with self._lock:
            self._held.discard(port)

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)
