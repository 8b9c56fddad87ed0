"""A server's container settings (:mod:`spawner.container`) as a Swarm service's
:class:`~core.engine.spec.ContainerSpec`: pure, unit-tested without a swarm.

The same image, command, environment, labels, limits, process limit, hardening and home as on one
host; what only Swarm has: the profile's node pool, the node its GPUs are on (with the GPUs named for
the node's NVIDIA runtime: core.engine.swarm_gpus), and the server's port published on its node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.engine.spec import ContainerSpec, Mount
from core.labels import LABEL_GPUS
from core.profiles import Resources
from spawner.container import SERVER_PORT, ContainerSettings


def home_mounts(volumes: Mapping[str, Mapping[str, str]]) -> tuple[Mount, ...]:
    """DockerSpawner's ``volumes`` as mounts: a key that is a path is a host directory, else a named volume."""
    return tuple(Mount(source=source, target=spec["bind"], read_only=spec.get("mode") == "ro",
                       kind="bind" if source.startswith("/") else "volume")
                 for source, spec in volumes.items())


def service_spec(name: str, settings: ContainerSettings, environment: Mapping[str, str], command: Sequence[str],
                 network: str, resources: Resources, port: int, node: str = "",
                 gpus: Sequence[str] = ()) -> ContainerSpec:
    """The service of one server: ``settings`` from the pure builder, ``environment`` and ``command``
    as JupyterHub gives them, on ``network``, its port published on its node at ``port``; a server
    with ``gpus`` (core.engine.swarm_gpus picked them) runs on their ``node`` and holds them by label."""
    labels = dict(settings.labels)
    if gpus:
        labels[LABEL_GPUS] = ",".join(gpus)
    return ContainerSpec(
        name=name, image=settings.image, command=tuple(command), environment=dict(environment),
        labels=labels, cores=settings.cpu_limit, memory=settings.mem_limit,
        processes=int(settings.host_config.get("pids_limit", resources.processes)),
        network=network, mounts=home_mounts(settings.volumes), pool=resources.pool,
        publish={SERVER_PORT: port}, node=node, gpus=tuple(gpus),
    )
