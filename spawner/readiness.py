"""Noticing a server as soon as it listens.

JupyterHub's own readiness check backs off exponentially (0.2 s doubling to 5 s), so a server that
is up just after a check waits seconds to be noticed. A cheap connect every 0.1 s hands the hub a
server that answers its first check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_for_listening(ip: str, port: int, seconds: float, poll: Callable[[], Awaitable[int | None]]) -> None:
    """Return as soon as ``ip:port`` accepts connections, or its container exited (``poll()`` not
    None, asked every tenth attempt), or after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    checks = 0
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=1)
        except (TimeoutError, OSError):
            checks += 1
            if checks % 10 == 0 and await poll() is not None:
                return  # the container exited: the hub's own check reports it
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
