"""``DockerBackend``: dask-gateway's ``DBBackendBase`` with schedulers and workers in containers.

The base class owns the state machine, the database and the proxy; this subclass writes the
``do_*`` primitives and puts together the parts Titan adds, each in a module of its own:

- the engine running the containers (core.engine: Docker by default); a cluster belongs to one of
  the user's running servers (``server`` option); its scheduler and workers run in that server's
  image and network namespace (``network_mode: container:<server>``), so they are on their owner's
  own network (core.network) and nowhere else, limited and hardened, labelled by deployment,
  owner, server and cluster (gateway.containers); on a Swarm (``engine_kind``), services on their
  server's overlay network across nodes, with their TLS material as Swarm secrets (gateway.swarm);
- admission of a new cluster, one pure decision (gateway.admission) over the options and limits of
  the profile data (gateway.options, gateway.limits), with no ``await`` between check and change;
- scaling within the limits (gateway.scaling), the TLS files (gateway.tls), the workers' GPUs
  (gateway.worker_gpus), the periodic clean-up (gateway.reaper);
- the dashboard gate (gateway.dashboards) and the hub's routes (gateway.routes).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.db_base import Cluster, DBBackendBase, JobStatus, Worker
from dask_gateway_server.models import User
from dask_gateway_server.options import Options
from dask_gateway_server.traitlets import Type
from traitlets import TraitError, default

from core.engine.base import ContainerEngine, ContainerInfo
from core.engine.factory import build_engine
from core.engine.spec import ContainerSpec
from core.engine.swarm import SwarmEngine
from core.gpu.allocator import GpuAllocator, parse_gpu_label
from core.gpu.inventory import GpuUnit
from core.labels import (
    ALIVE,
    LABEL_CLUSTER,
    LABEL_DEPLOYMENT,
    LABEL_GPUS,
    LABEL_OWNER,
    LABEL_PROFILE,
    LABEL_ROLE,
    LABEL_SERVER,
    LABEL_WORKER,
    SCHEDULER,
    WORKER,
    worker_gpu_owner,
)
from core.profiles import ProfileSet
from core.settings import port_range
from gateway import dashboards, reaper, routes
from gateway import swarm as swarm_parts
from gateway.admission import Accepted, GpuFacts, Origin, admit
from gateway.backend_settings import BackendSettings
from gateway.cluster_config import DockerClusterConfig
from gateway.containers import dask_container
from gateway.hub import SERVICE_NAME
from gateway.options import DaskSettings, OptionsError, options_spec, parse_request
from gateway.profile_data import ProfileData
from gateway.scaling import Scaling
from gateway.tls import TLS_CERT, TLS_KEY, TlsFiles
from gateway.worker_gpus import WorkerGpus

__all__ = ["DockerBackend", "DockerClusterConfig", "Origin"]


class DockerBackend(DBBackendBase, BackendSettings):
    """Runs each cluster's scheduler and workers as Docker containers on this host."""

    cluster_config_class = Type(
        "gateway.cluster_config.DockerClusterConfig",
        klass="dask_gateway_server.backends.base.ClusterConfig",
        help="The cluster config class. Default: gateway.cluster_config.DockerClusterConfig.",
        config=True,
    )

    supports_bulk_shutdown = True

    @default("cluster_options")
    def _default_cluster_options(self) -> Callable[[User], Options]:
        return lambda user: options_spec(self.dask_settings(), self.max_idle_timeout)

    # ---- profile data -------------------------------------------------------------------

    _profile_data: ProfileData | None = None

    def profile_data(self) -> ProfileData:
        if self._profile_data is None or self._profile_data.directory != Path(self.profiles_dir):
            self._profile_data = ProfileData(Path(self.profiles_dir))
        return self._profile_data

    def dask_settings(self) -> DaskSettings:
        """The `dask` section of the profile data, re-read when a profile file changes."""
        return self.profile_data().dask_settings()

    def profile_set(self) -> ProfileSet:
        """All of the profile data (the GPU types, the servers' profiles)."""
        return self.profile_data().profiles()

    @property
    def max_idle_timeout(self) -> float:
        """``c.ClusterConfig.idle_timeout``: the longest a cluster may idle (0: no limit)."""
        return float(self.cluster_config_class(parent=self).idle_timeout)

    # ---- the parts ----------------------------------------------------------------------

    _engine: ContainerEngine | None = None
    _tls_files: TlsFiles | None = None
    _worker_gpus: WorkerGpus | None = None
    _scaling: Scaling | None = None
    _swarm: swarm_parts.SwarmClusters | None = None

    @property
    def engine(self) -> ContainerEngine:
        """The engine running the clusters' containers: ``engine_kind``'s unless one was given."""
        if self._engine is None:
            self._engine = build_engine(self.engine_kind, self.docker_threads, self.swarm_manager)
        return self._engine

    @engine.setter
    def engine(self, engine: ContainerEngine) -> None:
        self._engine, self._swarm = engine, None

    @property
    def swarm(self) -> swarm_parts.SwarmClusters | None:
        """The Swarm parts (gateway.swarm) when the engine is a Swarm's, else None."""
        if self._swarm is None and isinstance(self.engine, SwarmEngine):
            self._swarm = swarm_parts.SwarmClusters(self.engine, port_range(self.swarm_published_ports),
                                                    self.swarm_interface, self.log)
        return self._swarm

    @property
    def tls_files(self) -> TlsFiles:
        if self._tls_files is None:
            self._tls_files = TlsFiles(self.tls_dir, self.container_user, self.log)
        return self._tls_files

    @tls_files.setter
    def tls_files(self, files: TlsFiles) -> None:
        self._tls_files = files

    @property
    def worker_gpus(self) -> WorkerGpus:
        if self._worker_gpus is None:
            self._worker_gpus = WorkerGpus(self.gpu_db_url, self.gpu_inventory_xml, self.profile_set, self.log)
        return self._worker_gpus

    @property
    def scaling(self) -> Scaling:
        if self._scaling is None:
            self._scaling = Scaling(self.worker_gpus, lambda: float(self.cluster_heartbeat_period), self.log)
        return self._scaling

    def gpus(self) -> GpuAllocator | None:
        """The GPU allocator over the spawner's database; ``None`` when none is configured."""
        return self.worker_gpus.allocator()

    def tls_source(self, cluster: Cluster) -> Path:  # the host directory (one host only)
        return self.tls_files.source(str(cluster.name))

    async def deployment_containers(self, labels: Mapping[str, str | None] | None = None) -> list[ContainerInfo]:
        return await self.engine.list_containers({LABEL_DEPLOYMENT: self.deployment, **(labels or {})})

    async def alive(self, objects: Iterable[Cluster | Worker]) -> list[bool]:
        """Whether each object's container is alive (created, running or restarting)."""
        objects = list(objects)
        if not objects:
            return []
        states = {c.id: c.state for c in await self.deployment_containers({LABEL_CLUSTER: None})}
        return [states.get((o.state or {}).get("container_id", "")) in ALIVE for o in objects]

    # ---- the containers -----------------------------------------------------------------

    def get_tls_paths(self, cluster: Cluster) -> tuple[str, str]:
        return (swarm_parts.TLS_CERT, swarm_parts.TLS_KEY) if self.swarm else (TLS_CERT, TLS_KEY)

    def get_scheduler_command(self, cluster: Cluster) -> list[str]:
        command: list[str] = super().get_scheduler_command(cluster)
        return swarm_parts.scheduler_command(command) if self.swarm else command

    def get_worker_command(self, cluster: Cluster, worker_name: str,
                           scheduler_address: str | None = None) -> list[str]:
        if self.swarm and scheduler_address is None:
            scheduler_address = swarm_parts.scheduler_overlay_address(self.deployment, cluster.username, cluster.name)
        command: list[str] = super().get_worker_command(cluster, worker_name, scheduler_address)
        gpus = int(cluster.config.get("worker_gpus") or 0)
        # Tasks can ask for a GPU with resources={"GPU": 1}.
        command = [*command, *(["--resources", f"GPU={gpus}"] if gpus else [])]
        return swarm_parts.worker_command(command, self.swarm.interface) if self.swarm else command

    def scheduler_spec(self, cluster: Cluster) -> ContainerSpec:
        return dask_container(self.deployment, cluster, SCHEDULER, "", self.get_scheduler_command(cluster),
                              self.get_scheduler_env(cluster), self.container_user,
                              self.tls_files.mount(str(cluster.name)))

    def worker_spec(self, worker: Worker, gpus: Iterable[GpuUnit] = ()) -> ContainerSpec:
        """A worker's container; with ``gpus``, exactly those devices."""
        cluster = worker.cluster
        return dask_container(self.deployment, cluster, WORKER, worker.name,
                              self.get_worker_command(cluster, worker.name), self.get_worker_env(cluster),
                              self.container_user, self.tls_files.mount(str(cluster.name)),
                              [u.uuid for u in gpus])

    async def _start_container(self, spec: ContainerSpec, cluster: Cluster) -> AsyncIterator[dict[str, Any]]:
        if self.swarm:  # a service on its server's network, its TLS material its secrets
            container_id = await self.swarm.create(spec, cluster)
        else:  # the TLS files before the container exists: it starts with them in place
            await asyncio.to_thread(self.tls_files.write, str(cluster.name), cluster.tls_cert, cluster.tls_key)
            container_id = await self.engine.create(spec)
        # Checkpoint: from here on a failure is cleaned up from this state.
        yield {"container_id": container_id, "container_name": spec.name}
        await self.engine.start(container_id)

    async def do_start_cluster(self, cluster: Cluster) -> AsyncIterator[dict[str, Any]]:
        async for state in self._start_container(self.scheduler_spec(cluster), cluster):
            yield state

    async def do_start_worker(self, worker: Worker) -> AsyncIterator[dict[str, Any]]:
        cluster = worker.cluster
        owner = worker_gpu_owner(cluster.username, cluster.name, worker.name)
        units = await self.worker_gpus.claim(worker)
        try:
            async for state in self._start_container(self.worker_spec(worker, units), cluster):
                if units:
                    await self.worker_gpus.attach(owner, str(state["container_id"]))
                yield state
        except BaseException:
            if units:
                await asyncio.shield(self.worker_gpus.release([owner]))
            raise

    async def _remove(self, labels: Mapping[str, str | None], state: Mapping[str, Any] | None) -> None:
        ids = {c.id for c in await self.deployment_containers(labels)}
        if (state or {}).get("container_id"):
            ids.add(str(state["container_id"]))  # type: ignore[index]
        await asyncio.gather(*(self.engine.remove(i) for i in ids))

    async def do_stop_cluster(self, cluster: Cluster) -> None:
        """Bulk shutdown: the scheduler and every worker of the cluster."""
        await self._remove({LABEL_CLUSTER: cluster.name}, cluster.state)
        self.tls_files.remove(str(cluster.name))
        await self.worker_gpus.release_cluster(cluster)

    async def do_stop_worker(self, worker: Worker) -> None:
        await self._remove({LABEL_WORKER: worker.name}, worker.state)
        await self.worker_gpus.release_worker(worker)

    async def do_check_clusters(self, clusters: list[Cluster]) -> list[bool]:
        return await self.alive(clusters)

    async def do_check_workers(self, workers: list[Worker]) -> list[bool]:
        return await self.alive(workers)

    # ---- new clusters -------------------------------------------------------------------

    async def origin(self, username: str, server: str) -> Origin:
        """The running server ``server`` of ``username``; ``PublicException`` when it is not running."""
        found = [c for c in await self.deployment_containers({LABEL_OWNER: username, LABEL_SERVER: None})
                 if c.state == "running" and c.labels.get(LABEL_SERVER) == server and not c.labels.get(LABEL_ROLE)]
        if not found:
            which = f"server {server!r}" if server else "default server"
            raise PublicException(
                f"A Dask cluster belongs to one of your running servers, and your {which} is not running. "
                f"Start it, or pass server='<name of a running server>'.")
        container = found[0]
        return Origin(container_id=container.id, image=container.image,
                      profile=container.labels.get(LABEL_PROFILE, ""),
                      gpus=tuple(parse_gpu_label(container.labels.get(LABEL_GPUS))),
                      network=container.network_mode if self.swarm else "")

    async def start_cluster(self, user: User, cluster_options: Any) -> str:
        try:
            settings = self.dask_settings()
            request = parse_request(settings, cluster_options, self.max_idle_timeout)
        except OptionsError as error:
            raise PublicException(str(error)) from None
        if self.swarm and request.worker_gpus:  # as_service refuses them: say so before anything starts
            raise PublicException(swarm_parts.NO_GPU_WORKERS)
        origin = await self.origin(user.name, request.server)
        server_type = self.worker_gpus.server_gpu_type(user.name, request.server, origin.gpus, origin.profile) \
            if request.worker_gpus else None
        gpus = GpuFacts(self.worker_gpus.totals(), server_type)
        # No await from the decision to the insert: concurrent requests are decided one after another.
        active = [self.scaling.shape(c) for c in self.db.list_clusters(username=user.name)]
        decision = admit(settings, request, origin, user.groups, active, gpus)
        if not isinstance(decision, Accepted):
            if decision.limit:
                self.log.info("Refused a cluster for %s: %s", user.name, decision.limit)
            raise PublicException(decision.message)
        try:
            config = self.cluster_config_class(parent=self, **decision.config)
        except TraitError as error:  # a trait refused a value: tell the user which
            raise PublicException(str(error)) from None
        cluster = self.db.create_cluster(user.name, decision.request.as_dict(), config.to_dict())
        self.log.info("Created cluster %s for %s (server %r, image %s)", cluster.name, user.name,
                      request.server, origin.image)
        self.queue.put(cluster)
        return str(cluster.name)

    # ---- scaling within the limits ------------------------------------------------------

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict[str, Any]) -> None:
        """Clip ``scale`` and ``adapt`` to what the owner's limits leave, and say so."""
        db_cluster = self.db.get_cluster(cluster.name)
        if db_cluster is not None:
            requested = routes.requested_count(msg.get("count") if msg.get("op") == "scale" else msg.get("maximum"))
            msg, notes = self.scaling.clip_request(self.db, db_cluster, msg, requested)
            for note in notes:
                routes.note(note)
        await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> None:
        """Every worker count the scheduler asks for (scale or adaptive) passes the limits here. On
        Swarm the gateway reaches the scheduler at its node's published ports (gateway.swarm)."""
        cluster = self.db.get_cluster(cluster_name)
        msg = self.scaling.clip_heartbeat(self.db, cluster, msg)
        if self.swarm and cluster is not None and cluster.status < JobStatus.RUNNING:
            msg = await self.swarm.reached_at(str((cluster.state or {}).get("container_id", "")), msg)
        await super().on_cluster_heartbeat(cluster_name, msg)

    # ---- lifecycle with the user's servers ----------------------------------------------

    async def stop_server_clusters(self, username: str, server: str, wait: float = 20.0) -> list[str]:
        """Stop the clusters that belong to ``username``'s server ``server``; wait up to ``wait``
        seconds for their containers to go. Returns the names of the clusters stopped."""
        clusters = [c for c in self.db.list_clusters(username=username) if c.config.get("origin_server") == server]
        for cluster in clusters:
            self.log.info("Server %s/%s stopped: stopping its cluster %s", username, server, cluster.name)
            await self.stop_cluster(cluster.name)
        await reaper.wait_stopped(clusters, wait, f"Clusters of {username}/{server}", self.log)
        return [str(c.name) for c in clusters]

    async def stop_cluster_by_name(self, name: str, wait: float = 20.0) -> str | None:
        """Stop one active cluster (an admin's request); its user's name, or None when no such
        cluster is active. Waits up to ``wait`` seconds for its containers to go."""
        cluster = self.db.get_cluster(name)
        if cluster is None or cluster.status >= JobStatus.STOPPED:
            return None
        self.log.info("Stopping cluster %s (%s) on an admin's request", name, cluster.username)
        await self.stop_cluster(name)
        await reaper.wait_stopped([cluster], wait, f"Cluster {name}", self.log)
        return str(cluster.username)

    async def reap(self) -> None:
        """One pass of the reaper (gateway.reaper)."""
        await reaper.reap(self)

    async def reap_closed_workers(self) -> None:
        await reaper.reap_closed_workers(self)

    # ---- set-up and clean-up ------------------------------------------------------------

    _gate: dashboards.DashboardGate | None = None

    async def setup(self, app: web.Application) -> None:
        self.dask_settings()  # bad profile data fails the start, with the file and key
        self.gpus()  # the inventory, read once and logged
        routes.install(app, self)
        self._gate = dashboards.install(app, self, dashboards.HubLink.from_environment(os.environ, SERVICE_NAME))
        await super().setup(app)

    def gate_url(self) -> str:
        """Where the proxy reaches the gate: ``dashboard_gate_url``, else the private API's address."""
        address = getattr(self.parent, "address", "")
        return (self.dashboard_gate_url or f"http://{address}").rstrip("/")

    async def _check_cluster_proxied(self, cluster: Cluster) -> None:
        """dask-gateway's step, with the dashboard route pointing at the login gate
        (gateway.dashboards) instead of straight at the scheduler."""
        if not cluster.added_to_proxies:
            self.log.info("Adding cluster %s routes to proxies", cluster.name)
            if cluster.dashboard_address:
                await self.proxy.add_route(kind="PATH", path=f"/clusters/{cluster.name}",
                                           target=f"{self.gate_url()}{dashboards.GATE_PATH}/{cluster.name}")
            await self.proxy.add_route(kind="SNI", sni=cluster.name, target=cluster.scheduler_address)
            cluster.added_to_proxies = True

    async def do_setup(self) -> None:
        await self.proxy.add_route(kind="PATH", path=dashboards.OAUTH_CALLBACK_PATH,
                                   target=f"{self.gate_url()}{dashboards.GATE_CALLBACK_PATH}")
        self.tls_files.root()
        self.task_pool.spawn(reaper.every(lambda: self.server_check_period, self.reap,
                                          "Checking cluster containers", self.log))
        self.task_pool.spawn(reaper.every(lambda: self.closed_worker_check_period, self.reap_closed_workers,
                                          "Checking retired workers", self.log, first_at_once=False))

    async def do_cleanup(self) -> None:
        if self._gate is not None:
            await self._gate.close()
        await self.engine.close()
        self.tls_files.close()
