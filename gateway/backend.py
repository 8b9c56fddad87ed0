"""``DockerBackend``: dask-gateway's ``DBBackendBase`` with schedulers and workers in containers.

The base class owns the state machine, the database and the proxy; this subclass writes the
``do_*`` primitives and adds what Titan needs:

- a cluster belongs to one of the user's running servers (``server`` option, filled in by the
  server's environment); its scheduler and workers run in that server's image and in that server's
  network namespace (``network_mode: container:<server>``), so they are on their owner's own network
  (core.network) and nowhere else, limited in memory, CPU and processes, with no capabilities,
  labelled by deployment, owner, server and cluster;
- the cluster's dashboard is served through a gate (gateway.dashboards): its owner and hub admins
  only, after a hub login;
- the options and the limits come from the profile data (:mod:`gateway.options`,
  :mod:`gateway.limits`); limits are checked with no ``await`` between check and change;
- clusters stop when their server stops (the hub calls :mod:`gateway.routes`, and a periodic pass
  stops clusters whose server container is gone and removes containers no cluster owns);
- workers asking for GPUs (``worker_gpus``) draw distinct units from the spawner's own allocator
  database (owner ``<user>/dask/<cluster>/<worker>``) before their container is created, get
  exactly those devices and the ``titan.gpus`` label, and give them back when they stop or fail;
- the cluster's TLS certificate and key reach its containers as 0600 files of the container user
  in a per-cluster directory under ``tls_dir`` (in the state directory), bind-mounted read-only:
  never in the environment, labels or ``docker inspect``; the directory goes with the cluster;
- workers the scheduler retired are removed as soon as their container has exited, not at the
  scheduler's next heartbeat (up to ``cluster_heartbeat_period`` later).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
from aiohttp import web
from dask_gateway_server.backends.base import ClusterConfig, PublicException
from dask_gateway_server.backends.db_base import Cluster, DBBackendBase, JobStatus, Worker
from dask_gateway_server.models import User
from dask_gateway_server.options import Options
from dask_gateway_server.traitlets import Command, Type
from sqlalchemy.exc import OperationalError
from traitlets import Dict, Float, Integer, Unicode, default

from core.gpu.allocator import (
    GpuAllocator,
    GpuUnavailable,
    docker_device_request,
    gpu_label_value,
    parse_gpu_label,
)
from core.gpu.inventory import GpuUnit
from core.gpu.pool import gpu_allocator
from core.gpu.types import match_types
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
    cluster_gpu_prefix,
    parse_worker_gpu_owner,
    worker_gpu_owner,
)
from core.profiles import PROFILES_DIR, ProfileSet, profiles_in, resources_from_settings
from gateway import dashboards, routes
from gateway.containers import (
    TLS_CERT,
    TLS_KEY,
    ContainerSpec,
    container_labels,
    container_name,
    parse_user,
    server_namespace,
    write_tls_files,
)
from gateway.hub import SERVICE_NAME
from gateway.limits import LimitExceeded, Limits, Shape, check_new_cluster, describe_limit, limits_for, workers_allowed
from gateway.options import (
    ClusterRequest,
    DaskSettings,
    OptionsError,
    dask_settings,
    options_spec,
    parse_request,
    resolve_gpu_type,
)

T = TypeVar("T")


class DockerClusterConfig(ClusterConfig):
    """One cluster's configuration. Titan fills ``image``, ``origin_*``, the worker size and
    ``user_limits`` per cluster; the rest comes from ``c.ClusterConfig`` in gateway/config.py."""

    scheduler_cmd = Command(["dask", "scheduler"], config=True,
                            help="Command starting the scheduler in its container. Default: dask scheduler.")
    worker_cmd = Command(["dask", "worker"], config=True,
                         help="Command starting a worker in its container. Default: dask worker.")
    worker_cores = Float(1, min=0.01, config=True,
                         help="CPU cores of a worker container (a CPU quota; may be fractional). Default 1.")
    worker_gpus = Integer(0, min=0, help="GPUs each worker holds (the cluster's worker_gpus option). Default 0.")
    worker_gpu_type = Unicode("", help="GPU type (a name in the profile data's gpu_types) of the workers' GPUs.")
    scheduler_cores = Float(1, min=0.01, config=True,
                            help="CPU cores of the scheduler container (may be fractional). Default 1.")
    image = Unicode("", help="Image of the scheduler and workers: the image of the cluster's server.")
    origin_server = Unicode("", help="Name of the server the cluster belongs to ('' is the default server).")
    origin_container = Unicode("", help="Container id of that server; the cluster stops when it is gone.")
    user_limits = Dict(help="The owner's limits when the cluster was created (gateway.limits.Limits fields).")


@dataclass(frozen=True)
class Origin:
    """The running server a cluster belongs to."""

    container_id: str
    image: str
    profile: str
    gpus: tuple[str, ...] = ()  # uuids of the GPUs the server holds (its titan.gpus label)


class DockerBackend(DBBackendBase):
    """Runs each cluster's scheduler and workers as Docker containers on this host."""

    cluster_config_class = Type(
        "gateway.backend.DockerClusterConfig",
        klass="dask_gateway_server.backends.base.ClusterConfig",
        help="The cluster config class. Default: gateway.backend.DockerClusterConfig.",
        config=True,
    )

    deployment = Unicode(
        "titan",
        config=True,
        help="""Titan deployment name: containers get the label titan.deployment=<name> and the
        name prefix <name>-dask-; only servers of this deployment can own clusters. Default "titan".""",
    )

    profiles_dir = Unicode(
        str(PROFILES_DIR),
        config=True,
        help="""Directory of the profile YAML files; their `dask` section gives the worker sizes,
        the scheduler size and the limits. Re-read when a file changes. Default: profiles/.""",
    )

    container_user = Unicode(
        "1000:1000",
        config=True,
        help="""uid:gid the scheduler and workers run as (the images' jovyan user); the cluster's
        TLS certificate and key files (see tls_dir) belong to it. Default "1000:1000".""",
    )

    server_check_period = Float(
        10.0,
        config=True,
        help="""Seconds between passes that stop clusters whose server container is gone and remove
        containers that no active cluster or worker owns. Default 10.""",
    )

    control_token = Unicode(
        "",
        config=True,
        help="""Secret the hub presents to ask for a server's clusters to be stopped (POST
        /api/titan/v1/server-stopped). Empty disables that route. Default "".""",
    )

    docker_threads = Integer(8, min=1, config=True,
                             help="Threads running Docker API calls (and connections kept to the engine). Default 8.")

    tls_dir = Unicode(
        "",
        config=True,
        help="""Directory (private to the gateway: 0700, on this host) holding one directory per
        cluster with its TLS certificate and key, bind-mounted read-only into its containers.
        gateway/configure.py puts it in the state directory, so clusters keep it across a gateway
        restart. Default "": a temporary directory, removed when the gateway stops.""",
    )

    closed_worker_check_period = Float(
        1.0,
        min=0.1,
        config=True,
        help="""Seconds between checks, while a cluster is retiring workers, for retired workers
        whose container has exited: they are removed then instead of at the scheduler's next
        heartbeat. No Docker call while no worker is retiring. Default 1.""",
    )

    gpu_db_url = Unicode(
        "",
        config=True,
        help="""The spawner's GPU allocation database (sqlalchemy URL): workers asking for GPUs draw
        from the same units as servers. gateway/configure.py points it at state/gpu-allocations.sqlite,
        as jupyterhub_config.py does for the spawner. Default "": workers cannot have GPUs.""",
    )

    gpu_inventory_xml = Unicode(
        "",
        config=True,
        help="""Read the host's GPUs from this `nvidia-smi -q -x` file instead of asking the driver, as
        TitanDockerSpawner.gpu_inventory_xml does (the same setting). Default "": discover.""",
    )

    dashboard_gate_url = Unicode(
        "",
        config=True,
        help="""Where the gateway's proxy reaches this gateway's private API (``http://127.0.0.1:<api_port>``):
        cluster dashboards are routed through its login gate there (gateway.dashboards) instead of straight
        to the scheduler. Default "": the private API's own address.""",
    )

    supports_bulk_shutdown = True

    @default("cluster_options")
    def _default_cluster_options(self) -> Callable[[User], Options]:
        return lambda user: options_spec(self.dask_settings(), self.max_idle_timeout)

    # ---- profile data -------------------------------------------------------------------

    _settings_cache: tuple[ProfileSet, DaskSettings] | None = None
    _reserved: dict[str, tuple[int, float]]

    def dask_settings(self) -> DaskSettings:
        """The `dask` section of the profile data, re-read when a profile file changes."""
        return self._profile_data()[0]

    def profile_set(self) -> ProfileSet:
        """All of the profile data (the GPU types, the servers' profiles)."""
        return self._profile_data()[1]

    def _profile_data(self) -> tuple[DaskSettings, ProfileSet]:
        profiles = profiles_in(Path(self.profiles_dir))
        if self._settings_cache is None or self._settings_cache[0] is not profiles:
            self._settings_cache = (profiles, dask_settings(profiles.dask, profiles.gpu_types))
        return self._settings_cache[1], profiles

    @property
    def max_idle_timeout(self) -> float:
        """``c.ClusterConfig.idle_timeout``: the longest a cluster may idle (0: no limit)."""
        return float(self.cluster_config_class(parent=self).idle_timeout)

    # ---- Docker -------------------------------------------------------------------------

    _api: docker.APIClient | None = None
    _executor: ThreadPoolExecutor | None = None
    _tls_root: Path | None = None
    _tls_root_temporary = False

    async def _client(self) -> docker.APIClient:
        """The one docker-py client, made on first use (it asks the engine for its API version),
        with a connection pool as large as the thread pool, so parallel calls do not queue for one."""
        if self._api is None:
            api = await self._in_thread(lambda: docker.from_env(max_pool_size=self.docker_threads).api)
            if self._api is None:
                self._api = api
            else:
                api.close()
        return self._api

    async def _docker(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a docker-py ``APIClient`` method in a thread."""
        api = await self._client()
        return await self._in_thread(lambda: getattr(api, method)(*args, **kwargs))

    async def _in_thread(self, work: Callable[[], T]) -> T:
        """``work()`` on the Docker threads (the allocator's sqlite calls may wait for its lock)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.docker_threads, thread_name_prefix="docker")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    # ---- the clusters' TLS files --------------------------------------------------------

    def tls_root(self) -> Path:
        """``tls_dir`` (made 0700 if absent), or a temporary directory made on first use."""
        if self._tls_root is None:
            if self.tls_dir:
                root = Path(self.tls_dir)
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
                root.chmod(0o700)
            else:
                root = Path(tempfile.mkdtemp(prefix="titan-dask-tls-"))
                self._tls_root_temporary = True
            self._tls_root = root
        return self._tls_root

    def tls_source(self, cluster: Cluster) -> Path:
        """The host directory bind-mounted at ``TLS_DIR`` in ``cluster``'s containers."""
        name = str(cluster.name)
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"unexpected cluster name {name!r}")
        return self.tls_root() / name

    async def _write_tls(self, cluster: Cluster) -> None:
        """Write (or check) the cluster's certificate and key: 0600 files of the container user."""
        uid, gid = parse_user(self.container_user)
        write_tls_files(self.tls_source(cluster), cluster.tls_cert, cluster.tls_key, uid, gid)

    def _remove_tls(self, name: str) -> None:
        if self._tls_root is not None or self.tls_dir:  # else none was made
            shutil.rmtree(self.tls_root() / name, ignore_errors=True)

    def reap_tls(self) -> None:
        """Remove the TLS directories of clusters that are gone or stopped (a crash between a
        cluster's stop and the removal of its directory)."""
        if self._tls_root is None and not self.tls_dir:
            return
        for entry in self.tls_root().iterdir():
            cluster = self.db.get_cluster(entry.name)
            if cluster is None or cluster.status >= JobStatus.STOPPED:
                self.log.info("Removing the TLS files of cluster %s, which is gone", entry.name)
                self._remove_tls(entry.name)

    # ---- GPUs ---------------------------------------------------------------------------

    def gpus(self) -> GpuAllocator | None:
        """The GPU allocator over the spawner's database; ``None`` when none is configured.

        It does not reconcile the table with the running containers: the hub does that (servers'
        and workers' containers alike); the gateway only frees its own workers' rows (:meth:`reap`).
        """
        if not self.gpu_db_url:
            return None
        rules = self.profile_set().gpu_types
        try:
            allocator, _ = gpu_allocator(self.gpu_db_url, self.gpu_inventory_xml, rules, self.log)
        except OperationalError:  # the hub created the table at the same moment: it is there now
            allocator, _ = gpu_allocator(self.gpu_db_url, self.gpu_inventory_xml, rules, self.log)
        return allocator

    def server_gpu_type(self, username: str, server: str, origin: Origin) -> str | None:
        """The type of the GPUs the cluster's server holds, else its profile's GPU type (if any)."""
        allocator = self.gpus()
        profiles = self.profile_set()
        if allocator is not None and origin.gpus:
            held = allocator.held_by(f"{username}/{server}")
            for name, units in match_types(held, profiles.gpu_types).items():
                if units:
                    return name
        profile = profiles.get(origin.profile)
        if profile is not None and profile.settings.get("resources"):
            return resources_from_settings(profile.settings).gpu_type
        return None

    def gpu_workers_allowed(self, cluster: Cluster) -> tuple[int, int, int] | None:
        """``(workers, free, total)``: how many of ``cluster``'s workers can hold GPUs now (the
        units free plus those its workers hold), the units of its type free and on the host;
        ``None`` for a cluster whose workers need none. No ``await``: safe between check and change."""
        per_worker = int(cluster.config.get("worker_gpus") or 0)
        allocator = self.gpus() if per_worker else None
        if allocator is None:
            return None
        gpu_type = str(cluster.config.get("worker_gpu_type"))
        prefix = cluster_gpu_prefix(cluster.username, cluster.name)
        held = sum(1 for owner in allocator.allocations().values() if owner.startswith(prefix))
        free = allocator.free_count(gpu_type)
        return (free + held) // per_worker, free, allocator.total_count(gpu_type)

    async def _release_gpus(self, owners: Iterable[str]) -> None:
        allocator = self.gpus()
        owners = list(owners)
        if allocator is None or not owners:
            return
        for owner in owners:  # the allocator logs what it frees
            await self._in_thread(partial(allocator.release, owner))

    async def _release_cluster_gpus(self, cluster: Cluster) -> None:
        allocator = self.gpus()
        if allocator is None:
            return
        prefix = cluster_gpu_prefix(cluster.username, cluster.name)
        held = await self._in_thread(allocator.allocations)
        await self._release_gpus(sorted({o for o in held.values() if o.startswith(prefix)}))

    async def _deployment_containers(self, *labels: str) -> list[dict[str, Any]]:
        filters = {"label": [f"{LABEL_DEPLOYMENT}={self.deployment}", *labels]}
        found: list[dict[str, Any]] = await self._docker("containers", all=True, filters=filters)
        return found

    async def _remove(self, container_id: str) -> None:
        try:
            await self._docker("remove_container", container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: removal already in progress
                raise

    # The steps of a start (_write_tls, _create, _start), apart so that tests can fail each one.
    async def _create(self, spec: ContainerSpec) -> str:
        host_config = (await self._client()).create_host_config(**spec.host_config_kwargs())  # no API call
        created = await self._docker("create_container", host_config=host_config, **spec.create_kwargs())
        return str(created["Id"])

    async def _start(self, container_id: str) -> None:
        await self._docker("start", container_id)

    # ---- the containers -----------------------------------------------------------------

    def get_tls_paths(self, cluster: Cluster) -> tuple[str, str]:
        return TLS_CERT, TLS_KEY

    def get_worker_command(self, cluster: Cluster, worker_name: str,
                           scheduler_address: str | None = None) -> list[str]:
        command: list[str] = super().get_worker_command(cluster, worker_name, scheduler_address)
        gpus = int(cluster.config.get("worker_gpus") or 0)
        # Tasks can ask for a GPU with resources={"GPU": 1}.
        resources = ["--resources", f"GPU={gpus}"] if gpus else []
        return [*command, *resources]

    def scheduler_spec(self, cluster: Cluster) -> ContainerSpec:
        config = cluster.config
        return ContainerSpec(
            name=container_name(self.deployment, cluster.username, cluster.name, SCHEDULER),
            image=config.image, command=self.get_scheduler_command(cluster),
            environment=self.get_scheduler_env(cluster),
            labels=container_labels(self.deployment, cluster.username, config.origin_server, cluster.name,
                                    SCHEDULER),
            cores=config.scheduler_cores, memory=config.scheduler_memory, user=self.container_user,
            network=server_namespace(config.origin_container), tls_source=str(self.tls_source(cluster)),
        )

    def worker_spec(self, worker: Worker, gpus: Sequence[GpuUnit] = ()) -> ContainerSpec:
        """A worker's container; with ``gpus``, exactly those devices (the spawner's DeviceRequest)."""
        cluster = worker.cluster
        config = cluster.config
        labels = container_labels(self.deployment, cluster.username, config.origin_server, cluster.name,
                                  WORKER, worker.name)
        environment = self.get_worker_env(cluster)
        extra: dict[str, Any] = {}
        if gpus:
            labels[LABEL_GPUS] = gpu_label_value(list(gpus))
            environment["NVIDIA_VISIBLE_DEVICES"] = labels[LABEL_GPUS]
            extra["device_requests"] = [docker_device_request(list(gpus))]
        return ContainerSpec(
            name=container_name(self.deployment, cluster.username, cluster.name, WORKER, worker.name),
            image=config.image, command=self.get_worker_command(cluster, worker.name),
            environment=environment, labels=labels,
            cores=config.worker_cores, memory=config.worker_memory, user=self.container_user,
            network=server_namespace(config.origin_container), tls_source=str(self.tls_source(cluster)),
            extra=extra,
        )

    async def _start_container(self, spec: ContainerSpec, cluster: Cluster) -> AsyncIterator[dict[str, Any]]:
        await self._write_tls(cluster)  # before the container exists: it starts with them in place
        container_id = await self._create(spec)
        # Checkpoint: from here on a failure is cleaned up from this state.
        yield {"container_id": container_id, "container_name": spec.name}
        await self._start(container_id)

    async def do_start_cluster(self, cluster: Cluster) -> AsyncIterator[dict[str, Any]]:
        async for state in self._start_container(self.scheduler_spec(cluster), cluster):
            yield state

    async def _worker_gpus(self, worker: Worker) -> list[GpuUnit]:
        """Claim the GPUs ``worker`` asks for (none: ``[]``); ``GpuUnavailable`` when they are not free."""
        cluster = worker.cluster
        count = int(cluster.config.get("worker_gpus") or 0)
        if not count:
            return []
        gpu_type = str(cluster.config.get("worker_gpu_type"))
        allocator = self.gpus()
        if allocator is None:
            raise GpuUnavailable("GPUs for Dask workers are not configured on this deployment.")
        owner = worker_gpu_owner(cluster.username, cluster.name, worker.name)
        try:
            units = await self._in_thread(partial(allocator.allocate, gpu_type, count, owner))
        except GpuUnavailable as error:
            self.log.warning("Worker %s of cluster %s (%s) cannot start: %s", worker.name, cluster.name,
                             cluster.username, error)
            raise
        self.log.info("GPUs for Dask worker %s: %s", owner, ", ".join(u.uuid for u in units))
        return units

    async def do_start_worker(self, worker: Worker) -> AsyncIterator[dict[str, Any]]:
        cluster = worker.cluster
        owner = worker_gpu_owner(cluster.username, cluster.name, worker.name)
        units = await self._worker_gpus(worker)
        try:
            async for state in self._start_container(self.worker_spec(worker, units), cluster):
                allocator = self.gpus() if units else None
                if allocator is not None:
                    await self._in_thread(partial(allocator.attach, owner, str(state["container_id"])))
                yield state
        except BaseException:
            if units:
                await asyncio.shield(self._release_gpus([owner]))
            raise

    async def do_stop_cluster(self, cluster: Cluster) -> None:
        """Bulk shutdown: the scheduler and every worker of the cluster."""
        ids = {c["Id"] for c in await self._deployment_containers(f"{LABEL_CLUSTER}={cluster.name}")}
        if (cluster.state or {}).get("container_id"):
            ids.add(cluster.state["container_id"])
        await asyncio.gather(*(self._remove(i) for i in ids))
        self._remove_tls(str(cluster.name))
        await self._release_cluster_gpus(cluster)

    async def do_stop_worker(self, worker: Worker) -> None:
        ids = {c["Id"] for c in await self._deployment_containers(f"{LABEL_WORKER}={worker.name}")}
        if (worker.state or {}).get("container_id"):
            ids.add(worker.state["container_id"])
        await asyncio.gather(*(self._remove(i) for i in ids))
        if worker.cluster.config.get("worker_gpus"):
            await self._release_gpus([worker_gpu_owner(worker.cluster.username, worker.cluster.name, worker.name)])

    async def _alive(self, objects: Iterable[Cluster | Worker]) -> list[bool]:
        objects = list(objects)
        if not objects:
            return []
        states = {c["Id"]: c["State"] for c in await self._deployment_containers(LABEL_CLUSTER)}
        return [states.get((o.state or {}).get("container_id", "")) in ALIVE for o in objects]

    async def do_check_clusters(self, clusters: list[Cluster]) -> list[bool]:
        return await self._alive(clusters)

    async def do_check_workers(self, workers: list[Worker]) -> list[bool]:
        return await self._alive(workers)

    async def reap_closed_workers(self) -> None:
        """Stop workers the scheduler retired (``close_expected``) whose container has exited:
        what its next heartbeat, listing them as closed, would do. No Docker call when none."""
        def retiring() -> list[Worker]:
            return [w for c in self.db.active_clusters() if c.status == JobStatus.RUNNING
                    for w in c.workers.values()
                    if w.close_expected and w.status == JobStatus.RUNNING and w.target == JobStatus.RUNNING]

        candidates = retiring()
        if not candidates:
            return
        alive = dict(zip((w.name for w in candidates), await self._alive(candidates), strict=True))
        gone = [w for w in retiring() if alive.get(w.name) is False]  # unchanged across the await
        if not gone:
            return
        self.db.update_workers([(w, {"target": JobStatus.STOPPED}) for w in gone])
        for worker in gone:
            self.log.info("Worker %s of cluster %s was retired and has exited", worker.name, worker.cluster.name)
            self.queue.put(worker)

    async def _closed_workers_loop(self) -> None:
        while True:
            await asyncio.sleep(self.closed_worker_check_period)
            try:
                await self.reap_closed_workers()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.warning("Checking retired workers failed", exc_info=True)

    # ---- creating clusters: options, origin server, limits ------------------------------

    async def _origin(self, username: str, server: str) -> Origin:
        found = [c for c in await self._deployment_containers(f"{LABEL_OWNER}={username}", LABEL_SERVER)
                 if c["State"] == "running" and c["Labels"].get(LABEL_SERVER) == server
                 and not c["Labels"].get(LABEL_ROLE)]
        if not found:
            which = f"server {server!r}" if server else "default server"
            raise PublicException(
                f"A Dask cluster belongs to one of your running servers, and your {which} is not running. "
                f"Start it, or pass server='<name of a running server>'.")
        container = found[0]
        return Origin(container_id=container["Id"], image=container["Image"],
                      profile=container["Labels"].get(LABEL_PROFILE, ""),
                      gpus=tuple(parse_gpu_label(container["Labels"].get(LABEL_GPUS))))

    def cluster_overrides(self, settings: DaskSettings, request: ClusterRequest, limits: Limits,
                          origin: Origin, server: str) -> dict[str, Any]:
        return {
            "image": origin.image, "origin_server": server, "origin_container": origin.container_id,
            "worker_cores": request.worker_cores, "worker_memory": request.worker_memory_bytes,
            "worker_gpus": request.worker_gpus, "worker_gpu_type": request.worker_gpu_type,
            "scheduler_cores": settings.scheduler_cores, "scheduler_memory": settings.scheduler_memory,
            "idle_timeout": request.idle_timeout,
            "cluster_max_cores": limits.max_cores, "cluster_max_memory": limits.max_memory,
            "cluster_max_workers": limits.max_workers,
            "user_limits": {"max_clusters": limits.max_clusters, "max_cores": limits.max_cores,
                            "max_memory": limits.max_memory, "max_workers": limits.max_workers},
        }

    async def start_cluster(self, user: User, cluster_options: Any) -> str:
        try:
            settings = self.dask_settings()
            request = parse_request(settings, cluster_options, self.max_idle_timeout)
        except OptionsError as error:
            raise PublicException(str(error)) from None
        origin = await self._origin(user.name, request.server)
        try:
            request = self.check_gpus(settings, request, user.name, origin)
        except OptionsError as error:
            raise PublicException(str(error)) from None
        limits = limits_for(settings.limits, settings.group_limits, user.groups)
        try:
            config = self.cluster_config_class(
                parent=self, **self.cluster_overrides(settings, request, limits, origin, request.server))
        except Exception as error:  # a trait refused a value: tell the user which
            raise PublicException(str(error)) from None
        new = Shape(config.scheduler_cores, config.scheduler_memory, config.worker_cores, config.worker_memory)
        # No await from the check to the insert: concurrent requests are checked one after another.
        active = [self._shape(c) for c in self.db.list_clusters(username=user.name)]
        try:
            check_new_cluster(limits, active, new)
        except LimitExceeded as error:
            self.log.info("Refused a cluster for %s: %s", user.name, error.limit)
            raise PublicException(str(error)) from None
        cluster = self.db.create_cluster(user.name, request.as_dict(), config.to_dict())
        self.log.info("Created cluster %s for %s (server %r, image %s)", cluster.name, user.name,
                      request.server, origin.image)
        self.queue.put(cluster)
        return str(cluster.name)

    def check_gpus(self, settings: DaskSettings, request: ClusterRequest, username: str,
                   origin: Origin) -> ClusterRequest:
        """The request with its workers' GPU type filled in; ``OptionsError`` when workers cannot
        have GPUs here, or when one worker would need more than the host has of that type."""
        if not request.worker_gpus:
            return resolve_gpu_type(settings, request, None)
        allocator = self.gpus()
        if allocator is None:
            raise OptionsError("GPUs for Dask workers are not configured on this deployment: "
                               "ask for worker_gpus=0.")
        request = resolve_gpu_type(settings, request, self.server_gpu_type(username, request.server, origin))
        total = allocator.total_count(request.worker_gpu_type)
        if request.worker_gpus > total:
            have = f"only {total}" if total else "no"
            raise OptionsError(f"worker_gpus={request.worker_gpus}: this host has {have} "
                               f"{request.worker_gpu_type} GPU{'' if total == 1 else 's'}.")
        return request

    # ---- scaling within the limits ------------------------------------------------------

    def _workers_held(self, cluster: Cluster) -> int:
        reserved = self._reservations().get(cluster.name, (0, 0.0))[0]
        return max(cluster.count, len(cluster.active_workers()), reserved)

    def _reservations(self) -> dict[str, tuple[int, float]]:
        if not hasattr(self, "_reserved"):
            self._reserved = {}
        horizon = time.monotonic() - 2 * self.cluster_heartbeat_period
        for name in [n for n, (_, at) in self._reserved.items() if at < horizon]:
            del self._reserved[name]
        return self._reserved

    def _shape(self, cluster: Cluster, workers: int | None = None) -> Shape:
        config = cluster.config
        return Shape(float(config.scheduler_cores), int(config.scheduler_memory), float(config.worker_cores),
                     int(config.worker_memory), self._workers_held(cluster) if workers is None else workers)

    def workers_allowed(self, cluster: Cluster) -> tuple[int, str, Limits]:
        """How many workers ``cluster`` may have now, given its owner's other clusters."""
        limits = Limits(**cluster.config.user_limits)
        others = [self._shape(c) for c in self.db.list_clusters(username=cluster.username) if c is not cluster]
        allowed, limit = workers_allowed(limits, others, self._shape(cluster, workers=0))
        return allowed, limit, limits

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict[str, Any]) -> None:
        """Clip ``scale`` and ``adapt`` to what the owner's limits leave, and say so."""
        db_cluster = self.db.get_cluster(cluster.name)
        op = msg.get("op")
        if db_cluster is not None and db_cluster.config.get("user_limits") and op in ("scale", "adapt"):
            allowed, limit, limits = self.workers_allowed(db_cluster)
            requested = routes.requested_count(msg.get("count") if op == "scale" else msg.get("maximum"))
            why = (f"your limits leave room for {allowed} worker(s) in this cluster "
                   f"({describe_limit(limits, limit)}, counting your other clusters)")
            if op == "scale":
                count = min(int(msg["count"]), allowed)
                self._reservations()[db_cluster.name] = (count, time.monotonic())
                if requested is not None and requested > count:
                    routes.note(f"Scale request of {requested} workers exceeds {why}. Scaling to {count} instead.")
                msg = {**msg, "count": count}
                self._note_gpus(db_cluster, count)
            else:
                maximum = msg.get("maximum")
                if maximum is None or maximum > allowed:
                    if requested is not None and requested > allowed:
                        routes.note(f"Adapt maximum of {requested} workers exceeds {why}. Using {allowed} instead.")
                    msg = {**msg, "maximum": allowed, "minimum": min(msg.get("minimum") or 0, allowed)}
        await super().forward_message_to_scheduler(cluster, msg)

    def _note_gpus(self, cluster: Cluster, count: int) -> None:
        """Tell the user when fewer of ``count`` workers can have their GPUs now than asked for."""
        gpus = self.gpu_workers_allowed(cluster)
        if gpus is None or count <= gpus[0]:
            return
        allowed, free, total = gpus
        per_worker, gpu_type = int(cluster.config.worker_gpus), cluster.config.worker_gpu_type
        routes.note(f"Each worker of this cluster needs {per_worker} {gpu_type} GPU(s) and {free} of {total} "
                    f"are free: {allowed} of the {count} workers can start now, the others when GPUs are "
                    "released.")

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> None:
        """Every worker count the scheduler asks for (scale or adaptive) passes the limits here;
        no ``await`` from the check to the update, so a user's clusters cannot overtake each other."""
        cluster = self.db.get_cluster(cluster_name)
        count = msg.get("count")
        if (cluster is not None and cluster.target <= JobStatus.RUNNING and isinstance(count, int)
                and cluster.config.get("user_limits")):
            reserved = self._reservations().get(cluster_name)
            if reserved is not None and reserved[0] == count:
                del self._reserved[cluster_name]
            allowed, limit, _ = self.workers_allowed(cluster)
            if count > allowed:
                self.log.info("Cluster %s asks for %d workers; %s's limits allow %d (%s)", cluster_name, count,
                              cluster.username, allowed, limit)
                msg = {**msg, "count": allowed}
        if cluster is not None and cluster.target <= JobStatus.RUNNING and isinstance(msg.get("count"), int):
            gpus = self.gpu_workers_allowed(cluster)  # workers only start with their GPUs free
            if gpus is not None and msg["count"] > gpus[0]:
                self.log.info("Cluster %s asks for %d workers; GPUs (%s: %d of %d free) allow %d", cluster_name,
                              msg["count"], cluster.config.worker_gpu_type, gpus[1], gpus[2], gpus[0])
                msg = {**msg, "count": gpus[0]}
        await super().on_cluster_heartbeat(cluster_name, msg)

    # ---- lifecycle with the user's servers ----------------------------------------------

    async def stop_server_clusters(self, username: str, server: str, wait: float = 20.0) -> list[str]:
        """Stop the clusters that belong to ``username``'s server ``server``; wait up to ``wait``
        seconds for their containers to go. Returns the names of the clusters stopped."""
        clusters = [c for c in self.db.list_clusters(username=username) if c.config.get("origin_server") == server]
        for cluster in clusters:
            self.log.info("Server %s/%s stopped: stopping its cluster %s", username, server, cluster.name)
            await self.stop_cluster(cluster.name)
        if clusters and wait > 0:
            try:
                await asyncio.wait_for(asyncio.gather(*(_flag(c.shutdown) for c in clusters)), wait)
            except TimeoutError:
                self.log.warning("Clusters of %s/%s still stopping after %.0f s", username, server, wait)
        return [str(c.name) for c in clusters]

    async def stop_cluster_by_name(self, name: str, wait: float = 20.0) -> str | None:
        """Stop one active cluster (an admin's request); its user's name, or None when no such
        cluster is active. Waits up to ``wait`` seconds for its containers to go."""
        cluster = self.db.get_cluster(name)
        if cluster is None or cluster.status >= JobStatus.STOPPED:
            return None
        self.log.info("Stopping cluster %s (%s) on an admin's request", name, cluster.username)
        await self.stop_cluster(name)
        if wait > 0:
            try:
                await asyncio.wait_for(_flag(cluster.shutdown), wait)
            except TimeoutError:
                self.log.warning("Cluster %s still stopping after %.0f s", name, wait)
        return str(cluster.username)

    async def reap(self) -> None:
        """Stop clusters whose server container is gone; remove containers no active cluster or
        worker owns (left by a crash between a create and its checkpoint, or a failed removal)."""
        listing = await self._deployment_containers()
        running = {c["Id"] for c in listing if c["State"] == "running"}
        for cluster in list(self.db.active_clusters()):
            origin = cluster.config.get("origin_container")
            if origin and origin not in running and cluster.target <= JobStatus.RUNNING:
                self.log.info("The server of cluster %s (%s) is gone: stopping the cluster", cluster.name,
                              cluster.username)
                await self.stop_cluster(cluster.name)
        orphans = [c["Id"] for c in listing if self._is_orphan(c["Labels"])]
        for container_id in orphans:
            self.log.info("Removing orphan container %s", container_id[:12])
        await asyncio.gather(*(self._remove(i) for i in orphans))
        self.reap_tls()
        await self.reap_gpus()

    async def reap_gpus(self) -> None:
        """Free GPU rows of Dask workers that no active worker of an active cluster owns (a gateway
        crash between a claim and its release). Only workers' rows: servers' rows are the hub's."""
        allocator = self.gpus()
        if allocator is None:
            return
        held = await self._in_thread(allocator.allocations)
        stale = []
        for owner in sorted(set(held.values())):
            parsed = parse_worker_gpu_owner(owner)
            if parsed is None:
                continue
            username, cluster_name, worker_name = parsed
            cluster = self.db.get_cluster(cluster_name)
            worker = cluster.workers.get(worker_name) if cluster is not None and cluster.username == username \
                else None
            if cluster is None or cluster.status >= JobStatus.STOPPED or worker is None \
                    or worker.status >= JobStatus.STOPPED:
                stale.append(owner)
        if stale:
            self.log.info("Freeing the GPUs of Dask workers that are gone: %s", ", ".join(stale))
            await self._release_gpus(stale)

    def _is_orphan(self, labels: Mapping[str, str]) -> bool:
        name = labels.get(LABEL_CLUSTER)
        if not name:
            return False
        cluster = self.db.get_cluster(name)
        if cluster is None or cluster.status >= JobStatus.STOPPED:
            return True
        if labels.get(LABEL_ROLE) == WORKER:
            worker = cluster.workers.get(labels.get(LABEL_WORKER, ""))
            return worker is None or worker.status >= JobStatus.STOPPED
        return False

    async def _reap_loop(self) -> None:
        while True:
            try:
                await self.reap()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.warning("Checking cluster containers failed", exc_info=True)
            await asyncio.sleep(self.server_check_period)

    # ---- set-up and clean-up ------------------------------------------------------------

    async def setup(self, app: web.Application) -> None:
        self.dask_settings()  # bad profile data fails the start, with the file and key
        self.gpus()  # the inventory, read once and logged
        routes.install(app, self)
        self._gate = dashboards.install(app, self, dashboards.HubLink.from_environment(os.environ, SERVICE_NAME))
        await super().setup(app)

    _gate: dashboards.DashboardGate | None = None

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
        self.tls_root()
        await self._client()  # the first cluster does not wait for it
        self.task_pool.spawn(self._reap_loop())
        self.task_pool.spawn(self._closed_workers_loop())

    async def do_cleanup(self) -> None:
        if self._gate is not None:
            await self._gate.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        if self._api is not None:
            self._api.close()
        if self._tls_root is not None and self._tls_root_temporary:
            shutil.rmtree(self._tls_root, ignore_errors=True)


async def _flag(flag: Any) -> None:
    await flag
