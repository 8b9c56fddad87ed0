"""``SwarmEngine``: the :class:`~core.engine.base.ContainerEngine` of a Docker Swarm, one service per
container, so that the spawner and the gateway run on several hosts unchanged.

A :class:`~core.engine.spec.ContainerSpec` becomes a one-replica service (:mod:`core.engine.swarm_spec`
says what of it Swarm can carry); the "container id" the interface speaks of is the **service id**.
``create`` makes the service with no replica (created, not started), ``start`` scales it to one,
``stop`` back to none, ``remove`` removes the service (Swarm then removes its container on its node).

What Swarm adds, for the callers that know they are on Swarm:

- :meth:`SwarmEngine.task`: the service's task as Swarm tells it (:class:`TaskStatus`: state, pending
  reason, node, container, assigned generic resources);
- :meth:`SwarmEngine.wait_running`: waits for the task to run, reporting each new state to a callback
  (progress for the user), and fails fast: :class:`~core.engine.base.Unplaceable` with Swarm's reason
  when no node can take it, ``ImageMissing`` when its node lacks the image, ``MountMissing`` when a
  directory it binds (a home on the shared storage, docs/swarm-homes.md) is missing on its node,
  ``EngineError`` otherwise;
- :meth:`SwarmEngine.rooms`: what each node has free (for a profile offered only when it fits);
- :meth:`SwarmEngine.node_of`: on which node (name, address) the task runs; :meth:`SwarmEngine.address_of`:
  where the hub reaches a port the container publishes on its node.

Networks are overlay networks (attachable: a standalone container, a probe, can join them too) on the
subnet Titan chose; docs/swarm-network.md says how they keep users apart across nodes. Images are
looked up on the manager's engine only: that each node has an image is the registry's job
(docs/swarm-registry.md); a node that cannot get one makes the task fail at once with ``ImageMissing``
naming the node, the image and what its registry says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
from docker.types import ServiceMode

from core.engine.base import (
    ContainerGone,
    ContainerInfo,
    EngineError,
    EngineInfo,
    LabelFilter,
    NetworkExists,
    NetworkGone,
    SubnetTaken,
    Unplaceable,
)
from core.engine.docker import DockerEngine, label_filters
from core.engine.spec import ContainerSpec
from core.engine.swarm_gpus import NodeGpus, gpus_in_use, node_gpus
from core.engine.swarm_nodes import NodeRoom, node_rooms, published_ports
from core.engine.swarm_records import NodeAddress, SecretInfo, failure, missing_image, passing_rejection, swarm_error
from core.engine.swarm_spec import (
    ENDED,
    TaskStatus,
    container_state,
    latest_task,
    secret_labels,
    secret_name,
    service_arguments,
    task_status,
)
from core.labels import LABEL_GPUS
from core.registry import pull_diagnosis

__all__ = ["NodeAddress", "NodeRoom", "SecretInfo", "SwarmEngine", "TaskStatus", "swarm_error"]


def _client_of(url: str, threads: int) -> Callable[[], docker.APIClient]:
    return lambda: docker.DockerClient(base_url=url, max_pool_size=threads).api


class SwarmEngine(DockerEngine):
    """A Swarm through one of its managers (``manager``: a DOCKER_HOST URL; "": the environment's)."""

    def __init__(self, manager: str = "", threads: int = 8, poll: float = 0.1,
                 client_factory: Callable[[], docker.APIClient] | None = None) -> None:
        if client_factory is None and manager:
            client_factory = _client_of(manager, threads)
        super().__init__(threads=threads, client_factory=client_factory)
        self.poll = poll  # seconds between two looks at a task that is not there yet
        # A task a node rejects while it still frees a removed overlay's subnet is asked for again
        # this often, this many seconds apart (swarm_records.passing_rejection).
        self.network_retries, self.network_settle = 10, 1.0
        # Swarm makes an overlay whose subnet overlaps another's: check-then-create, one at a time.
        self._network_lock = asyncio.Lock()

    async def _swarm(self, what: str, work: Callable[[docker.APIClient], Any]) -> Any:
        try:
            return await self._call(work)
        except docker.errors.DockerException as error:
            raise swarm_error(error, what) from None

    # ---- services as containers ------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """The service of ``spec``, with no replica; its secrets (``spec.secrets``) first, removed
        again when the service cannot be made."""
        secret_ids: dict[str, str] = {}
        try:
            for file, data in sorted(spec.secrets.items()):
                secret_ids[file] = await self._create_secret(secret_name(spec.name, file), data, secret_labels(spec))
            arguments = service_arguments(spec, secret_ids=secret_ids)
            created = await self._swarm(f"creating service {spec.name}",
                                        lambda api: api.create_service(**arguments))
        except BaseException:
            await asyncio.shield(asyncio.gather(*(self.remove_secret(i) for i in secret_ids.values()),
                                                return_exceptions=True))
            raise
        return str(created["ID"])

    async def _create_secret(self, name: str, data: bytes, labels: Mapping[str, str]) -> str:
        created = await self._swarm(f"creating secret {name}",
                                    lambda api: api.create_secret(name, data, labels=dict(labels)))
        return str(created["ID"])

    async def list_secrets(self, labels: LabelFilter) -> list[SecretInfo]:
        """Every Swarm secret matching all of ``labels`` (its id, name and labels; never its data)."""
        filters = {"label": label_filters(labels)}
        found = await self._swarm("listing secrets", lambda api: api.secrets(filters=filters))
        return [SecretInfo(id=str(s["ID"]), name=str((s.get("Spec") or {}).get("Name", "")),
                           labels=dict((s.get("Spec") or {}).get("Labels") or {})) for s in found]

    async def remove_secret(self, secret_id: str) -> bool:
        """Remove a secret; False when it was gone. ``EngineError`` while a service still uses it."""
        try:
            await self._call(lambda api: api.remove_secret(secret_id))
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as error:
            raise swarm_error(error, f"removing secret {secret_id[:12]}") from None
        return True

    async def _scale(self, service_id: str, replicas: int, grace: float | None = None, anew: bool = False) -> None:
        """Set the replicas (and the stop grace period); ``anew``: a new task even if one is there (a
        forced update: scaling to 0 and back at once may leave no task at all, measured)."""
        def work(api: docker.APIClient) -> None:
            current = api.inspect_service(service_id)
            template = dict(current["Spec"]["TaskTemplate"])
            if anew:
                template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
            if grace is not None:
                template["ContainerSpec"] = {**template["ContainerSpec"], "StopGracePeriod": int(grace * 1e9)}
            api.update_service(current["ID"], current["Version"]["Index"], task_template=template,
                               mode=ServiceMode("replicated", replicas=replicas), fetch_current_spec=True)

        for attempt in range(5):
            try:
                await self._call(work)
                return
            except docker.errors.APIError as error:
                # Swarm itself updates a new service (e.g. allocating its published ports): our version
                # of it is then stale. Read it again and retry.
                if "update out of sequence" not in str(error.explanation or error) or attempt == 4:
                    raise swarm_error(error, f"scaling service {service_id[:12]} to {replicas}") from None
                await asyncio.sleep(0.1 * (attempt + 1))
            except docker.errors.DockerException as error:
                raise swarm_error(error, f"scaling service {service_id[:12]} to {replicas}") from None

    async def start(self, container_id: str) -> None:
        await self._scale(container_id, 1)

    async def stop(self, container_id: str, grace: float = 10) -> None:
        """Scale to no replica and wait (at most ``grace`` + 15 s) until the task has ended."""
        await self._scale(container_id, 0, grace)
        deadline = time.monotonic() + grace + 15
        while time.monotonic() < deadline:
            task = await self.task(container_id)
            if task is None or task.state in ENDED:
                return
            await asyncio.sleep(self.poll)
        raise EngineError(f"service {container_id[:12]}: its task did not stop within {grace + 15:.0f} s")

    async def remove(self, container_id: str) -> bool:
        """Remove the service, then its secrets; False when it was gone. Swarm then stops and removes
        its container on its node (within a few seconds; the task's stop grace period first)."""
        try:
            service = await self._call(lambda api: api.inspect_service(container_id))
            await self._call(lambda api: api.remove_service(container_id))
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as error:
            raise swarm_error(error, f"removing service {container_id[:12]}") from None
        container = ((service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
        await asyncio.gather(*(self.remove_secret(str(s["SecretID"])) for s in container.get("Secrets") or []))
        return True

    async def inspect(self, container_id: str) -> ContainerInfo:
        service = await self._swarm(f"service {container_id[:12]}", lambda api: api.inspect_service(container_id))
        return self._info(service, await self.task(str(service["ID"])))

    async def list_containers(self, labels: LabelFilter) -> list[ContainerInfo]:
        filters = {"label": label_filters(labels)}
        for attempt in range(3):
            services = await self._swarm("listing services", lambda api: api.services(filters=filters))
            if not services:
                return []
            try:
                tasks = await self._tasks_of([str(s["ID"]) for s in services])
                break
            except ContainerGone:  # a service went between the two listings: list again
                if attempt == 2:
                    raise
        by_service: dict[str, list[Mapping[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(str(task.get("ServiceID", "")), []).append(task)
        result = []
        for service in services:
            latest = latest_task(by_service.get(str(service["ID"]), []))
            result.append(self._info(service, task_status(latest) if latest else None))
        return result

    async def _tasks_of(self, ids: list[str]) -> list[Mapping[str, Any]]:
        tasks: list[Mapping[str, Any]] = await self._swarm(
            "listing tasks", lambda api: api.tasks(filters={"service": ids}))
        return tasks

    @staticmethod
    def _info(service: Mapping[str, Any], task: TaskStatus | None) -> ContainerInfo:
        spec = service.get("Spec") or {}
        container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        networks = (spec.get("TaskTemplate") or {}).get("Networks") or spec.get("Networks") or []
        return ContainerInfo(id=str(service["ID"]), name=str(spec.get("Name", "")),
                             image=str(container.get("Image", "")), state=container_state(task),
                             labels=dict(spec.get("Labels") or {}),
                             network_mode=str(networks[0].get("Target", "")) if networks else "")

    # ---- what only Swarm tells -----------------------------------------------------------------

    async def task(self, service_id: str) -> TaskStatus | None:
        """The service's newest task (None: it has none, e.g. created and not started)."""
        tasks = await self._swarm(f"tasks of service {service_id[:12]}",
                                  lambda api: api.tasks(filters={"service": service_id}))
        latest = latest_task(tasks)
        return task_status(latest) if latest else None

    async def wait_running(self, service_id: str, within: float = 120, patience: float = 3.0,
                           progress: Callable[[TaskStatus], None] | None = None) -> TaskStatus:
        """Wait until the service's task runs; each new (state, reason) goes to ``progress``.

        Raises :class:`Unplaceable` once Swarm has found no node for ``patience`` seconds (with its
        reason: "no suitable node (insufficient resources on 2 nodes)"), ``ImageMissing``,
        ``MountMissing`` (a bind's source is missing on its node: the shared homes are not mounted
        there; the message names the node) or ``EngineError`` when the task ends without running,
        ``EngineError`` after ``within`` seconds."""
        name = service_id[:12]
        deadline = time.monotonic() + within
        unplaced_since: float | None = None
        retries, network_retries = 2, self.network_retries
        seen: tuple[str, str] | None = None
        task: TaskStatus | None = None
        while time.monotonic() < deadline:
            task = await self.task(service_id)
            if task is not None and task.desired == "remove":
                task = None  # the task of an earlier start, scaled away: the new one is not there yet
            if task is not None:
                if progress is not None and (task.state, task.error) != seen:
                    progress(task)
                seen = (task.state, task.error)
                if task.state == "running":
                    return task
                passing = passing_rejection(task) if task.state in ENDED else ""
                if (passing == "constraints" and retries > 0) or (passing == "network" and network_retries > 0):
                    # Swarm's constraint enforcer took the node back between placement and start (it
                    # counts reservations while tasks change; seen with generic resources), or the node
                    # still frees the subnet of a just-removed overlay: ask again.
                    if passing == "constraints":
                        retries -= 1
                    else:
                        network_retries -= 1
                        await asyncio.sleep(self.network_settle)
                    await self._scale(service_id, 1, anew=True)
                    seen = None
                    await asyncio.sleep(self.poll)
                    continue
                if task.state in ENDED:
                    raise await self._ended(name, task)
                if task.unplaceable:
                    unplaced_since = unplaced_since or time.monotonic()
                    if time.monotonic() - unplaced_since >= patience:
                        raise Unplaceable(f"No node can run {name} now: Swarm says {task.error}")
                else:
                    unplaced_since = None
            await asyncio.sleep(self.poll)
        where = task.progress if task else "no task was made"
        raise EngineError(f"{name}: not running after {within:.0f} s ({where})")

    async def _ended(self, name: str, task: TaskStatus) -> EngineError:
        """:func:`_failure` with the node's name and, for a missing image, what its registry says."""
        node = await self._hostname(task.node_id) or task.node_id[:12]  # the node's id is name enough
        image = missing_image(task)
        why = await asyncio.to_thread(pull_diagnosis, image) if image else ""
        return failure(name, task, node, why)

    async def node_of(self, service_id: str) -> NodeAddress:
        """The node the service's task is on; ``EngineError`` while it has none."""
        task = await self.task(service_id)
        if task is None or not task.node_id:
            raise EngineError(f"service {service_id[:12]} has no task on a node yet")
        return await self.node(task.node_id)

    async def node(self, node_id: str) -> NodeAddress:
        """One node: its name, address and whether it answers; ``ContainerGone`` when it was removed."""
        node = await self._swarm(f"node {node_id[:12]}", lambda api: api.inspect_node(node_id))
        status = node.get("Status") or {}
        return NodeAddress(node_id=node_id, hostname=str((node.get("Description") or {}).get("Hostname", "")),
                           address=str(status.get("Addr", "")), state=str(status.get("State", "unknown")),
                           since=str(node.get("UpdatedAt", "")))

    async def _hostname(self, node_id: str) -> str:
        """The hostname of a node ("" when it is unknown or cannot be read)."""
        if not node_id:
            return ""
        try:
            node = await self._call(lambda api: api.inspect_node(node_id))
        except docker.errors.DockerException:
            return ""
        return str((node.get("Description") or {}).get("Hostname", ""))

    async def address_of(self, service_id: str, port: int) -> tuple[str, int]:
        """Where the hub reaches the service's container port ``port``, published on its node:
        (the node's address, the port there). ``EngineError`` while it is not running or not published."""
        task = await self.task(service_id)
        if task is None or task.state != "running" or port not in task.ports:
            raise EngineError(f"service {service_id[:12]} has no running task with port {port} published")
        return (await self.node_of(service_id)).address, task.ports[port]

    async def rooms(self, empty: bool = False) -> list[NodeRoom]:
        """What each node has free now, or (``empty``) would have with nothing running, and whether it
        is ready and active (core.engine.swarm_nodes: ``no_room_reason`` decides from it whether a
        profile can start anywhere)."""
        nodes = await self._swarm("listing nodes", lambda api: api.nodes())
        if empty:
            return node_rooms(nodes, [])
        tasks = await self._swarm("listing tasks", lambda api: api.tasks())  # stopping ones hold room too
        return node_rooms(nodes, tasks)

    async def gpu_inventory(self) -> tuple[list[NodeGpus], set[str]]:
        """Each ready node's GPUs (its advertised generic resources) and the units Titan's containers
        hold now (their ``titan.gpus`` labels), for core.engine.swarm_gpus to pick from."""
        nodes = await self._swarm("listing nodes", lambda api: api.nodes())
        holders = await self.list_containers({LABEL_GPUS: None})
        return node_gpus(nodes), gpus_in_use(c.labels for c in holders)

    async def published_ports(self) -> set[int]:
        """Every port a service of the swarm publishes now, on any node."""
        return published_ports(await self._swarm("listing services", lambda api: api.services()))

    async def info(self) -> EngineInfo:
        """CPUs and memory of every node that is ready and active."""
        nodes = await self._swarm("listing nodes", lambda api: api.nodes())
        cpus = memory = 0
        for node in nodes:
            if (node.get("Status") or {}).get("State") != "ready" or \
                    (node.get("Spec") or {}).get("Availability") != "active":
                continue
            resources = (node.get("Description") or {}).get("Resources") or {}
            cpus += int(resources.get("NanoCPUs", 0))
            memory += int(resources.get("MemoryBytes", 0))
        return EngineInfo(cpus=cpus / 1e9, memory=memory)

    # ---- networks: overlay, attachable -----------------------------------------------------------

    async def create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> None:
        """An attachable overlay network. Swarm accepts an overlay whose subnet overlaps another
        network's (measured on 20.10), so the overlap is checked here first: ``SubnetTaken``. Creates
        through one engine object (the hub's) run one at a time, so two starts at once never both pass
        the check (two processes creating at the same moment still could)."""
        async with self._network_lock:
            await self._create_overlay(name, subnet, gateway, labels)

    async def _create_overlay(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> None:
        wanted = ipaddress.ip_network(subnet, strict=False)
        for network in await self.list_networks():
            if network.name == name:
                raise NetworkExists(f"network {name} exists")
            subnets = network.subnets
            if not subnets and network.name not in ("host", "none"):
                # A listing shows a just-made overlay without its subnet for a while (measured); its
                # inspection has it.
                try:
                    subnets = (await self.inspect_network(network.id)).subnets
                except NetworkGone:
                    continue
            for other in subnets:
                taken = ipaddress.ip_network(other, strict=False)
                if taken.version == wanted.version and taken.overlaps(wanted):
                    raise SubnetTaken(f"subnet {subnet} of network {name} overlaps network {network.name} ({other})")
        await self._create_network(name, subnet, gateway, labels, driver="overlay", attachable=True)
        # Swarm shows the new network's subnet only once its allocator has run (measured: often at
        # once, sometimes not): wait for it (at most 5 s), so that the next create sees the overlap.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if (await self.inspect_network(name)).subnets:
                return
            await asyncio.sleep(self.poll / 4)
