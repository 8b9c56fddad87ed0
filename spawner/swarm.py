"""``TitanSwarmSpawner``: each server a one-replica service of a Docker Swarm (titan.yaml ``engine: swarm``).

Everything a user sees is :class:`spawner.docker.TitanDockerSpawner`'s: the profiles, the options
form and their validation, the progress, the container settings (one pure builder), the Dask and
idle wiring. Only where the server runs differs, through the engine (core.engine.swarm):

- the container settings become a :class:`~core.engine.spec.ContainerSpec` (:mod:`spawner.service_spec`),
  with its reservations equal to its limits and its profile's node pool, on its user's own overlay
  network; a server with GPUs gets free units of one node (the nodes advertise them as generic
  resources; core.engine.swarm_gpus says why Titan, not Swarm, picks them) and is pinned there;
- the server publishes its port in host mode on its node, on a port of ``published_ports``; the hub
  reaches it at that node's address (docs/swarm-network.md);
- while the task waits, Swarm's own word on it is the progress the user sees; a task no node can
  take fails the start within ``unplaceable_patience`` with the reason, never a silent timeout;
- the options form offers a profile only when one node in its pool could hold it
  (core.capacity.SwarmCapacity), disabled with the reason otherwise.

DockerSpawner's ``start`` and ``stop`` still drive the lifecycle; the object hooks they call
(``get_object``, ``create_object``, ``start_object``, ``stop_object``, ``remove_object``,
``get_ip_and_port``) are the Swarm ones here.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from typing import Any, ClassVar

from tornado import web
from traitlets import Float, Unicode, default

from core import network as networks
from core.capacity import HostCapacity, swarm_capacity
from core.engine.base import (
    ContainerEngine,
    ContainerGone,
    EngineError,
    ImageMissing,
    MountMissing,
    NetworkGone,
    Unplaceable,
)
from core.engine.swarm import NodeAddress, SwarmEngine, TaskStatus
from core.engine.swarm_gpus import gpu_counts, pick_gpus
from core.engine.swarm_nodes import free_port, no_room_reason
from core.engine.swarm_spec import epoch_seconds
from core.gpu.inventory import GpuUnit
from core.gpu.swarm_resources import swarm_kind
from core.homes import HomesRootMissing, ensure_home
from core.profiles import Resources
from core.registry import pull_diagnosis, registry_digest, registry_image, split_registry
from core.settings import port_range
from spawner.container import SERVER_PORT, ContainerSettings
from spawner.docker import TitanDockerSpawner
from spawner.options import Selection
from spawner.service_spec import service_spec


class TitanSwarmSpawner(TitanDockerSpawner):
    """Spawns each server as a Swarm service sized by the profile the user picked."""

    _shared_swarm: ClassVar[dict[str, SwarmEngine]] = {}
    _gpu_lock: ClassVar[asyncio.Lock] = asyncio.Lock()

    object_type = "service"

    manager = Unicode(
        "",
        config=True,
        help="""The Docker API of a Swarm manager, as a DOCKER_HOST URL (titan.yaml swarm.manager).
        "": DOCKER_HOST, else the local socket (the hub host is the manager).""",
    )

    published_ports = Unicode(
        "30000-30999",
        config=True,
        help="""Ports (low-high) a server may publish on its node for the hub host (titan.yaml
        swarm.published_ports). The nodes' firewalls admit only the hub host to them.""",
    )

    registry = Unicode(
        "",
        config=True,
        help="""The registry every node pulls Titan's images from, host:port (titan.yaml swarm.registry,
        docs/swarm-registry.md); "": each node has the images already.""",
    )

    unplaceable_patience = Float(
        10.0,
        config=True,
        help="""Seconds a start waits while Swarm finds no node with room for the server before it
        fails with Swarm's reason. Default 10.""",
    )

    node_lost_timeout = Float(
        600.0,
        config=True,
        help="""Seconds after a node stopped answering when Titan gives up on the servers' containers
        there: until then a server whose container may still run on it is not started elsewhere (two
        copies would write to one home). Default 600.""",
    )

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return ["jupyterhub-singleuser"]  # the images' CMD: a service is given its command whole

    # ---- the engine -----------------------------------------------------------------------

    @property
    def engine(self) -> ContainerEngine:
        if self._engine is not None:
            return self._engine
        shared = TitanSwarmSpawner._shared_swarm
        if self.manager not in shared:
            shared[self.manager] = SwarmEngine(manager=self.manager)
        return shared[self.manager]

    @engine.setter
    def engine(self, engine: ContainerEngine) -> None:
        self._engine = engine

    @property
    def swarm(self) -> SwarmEngine:
        engine = self.engine
        assert isinstance(engine, SwarmEngine), "TitanSwarmSpawner needs a SwarmEngine"
        return engine

    async def host_capacity(self) -> HostCapacity:
        total, free = gpu_counts(*await self.swarm.gpu_inventory())
        return swarm_capacity(await self.swarm.rooms(empty=True), self.profile_set.gpu_types, total, free)

    async def _allocate_gpus(self, selection: Selection) -> list[GpuUnit]:
        """GPUs are picked on the swarm's nodes when the service is made (``create_object``)."""
        return []

    async def _pick_gpus(self, resources: Resources) -> tuple[str, tuple[str, ...]]:
        """(node id, GPU units) for a server that needs GPUs; ("", ()) for one that does not. Called
        under ``_gpu_lock`` until its service (labelled with the units) exists."""
        if not resources.gpu_type or not resources.gpu_count:
            return "", ()
        nodes, used = await self.swarm.gpu_inventory()
        kind = swarm_kind(resources.gpu_type)
        picked = pick_gpus(nodes, used, kind, resources.gpu_count, resources.pool)
        if picked is None:
            total, free = gpu_counts(nodes, used)
            where = f" in the pool {resources.pool!r}" if resources.pool else ""
            raise web.HTTPError(503, f"No node{where} has {resources.gpu_count} {resources.gpu_type} GPU(s) free "
                                     f"now ({free.get(kind, 0)} of {total.get(kind, 0)} in the swarm are free, "
                                     f"and a server's GPUs are on one node). Try again later, or ask for fewer.")
        node, units = picked
        self._progress(38, f"GPUs {', '.join(units)} on node {node.hostname}")
        return node.node_id, units

    # ---- images and homes on the nodes --------------------------------------------------------

    def container_settings(self, selection: Selection, tag: str, gpus: list[GpuUnit]) -> ContainerSettings:
        """The single-host settings, the image named in the swarm's registry."""
        settings = super().container_settings(selection, tag, gpus)
        return replace(settings, image=registry_image(settings.image, self.registry))

    async def pull_image(self, image: str) -> None:
        """Each node pulls from the registry: check it holds the image (without one, the manager's
        engine), and pin the service to the digest the tag names now. Every node then runs the same
        bytes, and a node that has them starts without asking the registry again (Docker pulls a
        tag at each start of a task, not a digest it holds)."""
        if not self.registry:
            await super().pull_image(image)
            return
        self._progress(10, f"Checking image {image}")
        _, tag = split_registry(image)
        digest = await asyncio.to_thread(registry_digest, self.registry, tag)
        if not digest:
            why = await asyncio.to_thread(pull_diagnosis, image)
            raise web.HTTPError(500, f"The image {image} cannot reach the nodes: {why}")
        self._settings_applied = replace(self._settings_applied, image=f"{image}@{digest}")
        self._progress(25, f"Image {image} is in the registry ({digest[:19]})")

    async def _ensure_home(self) -> None:
        """The user's home on the shared storage (swarm.homes_root), made on first use."""
        if not self.homes_root:
            return
        try:
            await asyncio.to_thread(ensure_home, self.homes_root, self.home_volume_template, self.user.name)
        except (HomesRootMissing, OSError) as error:
            self.log.error("No home for %s: %s", self._log_name, error)
            raise web.HTTPError(500, f"Your home cannot be prepared: {error}. An admin checks the shared homes "
                                     f"storage on the hub host.") from None

    # ---- DockerSpawner's object hooks, on a service ----------------------------------------

    async def get_object(self) -> dict[str, Any] | None:
        try:
            info = await self.swarm.inspect(self.object_name)
        except ContainerGone:
            self.object_id = ""
            return None
        self.object_id = info.id
        task = await self.swarm.task(info.id)
        running = task is not None and task.state == "running"
        error = (task.error or task.message) if task and not running else ""
        if running:
            lost = await self._lost_node(task)
            if lost is not None:  # its container may still run there: stopped for the hub, kept for the fence
                running = False
                error = f"node {lost.hostname} stopped answering (Swarm: {lost.state} since {lost.since})"
                self.log.warning("Server %s: %s; shown stopped, its service kept until the node returns "
                                 "or node_lost_timeout passes", self._log_name, error)
        return {"Id": info.id, "State": {
            "Running": running, "ExitCode": task.exit_code if task else None,
            "Error": error, "FinishedAt": task.state if task else "no task",
        }}

    async def _lost_node(self, task: TaskStatus | None) -> NodeAddress | None:
        """The node of this server's ``task`` when that node does not answer (None: it answers, or no
        task on a node)."""
        if task is None or not task.node_id:
            return None
        try:
            node = await self.swarm.node(task.node_id)
        except EngineError:
            return None
        return None if node.answering else node

    async def create_object(self) -> dict[str, Any]:
        self._progress(35, f"Preparing your network {self.network_name}")
        await self._ensure_network()
        await self._ensure_home()
        self._progress(40, "Creating the service")
        low, high = port_range(self.published_ports)
        port = free_port(await self.swarm.published_ports(), low, high, first=random.randint(low, high))
        assert self._selection is not None
        async with TitanSwarmSpawner._gpu_lock:  # two starts never pick the same GPUs
            node, gpus = await self._pick_gpus(self._selection.resources)
            spec = service_spec(self.object_name, self._settings_applied, self.get_env(), self._command(),
                                self.network_name, self._selection.resources, port, node=node, gpus=gpus)
            try:
                service_id = await self.swarm.create(spec)
            except NetworkGone:  # the user's last other server went at this moment and took the network
                await self._ensure_network()
                service_id = await self.swarm.create(spec)
        return {"Id": service_id}

    def _command(self) -> list[str]:
        settings = self._settings_applied
        if settings.command:  # a dashboard server: titan-dashboard, as on one host
            return list(settings.command)
        return [*self.cmd, *self.get_args()]

    async def start_object(self) -> None:
        self._progress(50, f"Asking the swarm to run {self.object_name}")
        await self.swarm.start(self.object_id)
        try:
            task = await self.swarm.wait_running(self.object_id, within=float(self.start_timeout),
                                                 patience=self.unplaceable_patience, progress=self._task_progress)
        except Unplaceable as error:
            await self._give_up()
            why = await self._why_unplaceable()
            raise web.HTTPError(503, f"No node of the swarm can run your server now: {why}. "
                                     f"(Swarm: {error})") from None
        except MountMissing as error:
            await self._give_up()
            raise web.HTTPError(500, str(error)) from None
        except ImageMissing as error:
            await self._give_up()
            raise web.HTTPError(500, f"The node chosen for your server lacks its image: {error}. An admin "
                                     f"pushes the images to the registry (`make images`).") from None
        except EngineError as error:
            await self._give_up()
            raise web.HTTPError(500, f"The swarm could not start your server: {error}") from None
        node = await self.swarm.node_of(self.object_id)
        assigned = "; ".join(f"{kind}: {', '.join(units)}" for kind, units in task.assigned.items())
        self._progress(70, f"Running on node {node.hostname}" + (f" with {assigned}" if assigned else ""))
        self.log.info("Server %s runs on node %s (%s)%s", self._log_name, node.hostname, node.address,
                      f", generic resources {assigned}" if assigned else "")

    def _task_progress(self, task: TaskStatus) -> None:
        self._progress(55, f"Swarm: {task.progress}")

    async def _why_unplaceable(self) -> str:
        assert self._selection is not None
        resources = self._selection.resources
        wanted = {resources.gpu_type: resources.gpu_count} if resources.gpu_type and resources.gpu_count else {}
        return no_room_reason(await self.swarm.rooms(), resources.cpu, resources.memory, resources.pool, wanted) \
            or "the nodes with room were taken meanwhile"

    async def _give_up(self) -> None:
        """A start that failed leaves no service behind."""
        if self.object_id:
            await self.swarm.remove(self.object_id)
            self.object_id = ""

    async def get_ip_and_port(self) -> tuple[str, int]:
        return await self.swarm.address_of(self.object_id, SERVER_PORT)

    async def stop_object(self) -> None:
        """Nothing on its own: ``remove_object`` stops the container (and waits for it) first."""

    async def remove_object(self) -> None:
        """Remove the service once its container has ended: never two copies of a server (two writers on
        one home). A container on a node that stopped answering may still run: the service stays
        (the start is refused, with the reason) until the node returns, and is then stopped there
        first; or until ``node_lost_timeout`` has passed, or an admin removed the node
        (``docker node rm --force``): Swarm removes the stale container when the node comes back."""
        lost = await self._lost_node(await self.swarm.task(self.object_id)) if self.object_id else None
        if lost is not None:
            down_for = time.time() - epoch_seconds(lost.since)
            if down_for < self.node_lost_timeout:
                wait = self.node_lost_timeout - down_for
                raise web.HTTPError(409, f"Your server's last container may still be running on node "
                                         f"{lost.hostname}, which stopped answering (Swarm marked it {lost.state} "
                                         f"{down_for:.0f} s ago). Titan starts your server again once that node is "
                                         f"back, or in {wait:.0f} s, or when an admin removes the node.")
            self.log.warning("Server %s: node %s lost for %.0f s (more than node_lost_timeout): removing its "
                             "service without waiting for its container", self._log_name, lost.hostname, down_for)
        else:
            try:
                await self.swarm.stop(self.object_id or self.object_name)
            except ContainerGone:
                pass
        self.log.info("Removing service %s (%s)", self.object_name, self.object_id[:12])
        await self.swarm.remove(self.object_id or self.object_name)

    async def _ensure_network(self) -> None:
        await networks.ensure_user_network(self.engine, self.network_plan, self.user.name)
