"""What the service reads from the container engine: where a user's home volume is on the host,
and which profile a running server was started with (its ``titan.profile`` label)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def docker_volume_path(template: str) -> Any:
    """A resolver user -> host path of the user's home volume (``docker volume inspect``)."""
    import docker

    from core.labels import home_volume_name

    client = docker.from_env()

    def resolve(user: str) -> Path:
        name = home_volume_name(template, user)
        try:
            volume = client.volumes.get(name)
        except docker.errors.NotFound:
            raise LookupError(f"home volume {name} does not exist yet (start a server once)") from None
        return Path(volume.attrs["Mountpoint"])

    return resolve


def docker_profile_of(deployment_label: str = "") -> Any:
    """A resolver (user, server) -> the ``titan.profile`` label of that server's running container."""
    import docker

    from core.labels import LABEL_DEPLOYMENT, LABEL_OWNER, LABEL_PROFILE, LABEL_SERVER

    client = docker.from_env()

    def resolve(user: str, server: str) -> str | None:
        labels = [f"{LABEL_OWNER}={user}", f"{LABEL_SERVER}={server}"]
        if deployment_label:
            labels.append(f"{LABEL_DEPLOYMENT}={deployment_label}")
        found = client.containers.list(filters={"label": labels})
        return found[0].labels.get(LABEL_PROFILE) if found else None

    return resolve
