"""What is left of a refused start: nothing."""

from __future__ import annotations

import asyncio

from dockerspawner import DockerSpawner


async def forget_refused(spawner: DockerSpawner) -> None:
    """A refused spawn leaves nothing stored: the options are dropped, and a named server that
    never ran is deleted (as ``DELETE .../servers/<name>`` with ``remove``), so refusals take no
    named-server slot. Runs once the hub has finished cleaning up the failed start."""
    for _ in range(200):
        if not (spawner._stop_pending or spawner._start_pending):
            break
        await asyncio.sleep(0.05)
    user, orm_spawner = spawner.user, spawner.orm_spawner
    if orm_spawner is None or spawner.active:
        return
    orm_spawner.user_options = {}
    if spawner.name and not spawner.container_id and spawner.name in user.orm_spawners:
        spawner.log.info("Forgetting %s: its only start was refused", spawner._log_name)
        await user._delete_spawner(spawner)
        user.db.delete(orm_spawner)
        user.spawners.pop(spawner.name, None)
    user.db.commit()
