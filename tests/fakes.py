"""``FakeEngine``: the container engine interface (core.engine.base.ContainerEngine) in memory.

It records every call, keeps containers and networks as the real engine would (create, start,
remove, label filters), and can be told to fail a step: ``engine.fail("start", error)`` makes
the next ``start`` raise ``error`` (after doing its work, with ``after=True``: the worst case for
a clean-up).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.engine.base import (
    ContainerGone,
    ContainerInfo,
    EngineError,
    EngineInfo,
    ImageInfo,
    ImageMissing,
    LabelFilter,
    NetworkExists,
    NetworkGone,
    NetworkInfo,
    NetworkInUse,
    SubnetTaken,
)
from core.engine.spec import ContainerSpec


@dataclass
class Failure:
    error: BaseException
    after: bool  # the step happens, then fails
    times: int  # how many calls fail (then the step works again)


def matches(labels: Mapping[str, str], wanted: LabelFilter) -> bool:
    return all(key in labels and (value is None or labels[key] == value) for key, value in wanted.items())


class FakeEngine:
    """An engine in memory; ``latency`` seconds of ``asyncio.sleep`` in every call (0 still yields)."""

    def __init__(self, latency: float = 0.0, cpus: float = 8, memory: int = 32 * 1024**3,
                 images: Sequence[str] | None = None) -> None:
        self.latency = latency
        self.host = EngineInfo(cpus, memory)
        self.images = set(images) if images is not None else None  # None: every image is there
        self.containers: dict[str, ContainerInfo] = {}
        self.specs: dict[str, ContainerSpec] = {}  # by container id
        self.created: list[ContainerSpec] = []
        self.started: list[str] = []
        self.removed: list[str] = []
        self.networks: dict[str, NetworkInfo] = {}
        self.calls: list[tuple[str, Any]] = []
        self.failures: dict[str, Failure] = {}
        self.closed = False

    # ---- set-up from tests -----------------------------------------------------------------

    def add_container(self, container_id: str, labels: Mapping[str, str], state: str = "running",
                      image: str = "titan/minimal:1", name: str = "") -> ContainerInfo:
        """A container made by someone else (a server the hub started)."""
        info = ContainerInfo(container_id, name or container_id, image, state, dict(labels))
        self.containers[container_id] = info
        return info

    def set_state(self, container_id: str, state: str) -> None:
        self.containers[container_id] = replace(self.containers[container_id], state=state)

    def fail(self, step: str, error: BaseException | None = None, after: bool = False, times: int = 1) -> None:
        """Make the next ``times`` calls of ``step`` (a method name) raise ``error``."""
        self.failures[step] = Failure(error or EngineError(f"{step} failed (injected)"), after, times)

    async def _step(self, step: str, argument: Any = None) -> Failure | None:
        self.calls.append((step, argument))
        await asyncio.sleep(self.latency)
        failure = self.failures.get(step)
        if failure is None:
            return None
        failure.times -= 1
        if failure.times <= 0:
            del self.failures[step]
        if not failure.after:
            raise failure.error
        return failure

    @staticmethod
    def _then(failure: Failure | None) -> None:
        if failure is not None:
            raise failure.error

    # ---- containers ---------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        failure = await self._step("create", spec)
        if self.images is not None and spec.image not in self.images:
            raise ImageMissing(f"no image {spec.image}")
        if spec.network and not spec.network.startswith("container:") and spec.network not in self.networks:
            raise NetworkGone(f"no network {spec.network}")
        if any(c.name == spec.name for c in self.containers.values()):
            raise EngineError(f"the name {spec.name} is in use")
        container_id = f"id-{len(self.created) + 1}"
        self.created.append(spec)
        self.specs[container_id] = spec
        self.containers[container_id] = ContainerInfo(container_id, spec.name, spec.image, "created",
                                                      dict(spec.labels), spec.network)
        self._then(failure)
        return container_id

    def _get(self, container_id: str) -> ContainerInfo:
        for info in self.containers.values():
            if container_id in (info.id, info.name):
                return info
        raise ContainerGone(f"no container {container_id}")

    async def start(self, container_id: str) -> None:
        failure = await self._step("start", container_id)
        info = self._get(container_id)
        self.containers[info.id] = replace(info, state="running")
        self.started.append(info.id)
        self._then(failure)

    async def inspect(self, container_id: str) -> ContainerInfo:
        self._then(await self._step("inspect", container_id))
        return self._get(container_id)

    async def list_containers(self, labels: LabelFilter) -> list[ContainerInfo]:
        self._then(await self._step("list_containers", dict(labels)))
        return [c for c in self.containers.values() if matches(c.labels, labels)]

    async def stop(self, container_id: str, grace: float = 10) -> None:
        failure = await self._step("stop", container_id)
        info = self._get(container_id)
        self.containers[info.id] = replace(info, state="exited")
        self._then(failure)

    async def remove(self, container_id: str) -> bool:
        failure = await self._step("remove", container_id)
        self.removed.append(container_id)
        gone = self.containers.pop(container_id, None) is None
        self._then(failure)
        return not gone

    async def inspect_image(self, image: str) -> ImageInfo:
        self._then(await self._step("inspect_image", image))
        if self.images is not None and image not in self.images:
            raise ImageMissing(f"no image {image}")
        return ImageInfo(f"sha256:{image}", 1024**3)

    async def info(self) -> EngineInfo:
        self._then(await self._step("info"))
        return self.host

    # ---- networks -----------------------------------------------------------------------------

    async def create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> None:
        failure = await self._step("create_network", name)
        if name in self.networks:
            raise NetworkExists(f"network {name} exists")
        new = ipaddress.ip_network(subnet)
        if any(new.overlaps(ipaddress.ip_network(s)) for n in self.networks.values() for s in n.subnets):
            raise SubnetTaken(f"subnet {subnet} overlaps")
        self.networks[name] = NetworkInfo(f"net-{name}", name, (subnet,), gateway, (), dict(labels))
        self._then(failure)

    async def inspect_network(self, name: str) -> NetworkInfo:
        self._then(await self._step("inspect_network", name))
        if name not in self.networks:
            raise NetworkGone(f"no network {name}")
        attached = tuple(c.id for c in self.containers.values() if c.network_mode == name)
        return replace(self.networks[name], containers=attached)

    async def list_networks(self) -> list[NetworkInfo]:
        self._then(await self._step("list_networks"))
        return list(self.networks.values())

    async def remove_network(self, name: str) -> None:
        failure = await self._step("remove_network", name)
        if name not in self.networks:
            raise NetworkGone(f"no network {name}")
        if any(c.network_mode == name for c in self.containers.values()):
            raise NetworkInUse(f"network {name} is in use")
        del self.networks[name]
        self._then(failure)

    async def close(self) -> None:
        self.closed = True
