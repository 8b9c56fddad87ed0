"""The engine titan.yaml's ``engine:`` names (``docker``, the default, or ``swarm``): :func:`build_engine`."""

from __future__ import annotations

from core.engine.docker import DockerEngine
from core.engine.swarm import SwarmEngine

#: The values of titan.yaml's ``engine:`` (core/settings-schema.json lists the same).
ENGINES = ("docker", "swarm")


def build_engine(kind: str = "docker", threads: int = 8, manager: str = "") -> DockerEngine:
    """A ``DockerEngine`` (one host) or a ``SwarmEngine`` (a swarm, through the manager at
    ``manager``, a DOCKER_HOST URL; "": DOCKER_HOST or the local socket, as for ``docker``)."""
    if kind == "docker":
        return DockerEngine(threads=threads)
    if kind == "swarm":
        return SwarmEngine(manager=manager, threads=threads)
    raise ValueError(f"unknown engine {kind!r}: one of {', '.join(ENGINES)}")
