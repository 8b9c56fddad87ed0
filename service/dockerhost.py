"""The service's one Docker client (``DockerHost``): users' home volumes, the profile of a running
server, and the gateway's Dask containers, all read from the engine on this host (on a swarm, from
its manager: servers and Dask containers are services there).

The service runs as root on the Docker host: a home is reached through its volume's host path
(``docker volume inspect`` -> Mountpoint), never through ``docker exec``; with homes on shared
storage (``homes_root``, titan.yaml swarm.homes_root) it is the directory ``<homes_root>/<name>``,
which the hub host mounts as every node does (core.homes).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from traitlets import Bool, Unicode
from traitlets.config import LoggingConfigurable

from core.labels import LABEL_DEPLOYMENT, LABEL_OWNER, LABEL_PROFILE, LABEL_SERVER
from service.usage.recorder import DaskContainer, parse_time


class DockerHost(LoggingConfigurable):
    """What the service reads from the Docker engine (blocking calls: run them in a thread). Errors
    of the engine are OSErrors (docker's APIError is a requests error, an IOError)."""

    home_volume_template = Unicode(
        "titan-home-{username}",
        help="""The users' home volume names, as the spawner's ``home_volume_template`` ({username}
        escaped as the spawner escapes it). Default titan-home-{username}; the hub's config gives
        <deployment>-home-{username}.""",
    ).tag(config=True)
    homes_root = Unicode(
        "", help="""The directory on shared storage holding the homes (titan.yaml swarm.homes_root, as the
        spawner's ``homes_root``): a home is <homes_root>/<home volume name> there, read directly.
        Default "": homes are Docker volumes of this engine. Example: /srv/titan/homes""",
    ).tag(config=True)
    swarm = Bool(
        False, help="""The servers are services of a Docker Swarm (titan.yaml engine: swarm): a server's
        profile is read from its service on the manager (``manager``); homes must be on shared
        storage (``homes_root``). Default False: containers of this host's engine.""",
    ).tag(config=True)
    manager = Unicode(
        "", help="""With ``swarm``: the Docker API of a Swarm manager (titan.yaml swarm.manager), a
        DOCKER_HOST URL. Default "": DOCKER_HOST, else the local socket.""",
    ).tag(config=True)
    deployment = Unicode(
        "", help="""The deployment label (``titan.deployment``) of this hub's containers: servers and Dask
        containers of other deployments on the same engine are not looked at. Default "": every one.
        Example: titan""",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: docker.DockerClient | None = None
        self._dask_sizes: dict[str, tuple[float, int, datetime | None]] = {}  # id -> (cores, memory, started)

    @property
    def client(self) -> docker.DockerClient:
        """``docker.from_env()``, made at first use (DOCKER_HOST and friends come from the hub)."""
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self.manager) if self.manager else docker.from_env()
            except docker.errors.DockerException as error:  # no engine to talk to: a network failure
                raise ConnectionError(f"the Docker engine is not reachable: {error}") from None
        return self._client

    def volume_path(self, user: str) -> Path:
        """The host path of ``user``'s home; LookupError when it does not exist yet."""
        from core.homes import home_directory
        from core.labels import home_volume_name

        if self.homes_root:
            home = home_directory(self.homes_root, self.home_volume_template, user)
            if not home.is_dir():
                raise LookupError(f"home {home} does not exist yet (start a server once)")
            return home
        if self.swarm:
            raise LookupError("homes on a swarm are on its nodes: set swarm.homes_root (docs/swarm-homes.md) "
                              "for the service to reach them")
        name = home_volume_name(self.home_volume_template, user)
        try:
            volume = self.client.volumes.get(name)
        except docker.errors.NotFound:
            raise LookupError(f"home volume {name} does not exist yet (start a server once)") from None
        return Path(volume.attrs["Mountpoint"])

    def profile_of(self, user: str, server: str) -> str | None:
        """The ``titan.profile`` label of ``user``'s running ``server`` container, None without one."""
        labels = [f"{LABEL_OWNER}={user}", f"{LABEL_SERVER}={server}"]
        if self.deployment:
            labels.append(f"{LABEL_DEPLOYMENT}={self.deployment}")
        if self.swarm:  # a server is a service; a stopped one has none
            services = self.client.api.services(filters={"label": labels})
            return str((services[0]["Spec"].get("Labels") or {}).get(LABEL_PROFILE) or "") or None if services \
                else None
        found = self.client.containers.list(filters={"label": labels})
        return found[0].labels.get(LABEL_PROFILE) if found else None

    def dask_containers(self) -> list[DaskContainer]:
        """Every scheduler and worker container of this deployment. One ``docker ps`` a call; a
        container is inspected once when it has started (its cores, memory and start time do not
        change) and once more if it exited."""
        from core.labels import LABEL_CLUSTER, LABEL_ORIGIN, LABEL_ROLE

        labels = [LABEL_CLUSTER] + ([f"{LABEL_DEPLOYMENT}={self.deployment}"] if self.deployment else [])
        if self.swarm:
            return self._dask_services(labels)
        found: list[dict[str, Any]] = self.client.api.containers(all=True, filters={"label": labels})
        known = self._dask_sizes
        result = []
        for summary in found:
            container_id, running = summary["Id"], summary.get("State") == "running"
            finished = None
            if container_id not in known or not running:
                try:
                    info = self.client.api.inspect_container(container_id)
                except docker.errors.NotFound:
                    continue
                host, state = info.get("HostConfig") or {}, info.get("State") or {}
                cores = (host.get("NanoCpus") or 0) / 1e9 or (host.get("CpuQuota") or 0) / (host.get("CpuPeriod")
                                                                                           or 100000)
                started = parse_time(state.get("StartedAt"))
                if started is not None:
                    known[container_id] = (float(cores), int(host.get("Memory") or 0), started)
                running = bool(state.get("Running"))
                finished = None if running else parse_time(state.get("FinishedAt"))
                size = (float(cores), int(host.get("Memory") or 0), started)
            else:
                size = known[container_id]
            container_labels = summary.get("Labels") or {}
            result.append(DaskContainer(
                id=container_id, user=container_labels.get(LABEL_OWNER, ""),
                cluster=container_labels.get(LABEL_CLUSTER, ""), role=container_labels.get(LABEL_ROLE, ""),
                server=container_labels.get(LABEL_ORIGIN, ""), cores=size[0], memory=size[1], started=size[2],
                running=running, finished=finished))
        for gone in set(known) - {c.id for c in result}:
            known.pop(gone, None)
        return result

    def _dask_services(self, labels: list[str]) -> list[DaskContainer]:
        """On a swarm: each scheduler and worker is a service on the manager (gateway.swarm), its
        size its limits (= its reservations), its start the time its task began running, its end the
        time that task ended. Two calls: the services, then their tasks."""
        from core.engine.swarm_spec import ENDED, latest_task
        from core.labels import LABEL_CLUSTER, LABEL_ORIGIN, LABEL_ROLE

        services: list[dict[str, Any]] = self.client.api.services(filters={"label": labels})
        if not services:
            self._dask_sizes.clear()
            return []
        tasks: list[dict[str, Any]] = self.client.api.tasks(filters={"service": [s["ID"] for s in services]})
        by_service: dict[str, list[dict[str, Any]]] = {}
        for each in tasks:
            by_service.setdefault(str(each.get("ServiceID", "")), []).append(each)
        known, result = self._dask_sizes, []
        for service in services:
            spec = service.get("Spec") or {}
            limits = ((spec.get("TaskTemplate") or {}).get("Resources") or {}).get("Limits") or {}
            task = latest_task(by_service.get(str(service["ID"]), []))
            status = (task or {}).get("Status") or {}
            state = str(status.get("State", ""))
            running = state == "running"
            cores, memory = int(limits.get("NanoCPUs") or 0) / 1e9, int(limits.get("MemoryBytes") or 0)
            if running and service["ID"] not in known:  # the time it became running: its start
                known[service["ID"]] = (cores, memory, parse_time(status.get("Timestamp")))
            started = known[service["ID"]][2] if service["ID"] in known else None
            ended = state in ENDED
            service_labels = spec.get("Labels") or {}
            result.append(DaskContainer(
                id=str(service["ID"]), user=service_labels.get(LABEL_OWNER, ""),
                cluster=service_labels.get(LABEL_CLUSTER, ""), role=service_labels.get(LABEL_ROLE, ""),
                server=service_labels.get(LABEL_ORIGIN, ""), cores=cores, memory=memory, started=started,
                running=running, finished=parse_time(status.get("Timestamp")) if ended else None))
        for gone in set(known) - {c.id for c in result}:
            known.pop(gone, None)
        return result
