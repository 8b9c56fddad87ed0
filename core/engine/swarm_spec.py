"""The pure half of :mod:`core.engine.swarm`: a :class:`~core.engine.spec.ContainerSpec` to the
arguments of docker-py's ``create_service``, and Swarm's task records to Titan's :class:`TaskStatus`.

What of a ContainerSpec a Swarm service can carry (engine API 1.41, Docker 20.10, docker-py 7.2):

- limits: CPU (NanoCPUs) and memory, with **reservations equal to the limits**, so that Swarm only
  places a task where that much is free and packs nodes honestly; the process limit as
  ``Resources.Limits.Pids`` (API 1.41; docker-py has no argument for it, so it is set in the dict).
  A service cannot set memory+swap: the engine gives it twice the limit (swap of the same size).
- hardening: ``cap_drop`` (API 1.41) and ``init``; **no-new-privileges cannot be asked per service**
  before API 1.44, so every node's engine turns it on for all its containers
  (``"no-new-privileges": true`` in its daemon.json: the test bed and the Ansible role do so).
- named volumes stay volume mounts (on the node the task lands on); host directories stay binds.
- placement: the node pool as the constraint ``node.labels.titan.pool==<pool>``; generic resources
  (``{"gpu": 1}``) as the task's resource reservations: Swarm picks the unit and tells the
  container in ``DOCKER_RESOURCE_GPU`` (but see core.engine.swarm_gpus: Swarm's constraint enforcer
  rejects such tasks when their node is updated, so Titan's servers do not use them). Exact GPUs
  (``spec.gpus``) with the node they are on (``spec.node``): a ``node.id`` constraint and
  ``NVIDIA_VISIBLE_DEVICES``.
- published ports: host mode on the task's node (``TaskStatus.ports`` says which port it got).
- networks: a named (overlay) network with endpoint mode ``dnsrr`` (VIP needs IPVS, absent from
  some kernels); another container's namespace (``container:<id>``) is impossible on Swarm.
- secrets (``spec.secrets``): each file a Swarm secret of the service's own (named after it, with its
  labels and ``titan.for-service``), referenced at ``/run/secrets/<name>``, owned by the spec's user,
  mode 0400; :class:`~core.engine.swarm.SwarmEngine` makes them before the service and removes them
  with it.
- one replica, restart condition ``none``: a server that ended is not started again behind the
  hub's back. The image is never resolved against a registry (docker-py sends no digest lookup, as
  the CLI's ``--no-resolve-image``): it must be on the node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from docker.types import ContainerSpec as SwarmContainerSpec
from docker.types import (
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)

from core.engine.base import EngineError
from core.engine.spec import ContainerSpec
from core.labels import LABEL_FOR_SERVICE, NODE_POOL

#: Swarm task states, in their order; from "running" on nothing more happens to the task but its end.
BEFORE_RUNNING = ("new", "pending", "assigned", "accepted", "ready", "preparing", "starting")
ENDED = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})


#: The longest name Swarm takes for a secret.
SECRET_NAME_MAX = 64


def secret_name(service: str, file: str) -> str:
    """The Swarm secret holding ``file`` of service ``service`` (a name of its own: one per service)."""
    if not file or "/" in file or file.startswith("."):
        raise EngineError(f"{service}: unexpected secret file name {file!r} (a name under /run/secrets)")
    name = f"{service}-{file}"
    if len(name) <= SECRET_NAME_MAX:
        return name
    # Swarm refuses longer names: the service's name cut, and a digest of it so that names stay apart.
    digest = hashlib.sha256(service.encode()).hexdigest()[:10]
    return f"{service[:SECRET_NAME_MAX - len(file) - len(digest) - 2].rstrip('-_.')}-{digest}-{file}"


def secret_labels(spec: ContainerSpec) -> dict[str, str]:
    """A secret's labels: its service's, and ``titan.for-service`` naming the service."""
    return {**spec.labels, LABEL_FOR_SERVICE: spec.name}


def secret_references(spec: ContainerSpec, ids: Mapping[str, str]) -> list[SecretReference]:
    """References to the secrets of ``spec.secrets`` (``ids``: file name -> secret id): readable by the
    spec's user only (mode 0400; root's when the spec names no user)."""
    uid, _, gid = spec.user.partition(":")
    return [SecretReference(ids[file], secret_name(spec.name, file), filename=file, uid=uid or "0",
                            gid=gid or uid or "0", mode=0o400) for file in sorted(spec.secrets)]


def service_arguments(spec: ContainerSpec, replicas: int = 0,
                      secret_ids: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``create_service`` keyword arguments of ``spec`` (``replicas`` 0: created, not started);
    ``secret_ids``: the ids of the secrets made for ``spec.secrets`` (file name -> id)."""
    if set(spec.secrets) != set(secret_ids or {}):
        raise EngineError(f"{spec.name}: its secrets must be made before the service")
    if spec.gpus and not spec.node:
        raise EngineError(f"{spec.name}: GPUs by uuid need the node they are on (ContainerSpec.node): "
                          f"core.engine.swarm_gpus picks both")
    if spec.network.startswith("container:"):
        raise EngineError(f"{spec.name}: a Swarm service cannot join another container's network namespace "
                          f"({spec.network}); give it a network")
    environment = dict(spec.environment)
    # The node's NVIDIA runtime (a GPU node's default runtime) gives the container exactly these; a
    # container without GPUs gets none, whatever its image says (CUDA images set "all").
    environment["NVIDIA_VISIBLE_DEVICES"] = ",".join(spec.gpus) if spec.gpus else "void"
    container = SwarmContainerSpec(
        spec.image, command=list(spec.command) or None, env=environment, labels=dict(spec.labels),
        user=spec.user or None, init=spec.init, cap_drop=list(spec.hardening.cap_drop) or None,
        mounts=[Mount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in spec.mounts] or None,
        secrets=secret_references(spec, secret_ids or {}) or None,
    )
    nano = int(round(spec.cores * 1e9)) if spec.cores else None
    memory = spec.memory or None
    resources = Resources(cpu_limit=nano, mem_limit=memory, cpu_reservation=nano, mem_reservation=memory,
                          generic_resources=dict(spec.resources) or None)
    resources.setdefault("Limits", {})["Pids"] = spec.processes
    constraints = ([f"node.labels.{NODE_POOL}=={spec.pool}"] if spec.pool else []) + \
        ([f"node.id=={spec.node}"] if spec.node else [])
    template = TaskTemplate(container, resources=resources, restart_policy=RestartPolicy(condition="none"),
                            placement=Placement(constraints=constraints) if constraints else None)
    return {
        "task_template": template, "name": spec.name, "labels": dict(spec.labels),
        "mode": ServiceMode("replicated", replicas=replicas),
        "endpoint_spec": EndpointSpec(mode="dnsrr", ports=[_published(target, port)
                                                           for target, port in spec.publish.items()] or None),
        "networks": [spec.network] if spec.network else None,
    }


def _published(target: int, port: int) -> dict[str, Any]:
    published: dict[str, Any] = {"Protocol": "tcp", "TargetPort": target, "PublishMode": "host"}
    if port:
        published["PublishedPort"] = port
    return published


@dataclass(frozen=True)
class TaskStatus:
    """Where a service's (latest) task stands, as Swarm tells it."""

    state: str  # Swarm's task state: "pending", "running", "rejected", ... (BEFORE_RUNNING, ENDED)
    desired: str = "running"  # what Swarm wants of it: "running"; "shutdown" (it ended); "remove" (scaled down)
    message: str = ""  # Swarm's word on the state ("scheduled", "started", "pending task scheduling")
    error: str = ""  # why it waits or ended: "no suitable node (insufficient resources on 2 nodes)"
    node_id: str = ""  # "" until the task is assigned to a node
    container_id: str = ""  # "" until the container exists on its node
    exit_code: int | None = None
    assigned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # generic resources: {"gpu": ("a",)}
    ports: Mapping[int, int] = field(default_factory=dict)  # container port -> its port on the node

    @property
    def unplaceable(self) -> bool:
        """Swarm found no node for it (it stays pending, and may never run)."""
        return self.state in ("new", "pending") and "no suitable node" in self.error

    @property
    def progress(self) -> str:
        """One line for a user watching their server start."""
        if self.unplaceable:
            return f"waiting for a node with room for it: {self.error}"
        if self.state == "running":
            return "running"
        if self.state in ENDED:
            return f"{self.state}: {self.error or self.message}"
        return f"{self.state}: {self.message}" if self.message else self.state


def task_status(task: Mapping[str, Any]) -> TaskStatus:
    """A task record (``GET /tasks``) as a :class:`TaskStatus`."""
    status = task.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    assigned: dict[str, list[str]] = {}
    for resource in task.get("GenericResources") or task.get("AssignedGenericResources") or []:  # API: the former
        named = resource.get("NamedResourceSpec")
        if named:
            assigned.setdefault(str(named["Kind"]), []).append(str(named["Value"]))
        discrete = resource.get("DiscreteResourceSpec")
        if discrete:
            assigned.setdefault(str(discrete["Kind"]), []).append(str(discrete["Value"]))
    return TaskStatus(
        state=str(status.get("State", "")), desired=str(task.get("DesiredState", "")),
        message=str(status.get("Message", "")), error=str(status.get("Err", "")),
        node_id=str(task.get("NodeID", "")), container_id=str(container.get("ContainerID", "")),
        exit_code=container.get("ExitCode") if status.get("State") in ENDED else None,
        assigned={kind: tuple(values) for kind, values in assigned.items()},
        ports={int(p["TargetPort"]): int(p["PublishedPort"])
               for p in (status.get("PortStatus") or {}).get("Ports") or [] if p.get("PublishedPort")},
    )


def latest_task(tasks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest task of a one-replica service (a restart of the service makes a new one)."""
    if not tasks:
        return None
    return max(tasks, key=lambda t: (str(t.get("DesiredState", "")) not in ("shutdown", "remove"),
                                     _instant(str(t.get("CreatedAt", "")))))


def _instant(stamp: str) -> str:
    """An RFC 3339 time of Swarm's (fractions of any length) in a form that sorts as time."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return f"{whole}.{fraction.ljust(9, '0')}"


def epoch_seconds(stamp: str) -> float:
    """An RFC 3339 time of Swarm's (``2026-12-04T10:00:00.123456789Z``) as seconds since the epoch
    (0.0 when there is none)."""
    if not stamp:
        return 0.0
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    fraction = fraction.split("+")[0].split("-")[0]
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")


def container_state(task: TaskStatus | None) -> str:
    """The Docker container state (ContainerInfo.state, core.labels.ALIVE) a task's state stands for."""
    if task is None or task.state in BEFORE_RUNNING:
        return "created"
    if task.state == "running":
        return "running"
    return "exited"
