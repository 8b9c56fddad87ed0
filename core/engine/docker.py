"""``DockerEngine``: the :class:`~core.engine.base.ContainerEngine` of a Docker engine, with docker-py.

The only module outside the tests that imports ``docker``. docker-py is blocking: every call runs
on a small thread pool, with a connection pool as large, so parallel calls do not queue for one
connection. Its exceptions become Titan's named errors here (:func:`translate`), branching on the
API's status codes (404: gone, 409: conflict), as DockerSpawner does.

:func:`create_arguments` is the pure half: a :class:`~core.engine.spec.ContainerSpec` to
docker-py's ``create_container`` and ``create_host_config`` keyword arguments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

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
from core.engine.spec import ContainerSpec, Hardening

T = TypeVar("T")


def hardening_kwargs(hardening: Hardening) -> dict[str, Any]:
    """``create_host_config`` keyword arguments of ``hardening``."""
    kwargs: dict[str, Any] = {}
    if hardening.cap_drop:
        kwargs["cap_drop"] = list(hardening.cap_drop)
    if hardening.no_new_privileges:
        kwargs["security_opt"] = ["no-new-privileges:true"]
    return kwargs


def device_request(gpus: Sequence[str]) -> dict[str, Any]:
    """Keyword arguments of ``docker.types.DeviceRequest``: exactly these GPUs, the "gpu" capability."""
    return {"driver": "nvidia", "device_ids": list(gpus), "capabilities": [["gpu"]]}


def create_arguments(spec: ContainerSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(create_container kwargs, create_host_config kwargs)`` of ``spec`` (no API call)."""
    create: dict[str, Any] = {
        "image": spec.image, "name": spec.name, "environment": dict(spec.environment),
        "labels": dict(spec.labels), "detach": True,
    }
    if spec.command:
        create["command"] = list(spec.command)
    if spec.user:
        create["user"] = spec.user
    host: dict[str, Any] = {"init": spec.init, "pids_limit": spec.processes, **hardening_kwargs(spec.hardening)}
    if spec.network:
        host["network_mode"] = spec.network
    if spec.memory:
        host["mem_limit"] = spec.memory
        host["memswap_limit"] = spec.memory
    if spec.cores:
        host["nano_cpus"] = int(round(spec.cores * 1e9))
    binds = {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in spec.mounts}
    if binds:
        host["binds"] = binds
    if spec.gpus:
        host["device_requests"] = [device_request(spec.gpus)]
    return create, host


def translate(error: BaseException, what: str = "") -> EngineError | None:
    """Titan's error for a docker-py exception (``None`` for anything else): for callers that
    still hold docker-py's own exceptions (DockerSpawner's create and start)."""
    if isinstance(error, EngineError):
        return error
    if not isinstance(error, docker.errors.APIError):
        return None
    text = str(error.explanation or error)
    lowered = text.lower()
    message = f"{what}: {text}" if what else text
    if error.status_code == 404:
        if "network" in lowered:
            return NetworkGone(message)
        if "image" in lowered:
            return ImageMissing(message)
        return ContainerGone(message)
    return EngineError(message)


def _container(raw: Mapping[str, Any]) -> ContainerInfo:
    """A listing's entry (``Names``, ``State`` a string) or an inspection (``Name``, ``State`` a dict)."""
    state = raw.get("State")
    if isinstance(state, Mapping):
        config = raw.get("Config") or {}
        return ContainerInfo(id=str(raw["Id"]), name=str(raw.get("Name", "")).lstrip("/"),
                             image=str(config.get("Image", "")), state=str(state.get("Status", "")),
                             labels=dict(config.get("Labels") or {}),
                             network_mode=str((raw.get("HostConfig") or {}).get("NetworkMode", "")))
    names = raw.get("Names") or [""]
    return ContainerInfo(id=str(raw["Id"]), name=str(names[0]).lstrip("/"), image=str(raw.get("Image", "")),
                         state=str(state or ""), labels=dict(raw.get("Labels") or {}),
                         network_mode=str((raw.get("HostConfig") or {}).get("NetworkMode", "")))


def _network(raw: Mapping[str, Any]) -> NetworkInfo:
    configs = (raw.get("IPAM") or {}).get("Config") or []
    return NetworkInfo(
        id=str(raw.get("Id", "")), name=str(raw.get("Name", "")),
        subnets=tuple(str(c["Subnet"]) for c in configs if c.get("Subnet")),
        gateway=next((str(c["Gateway"]) for c in configs if c.get("Gateway")), ""),
        containers=tuple(raw.get("Containers") or {}), labels=dict(raw.get("Labels") or {}),
    )


def label_filters(labels: LabelFilter) -> list[str]:
    """docker-py's ``filters={"label": [...]}`` of a label filter."""
    return [key if value is None else f"{key}={value}" for key, value in labels.items()]


class DockerEngine:
    """The Docker engine ``DOCKER_HOST`` names (docker.from_env), with ``threads`` parallel calls."""

    def __init__(self, threads: int = 8, client_factory: Callable[[], docker.APIClient] | None = None) -> None:
        self.threads = threads
        self._factory = client_factory or (lambda: docker.from_env(max_pool_size=threads).api)
        self._api: docker.APIClient | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def _call(self, work: Callable[[docker.APIClient], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="docker")
        loop = asyncio.get_running_loop()
        if self._api is None:  # made on first use: it asks the engine for its API version
            api = await loop.run_in_executor(self._executor, self._factory)
            if self._api is None:
                self._api = api
            else:
                api.close()
        client = self._api
        return await loop.run_in_executor(self._executor, lambda: work(client))

    async def connect(self) -> None:
        """Make the client now (the first container then does not wait for it)."""
        await self._call(lambda api: None)

    async def _docker(self, what: str, work: Callable[[docker.APIClient], T]) -> T:
        try:
            return await self._call(work)
        except docker.errors.DockerException as error:
            raise (translate(error, what) or EngineError(f"{what}: {error}")) from None

    # ---- containers ----------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        if spec.resources or spec.publish or spec.secrets:  # spec.pool means nothing on one host
            what = "generic resources" if spec.resources else "published ports" if spec.publish else "secrets"
            raise EngineError(f"creating container {spec.name}: {what} need the Swarm engine")
        create, host = create_arguments(spec)

        def work(api: docker.APIClient) -> str:
            return str(api.create_container(host_config=api.create_host_config(**host), **create)["Id"])

        return await self._docker(f"creating container {spec.name}", work)

    async def start(self, container_id: str) -> None:
        await self._docker(f"starting container {container_id[:12]}", lambda api: api.start(container_id))

    async def inspect(self, container_id: str) -> ContainerInfo:
        raw = await self._docker(f"container {container_id[:12]}", lambda api: api.inspect_container(container_id))
        return _container(raw)

    async def list_containers(self, labels: LabelFilter) -> list[ContainerInfo]:
        filters = {"label": label_filters(labels)}
        found = await self._docker("listing containers", lambda api: api.containers(all=True, filters=filters))
        return [_container(c) for c in found]

    async def stop(self, container_id: str, grace: float = 10) -> None:
        await self._docker(f"stopping container {container_id[:12]}",
                           lambda api: api.stop(container_id, timeout=int(grace)))

    async def remove(self, container_id: str) -> bool:
        try:
            await self._call(lambda api: api.remove_container(container_id, force=True))
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as error:
            if error.status_code == 409:  # its removal is already in progress
                return False
            raise EngineError(f"removing container {container_id[:12]}: {error.explanation or error}") from None
        return True

    async def inspect_image(self, image: str) -> ImageInfo:
        try:
            raw = await self._call(lambda api: api.inspect_image(image))
        except docker.errors.NotFound:
            raise ImageMissing(f"no image {image}") from None
        except docker.errors.DockerException as error:
            raise EngineError(f"image {image}: {error}") from None
        return ImageInfo(id=str(raw.get("Id", "")), size=int(raw.get("Size", 0)))

    async def info(self) -> EngineInfo:
        raw = await self._docker("engine info", lambda api: api.info())
        return EngineInfo(cpus=float(raw["NCPU"]), memory=int(raw["MemTotal"]))

    # ---- networks ------------------------------------------------------------------------

    async def create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> None:
        await self._create_network(name, subnet, gateway, labels, driver="bridge")

    async def _create_network(self, name: str, subnet: str, gateway: str, labels: Mapping[str, str],
                              driver: str, **options: Any) -> None:
        """Create a ``driver`` network (docker-py's ``options`` passed on), its errors named."""
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet, gateway=gateway)])
        try:
            await self._call(lambda api: api.create_network(name, driver=driver, check_duplicate=True,
                                                            labels=dict(labels), ipam=ipam, **options))
        except docker.errors.APIError as error:
            text = str(error.explanation or error)
            if error.status_code == 409:
                raise NetworkExists(f"network {name} exists") from None
            if "overlap" in text.lower():
                raise SubnetTaken(f"subnet {subnet} of network {name} overlaps another network: {text}") from None
            raise EngineError(f"Docker refused to create {driver} network {name}: {text}") from None

    async def inspect_network(self, name: str) -> NetworkInfo:
        try:
            raw = await self._call(lambda api: api.inspect_network(name))
        except docker.errors.NotFound:
            raise NetworkGone(f"no network {name}") from None
        except docker.errors.DockerException as error:
            raise EngineError(f"network {name}: {error}") from None
        return _network(raw)

    async def list_networks(self) -> list[NetworkInfo]:
        return [_network(n) for n in await self._docker("listing networks", lambda api: api.networks())]

    async def remove_network(self, name: str) -> None:
        try:
            await self._call(lambda api: api.remove_network(name))
        except docker.errors.NotFound:
            raise NetworkGone(f"no network {name}") from None
        except docker.errors.APIError as error:
            text = str(error.explanation or error)
            # A swarm's manager says "network … is in use by service …" (FailedPrecondition, a 500).
            if error.status_code in (403, 409) or "active endpoints" in text or "is in use by" in text:
                raise NetworkInUse(f"network {name} is in use") from None
            raise EngineError(f"removing network {name}: {text}") from None

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        if self._api is not None:
            self._api.close()
            self._api = None
