"""How Titan runs containers: one interface (:mod:`core.engine.base`), one description of a
container (:mod:`core.engine.spec`), and the Docker engine behind it (:mod:`core.engine.docker`).

The spawner, the Dask gateway and the per-user networks all go through a ``ContainerEngine``;
a Swarm engine (:mod:`core.engine.swarm`) is the second implementation; :func:`core.engine.factory.build_engine`
makes the one titan.yaml names."""

from core.engine.base import (
    ContainerEngine,
    ContainerGone,
    ContainerInfo,
    EngineError,
    EngineInfo,
    ImageInfo,
    ImageMissing,
    MountMissing,
    NetworkExists,
    NetworkGone,
    NetworkInfo,
    NetworkInUse,
    SubnetTaken,
    Unplaceable,
)
from core.engine.spec import HARDENING, ContainerSpec, Hardening, Mount

__all__ = [
    "HARDENING", "ContainerEngine", "ContainerGone", "ContainerInfo", "ContainerSpec", "EngineError", "EngineInfo",
    "Hardening", "ImageInfo", "ImageMissing", "Mount", "MountMissing", "NetworkExists", "NetworkGone", "NetworkInUse",
    "NetworkInfo", "SubnetTaken", "Unplaceable",
]
