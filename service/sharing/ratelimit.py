"""Slowing down link guessing: each client may ask for at most ``limit`` unknown links within
``window`` seconds; after that every link lookup from it answers 429 until the window passes."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class GuessLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_clients = max_clients
        self._misses: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        misses = self._misses.get(client)
        if misses is None:
            return deque()
        while misses and misses[0] <= now - self.window:
            misses.popleft()
        if not misses:
            del self._misses[client]
        return misses

    def retry_after(self, client: str) -> int:
        """0 when the client may look a link up now, else seconds to wait."""
        misses = self._recent(client)
        if len(misses) < self.limit:
            return 0
        return max(1, int(misses[0] + self.window - self.clock()) + 1)

    def miss(self, client: str) -> None:
        if client not in self._misses and len(self._misses) >= self.max_clients:
            # forget the oldest client rather than grow without bound
            self._misses.pop(next(iter(self._misses)))
        self._recent(client)
        self._misses.setdefault(client, deque()).append(self.clock())
