"""A pure builder: (selection, user, server, port) → the settings of that server's container.

Nothing here talks to Docker; the spawner applies the result. Unit-tested without an engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.engine.docker import hardening_kwargs
from core.engine.spec import HARDENING as ENGINE_HARDENING
from core.gpu.allocator import docker_device_request, gpu_label_value
from core.gpu.inventory import GpuUnit
from core.homes import home_directory
from core.labels import (
    LABEL_DASHBOARD,
    LABEL_DEPLOYMENT,
    LABEL_GPUS,
    LABEL_OWNER,
    LABEL_PROFILE,
    LABEL_SERVER,
    home_volume_name,
)
from spawner.dashboard import Dashboard, dashboard_command
from spawner.idle import idle_shutdown_args
from spawner.options import Selection

HOME_MOUNT = "/home/jovyan"
SERVER_PORT = 8888  # the port JupyterLab listens on inside its container (on the user's network)

#: core.engine.spec.HARDENING (one for every container of Titan) as DockerSpawner's host config.
HARDENING: Mapping[str, Any] = hardening_kwargs(ENGINE_HARDENING)


@dataclass(frozen=True)
class ContainerSettings:
    image: str
    mem_limit: int
    memswap_limit: int
    cpu_limit: float
    volumes: Mapping[str, Mapping[str, str]]
    labels: Mapping[str, str]
    host_config: Mapping[str, Any]
    environment: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()  # replaces the image's command (a dashboard server); () keeps it
    args: tuple[str, ...] = ()  # extra options for jupyterhub-singleuser (the idle shutdown)
    idle_timeout: float = 0.0  # seconds; 0: the server never stops itself


def build_container_settings(
    selection: Selection,
    image_tag: str,
    user: str,
    server_name: str,
    deployment: str,
    home_volume_template: str,
    network: str,
    gpus: Sequence[GpuUnit] = (),
    default_idle_timeout: float = 0.0,
    homes_root: str = "",
) -> ContainerSettings:
    """Everything the container of one server needs, derived from the validated selection.

    The container joins ``network``, its user's own network (core.network), and nothing else.

    Its home is the user's home volume, or with ``homes_root`` (titan.yaml swarm.homes_root) the
    directory ``<homes_root>/<home volume name>`` on the shared storage, bound (a ``volumes`` key
    that is an absolute path is a host directory: core.homes.ensure_home makes it first).

    The idle timeout is the profile's ``idle_timeout``, else ``default_idle_timeout`` (0: none)."""
    resources = selection.resources
    labels = {
        LABEL_DEPLOYMENT: deployment,
        LABEL_OWNER: user,
        LABEL_SERVER: server_name,
        LABEL_PROFILE: selection.profile.slug,
    }
    host_config: dict[str, Any] = {
        "network_mode": network,
        "init": True,
        # Swap included in the limit: memswap equal to memory means no swap on top.
        "memswap_limit": resources.memory,
        "pids_limit": resources.processes,
        **HARDENING,
    }
    environment = {
        "TITAN_PROFILE": selection.profile.slug,
        "TITAN_IMAGE": image_tag,
        "MEM_LIMIT": str(resources.memory),
        "CPU_LIMIT": f"{resources.cpu:g}",
    }
    idle_timeout = selection.profile.idle_timeout
    if idle_timeout is None:
        idle_timeout = default_idle_timeout
    if idle_timeout > 0:
        environment["TITAN_IDLE_TIMEOUT"] = f"{idle_timeout:g}"
    if gpus:
        labels[LABEL_GPUS] = gpu_label_value(list(gpus))
        # docker-py turns this into a DeviceRequest: these exact GPUs, the "gpu" capability.
        host_config["device_requests"] = [docker_device_request(list(gpus))]
        environment["NVIDIA_VISIBLE_DEVICES"] = labels[LABEL_GPUS]
    return with_dashboard(ContainerSettings(
        image=image_tag,
        mem_limit=resources.memory,
        memswap_limit=resources.memory,
        cpu_limit=resources.cpu,
        volumes={home_source(home_volume_template, user, homes_root): {"bind": HOME_MOUNT, "mode": "rw"}},
        labels=labels,
        host_config=host_config,
        environment=environment,
        args=idle_shutdown_args(idle_timeout),
        idle_timeout=idle_timeout,
    ), selection.dashboard)


def home_source(template: str, user: str, homes_root: str = "") -> str:
    """What a server mounts as ``user``'s home: their home volume's name, or with ``homes_root`` the
    host path of their home directory on the shared storage (core.homes)."""
    if homes_root:
        return str(home_directory(homes_root, template, user))
    return home_volume_name(template, user)


def with_dashboard(settings: ContainerSettings, dashboard: Dashboard | None) -> ContainerSettings:
    """A server's container settings, changed for a dashboard server (unchanged for ``None``): the
    same image, limits, home volume and labels, plus the label ``titan.dashboard=<app>`` and the
    dashboard proxy as the command."""
    if dashboard is None:
        return settings
    return dataclasses.replace(
        settings,
        labels={**settings.labels, LABEL_DASHBOARD: dashboard.app},
        environment={**settings.environment, "TITAN_DASHBOARD_APP": dashboard.app,
                     "TITAN_DASHBOARD_PATH": dashboard.path},
        command=dashboard_command(dashboard),
    )
