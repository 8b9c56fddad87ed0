"""Which Docker volumes hold a deployment's homes: named after the deployment, found and kept
across upgrades.

A home volume is ``<deployment>-home-<user>`` unless titan.yaml names a template
(``spawner.home_volume_template``), so two deployments on one engine (staging, a test run) never
mount each other's homes. Before this rule every deployment used ``titan-home-<user>``; for the
default deployment ``titan`` both are the same name, so nothing changes there. An existing install
of another deployment (its hub database exists, no template recorded) gets each of its users'
``titan-home-<user>`` *copied* into ``<deployment>-home-<user>`` once, at the first start after the
upgrade: the old volume is left as it was (it may be another deployment's), nothing is deleted.
The template in force is recorded in ``state/home-volume-template``, so later starts never guess.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from core.labels import HOME_TEMPLATE_RECORD, default_home_template, docker_safe

LEGACY_TEMPLATE = "titan-home-{username}"
RECORD_FILE = HOME_TEMPLATE_RECORD
HUB_DATABASE = "jupyterhub.sqlite"

log = logging.getLogger("titan.homes")


def hub_users(state_dir: Path) -> list[str]:
    """The users in the hub's database ([] when there is none yet: a new install)."""
    database = state_dir / HUB_DATABASE
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        try:
            return [row[0] for row in connection.execute("SELECT name FROM users ORDER BY name")]
        except sqlite3.Error:
            return []


def copy_volume(client: docker.DockerClient, image: str, source: str, target: str) -> None:
    """``source``'s files into the new volume ``target`` (owners, modes and times kept)."""
    volume = client.volumes.create(target)
    try:
        client.containers.run(image, ["cp", "-a", "/from/.", "/to/"], user="0", network_mode="none", remove=True,
                              volumes={source: {"bind": "/from", "mode": "ro"}, target: {"bind": "/to", "mode": "rw"}})
    except BaseException:
        volume.remove(force=True)  # a half copy is never taken for a home: the next start copies again
        raise


def resolve_home_template(state_dir: Path, deployment: str, configured: str, copy_image: Callable[[], str],
                          client_factory: Callable[[], docker.DockerClient] = docker.from_env) -> str:
    """The home volume template this deployment uses from now on (see the module's text)."""
    if configured:
        return configured
    record = state_dir / RECORD_FILE
    if record.exists():
        return record.read_text().strip()
    template = default_home_template(deployment)
    users = hub_users(state_dir)
    if template != LEGACY_TEMPLATE and users:
        _copy_legacy_homes(users, template, copy_image, client_factory)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(template + "\n")
    return template


def _copy_legacy_homes(users: list[str], template: str, copy_image: Callable[[], str],
                       client_factory: Callable[[], docker.DockerClient]) -> None:
    client = client_factory()
    try:
        existing = {v.name for v in client.volumes.list()}
        for user in users:
            old = LEGACY_TEMPLATE.format(username=docker_safe(user))
            new = template.format(username=docker_safe(user))
            if old in existing and new not in existing:
                log.warning("Homes are now named after the deployment: copying %s into %s (%s is kept as it was)",
                            old, new, old)
                copy_volume(client, copy_image(), old, new)
    finally:
        client.close()
