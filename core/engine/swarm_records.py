"""What Swarm says, in Titan's terms (pure): the records :class:`~core.engine.swarm.SwarmEngine`
returns beyond the engine interface (:class:`NodeAddress`, :class:`SecretInfo`) and the named errors
of its calls and of tasks that ended before they ran (:func:`swarm_error`, :func:`failure`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.engine.base import ContainerGone, EngineError, ImageMissing, MountMissing, NetworkGone
from core.engine.swarm_spec import TaskStatus


@dataclass(frozen=True)
class NodeAddress:
    """The node a task runs on."""

    node_id: str
    hostname: str
    address: str  # the node's address in the swarm (its Status.Addr): where its host-network ports are
    state: str = "ready"  # Swarm's word on the node: "ready", "down" (it stopped answering), "unknown", ...
    since: str = ""  # when Swarm last changed the node (RFC 3339): for a down node, about when it went

    @property
    def answering(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True)
class SecretInfo:
    """One Swarm secret as a listing shows it (Swarm never gives its data back)."""

    id: str
    name: str
    labels: Mapping[str, str]


def swarm_error(error: BaseException, what: str) -> EngineError:
    """Titan's error for a docker-py exception raised by a service call."""
    if isinstance(error, EngineError):
        return error
    text = str(getattr(error, "explanation", None) or error)
    lowered = text.lower()
    status = getattr(error, "status_code", None)
    if status == 404 or "not found" in lowered:
        if "network" in lowered:
            return NetworkGone(f"{what}: {text}")
        return ContainerGone(f"{what}: {text}")
    if status == 503 or "not a swarm manager" in lowered:
        return EngineError(f"{what}: the engine is not a Swarm manager ({text})")
    if status == 409:  # what = "creating <kind> <name>": one of that kind and name exists
        kind = what.split()[1] if what.startswith("creating ") else "one"
        return EngineError(f"{what}: a {kind} of that name exists")
    return EngineError(f"{what}: {text}")


def missing_image(task: TaskStatus) -> str:
    """The image a task ended without (Swarm's "No such image: <image>", whether the node's pull found
    no such image in the registry or no registry at all: measured on 20.10), "" for another end."""
    reason = task.error or task.message
    head, _, image = reason.partition(":")
    return image.strip() if head.strip().lower() == "no such image" else ""


#: What a node's engine says when a bind's source is missing there (20.10: the first from Swarm's
#: executor, the second from the engine's mount check) or is a shared mount whose server is gone.
_MOUNT_MISSING = ("source path not found", "bind source path does not exist", "transport endpoint is not connected")


def failure(name: str, task: TaskStatus, node: str = "", why: str = "") -> EngineError:
    """The error of a task that ended before it ran, on the node called ``node``; ``why``: what the
    hub host found of the missing image's registry (core.registry.pull_diagnosis)."""
    reason = task.error or task.message or task.state
    where = f"node {node}" if node else "its node"
    image = missing_image(task)
    if image:
        return ImageMissing(f"{name}: {where} has no image {image} and could not pull it" + (f": {why}" if why else ""))
    if any(words in reason.lower() for words in _MOUNT_MISSING):
        # Binds of Titan's services are the users' homes on the shared storage (docs/swarm-homes.md).
        return MountMissing(f"Your home storage is not mounted on node {node or task.node_id[:12] or '(unknown)'}: "
                            f"an admin must mount the shared homes on that node or drain it "
                            f"(service {name}: {reason})")
    return EngineError(f"{name}: the task {task.state} on {where}: {reason}")


def passing_rejection(task: TaskStatus) -> str:
    """Why a rejected task may well run when asked for again, "" when it would not: "constraints"
    (:func:`reassignable`), or "network": its node still holds the address pool of a removed overlay
    that had the same subnet (the manager gave it out again at once); the node lets it go within moments."""
    if reassignable(task):
        return "constraints"
    overlap = "Pool overlaps with other one on this address space" in (task.error or task.message)
    return "network" if task.state == "rejected" and overlap else ""


def reassignable(task: TaskStatus) -> bool:
    """The task was rejected before it ran because its node "no longer meets constraints"."""
    return task.state == "rejected" and "no longer meets constraints" in (task.error or task.message)
