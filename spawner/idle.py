"""Per-profile idle shutdown, done by the single-user server itself (pure: no I/O).

jupyter_server can stop itself when idle: ``MappingKernelManager`` culls kernels idle for
``cull_idle_timeout`` (``cull_connected``: even with a browser tab open; busy kernels are never
culled), ``TerminalManager`` culls inactive terminals, and ``ServerApp`` exits once no kernel or
terminal is left and nothing happened for ``shutdown_no_activity_timeout``. The hub notices the exit
at its next poll (``Spawner.poll_interval``) and runs the spawner's ``stop``, which stops the
server's Dask clusters and frees its GPUs; the Titan service then takes the final autosave snapshot.

So each profile gets its own timeout with no new culler. jupyterhub-idle-culler runs as the
backstop with the longest timeout (see ``titan.culling``).

Granularity: jupyter_server checks for shutdown every 60 s (a fixed period in 2.x), so a server
stops between ``timeout`` and ``timeout + 60 s`` after it went idle.
"""

from __future__ import annotations

#: jupyter_server's fixed period between ``shutdown_no_activity`` checks, in seconds.
SHUTDOWN_CHECK_PERIOD = 60


def cull_interval(timeout: float) -> int:
    """Seconds between the server's kernel and terminal culling passes for ``timeout``: often enough
    to cull within a tenth of the timeout, at most every 60 s and at least every second."""
    return int(min(60, max(1, timeout // 10)))


def idle_shutdown_args(timeout: float) -> tuple[str, ...]:
    """Command-line options for ``jupyterhub-singleuser`` that stop the server after ``timeout``
    idle seconds; ``()`` when ``timeout`` is 0 (no idle shutdown)."""
    if timeout <= 0:
        return ()
    seconds = max(1, int(round(timeout)))
    interval = cull_interval(seconds)
    return (
        f"--ServerApp.shutdown_no_activity_timeout={seconds}",
        f"--MappingKernelManager.cull_idle_timeout={seconds}",
        f"--MappingKernelManager.cull_interval={interval}",
        "--MappingKernelManager.cull_connected=True",
        "--MappingKernelManager.cull_busy=False",
        f"--TerminalManager.cull_inactive_timeout={seconds}",
        f"--TerminalManager.cull_interval={interval}",
    )
