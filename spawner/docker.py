"""``TitanDockerSpawner``: DockerSpawner driven by Titan's profiles, each user on a network of their own.

The base class owns the container lifecycle; this subclass only
- validates ``user_options`` against the profiles (form and REST alike) before anything starts,
- turns the selection into container settings with the pure builder in :mod:`spawner.container`,
- puts the container on its user's own Docker network (:mod:`core.network`: created at the user's
  first start, removed with their last container), where it listens on its own address, and
- reports real progress (image check, network, create, start, wait).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import default

from core import network as networks
from core.capacity import HostCapacity
from core.engine.base import ContainerEngine, ContainerGone, EngineError, ImageMissing, NetworkGone
from core.engine.docker import DockerEngine, translate
from core.gpu.allocator import GpuAllocator, GpuUnavailable
from core.gpu.inventory import GpuUnit
from core.gpu.pool import gpu_allocator
from core.images import image_tag
from core.labels import LABEL_DEPLOYMENT, LABEL_GPUS
from core.network import NetworkPlan
from core.profiles import ProfileSet, loaded_profile_sets, profiles_in
from core.text import printable
from core.units import format_memory
from spawner.clusters import server_stopped
from spawner.container import (
    SERVER_PORT,
    ContainerSettings,
    build_container_settings,
)
from spawner.dask_env import dask_environment
from spawner.form import form_view, render_form
from spawner.gpu_owners import live_gpu_owners
from spawner.metrics import RUNNING, SPAWN_DURATION
from spawner.options import OptionsError, Selection, parse_form, resolve_selection
from spawner.readiness import wait_for_listening
from spawner.refusals import forget_refused
from spawner.settings import SpawnerSettings


class TitanDockerSpawner(DockerSpawner, SpawnerSettings):
    """Spawns each server in a Docker container sized by the profile the user picked."""

    _shared_engine: ClassVar[ContainerEngine | None] = None
    _engine: ContainerEngine | None = None
    _engine_capacity: ClassVar[tuple[float, int] | None] = None

    _selection: Selection | None = None
    _refused = False  # the last start was refused (bad options): nothing ran, nothing is kept
    _model_checked = False  # poll() found the container on its user's network (not the old host network)
    _cleaned_up = False  # stop() ran since the last start (also after a hub restart: False)
    _idle_args: tuple[str, ...] = ()
    _settings_applied: ContainerSettings  # the settings of the server being started (container_settings)
    _progress_events: list[dict[str, Any]]

    # ---- defaults: the user's own network, no published ports ---------------------------

    @default("network_name")
    def _default_network_name(self) -> str:
        return self.network_plan.user_network(self.user.name)

    @default("use_internal_ip")
    def _default_use_internal_ip(self) -> bool:
        # The hub and the proxy reach the server at its address on the user's network: no port is
        # published on the host.
        return True

    @default("port")
    def _default_port(self) -> int:
        return SERVER_PORT

    @property
    def network_plan(self) -> NetworkPlan:
        return NetworkPlan.of(self.deployment, self.network_pool, self.network_subnet_prefix)

    @default("remove")
    def _default_remove(self) -> bool:
        return True

    @default("prefix")
    def _default_prefix(self) -> str:
        return self.deployment

    @default("options_form")
    def _default_options_form(self) -> Any:
        return TitanDockerSpawner._render_options_form

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return TitanDockerSpawner._apply_profile

    # ---- the engine -----------------------------------------------------------------------

    @property
    def engine(self) -> ContainerEngine:
        """The engine for Titan's own calls (networks, listings, the image check): one per hub
        process, the engine ``DOCKER_HOST`` names. DockerSpawner's create and start keep its client."""
        if self._engine is not None:
            return self._engine
        if TitanDockerSpawner._shared_engine is None:
            TitanDockerSpawner._shared_engine = DockerEngine()
        return TitanDockerSpawner._shared_engine

    @engine.setter
    def engine(self, engine: ContainerEngine) -> None:
        """This spawner's own engine (tests give a FakeEngine)."""
        self._engine = engine

    # ---- profiles and capacity ----------------------------------------------------------

    @property
    def profile_set(self) -> ProfileSet:
        """The validated profiles, reloaded when a file in profiles_dir changes."""
        return profiles_in(Path(self.profiles_dir))

    async def host_capacity(self) -> HostCapacity:
        if TitanDockerSpawner._engine_capacity is None:
            info = await self.engine.info()
            TitanDockerSpawner._engine_capacity = (info.cpus, info.memory)
        cpus, memory = TitanDockerSpawner._engine_capacity
        allocator = await self.gpus()
        types = list(self.profile_set.gpu_types)
        return HostCapacity(
            cpus=self.host_cpus or cpus, memory=self.host_memory or memory,
            gpus_total={t: allocator.total_count(t) for t in types},
            gpus_free={t: allocator.free_count(t) for t in types},
        )

    async def gpus(self) -> GpuAllocator:
        """The hub's GPU allocator; on first use, reconciled with the containers really running."""
        allocator, fresh = gpu_allocator(self.gpu_db_url, self.gpu_inventory_xml, self.profile_set.gpu_types,
                                         self.log)
        if fresh:
            allocator.reconcile(live_gpu_owners(await self.engine.list_containers({LABEL_DEPLOYMENT: self.deployment})))
        return allocator

    @property
    def gpu_owner(self) -> str:
        return f"{self.user.name}/{self.name}"

    @property
    def group_names(self) -> list[str]:
        return sorted(g.name for g in self.user.groups)

    # ---- the options form and validation ------------------------------------------------

    async def _render_options_form(self) -> str:
        previous = self.orm_spawner.user_options if self.orm_spawner else None
        views = form_view(self.profile_set, self.user.name, self.group_names, await self.host_capacity(),
                          previous=previous if isinstance(previous, dict) else None)
        return render_form(views)

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        return parse_form(formdata)

    async def _apply_profile(self, user_options: Any) -> None:
        try:
            selection = resolve_selection(self.profile_set, user_options, self.user.name, self.group_names,
                                          await self.host_capacity())
        except OptionsError as error:
            message = printable(str(error))
            self.log.info("Refused options for %s: %s", self._log_name, message)
            self._refused = True
            raise web.HTTPError(400, message) from None
        self._refused = False
        self._selection = selection

    async def _run_apply_user_options(self, user_options: Any) -> None:
        """JupyterHub's runner of ``apply_user_options`` logs every exception with a traceback at
        ERROR, a user's mistyped option included; ours are refusals, already logged at INFO and
        answered 400 with the reason."""
        await self._apply_profile(user_options)

    # ---- progress -----------------------------------------------------------------------

    def _progress(self, percent: int, message: str) -> None:
        self._progress_events.append({"progress": percent, "message": message})

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        sent = 0
        while True:
            events = getattr(self, "_progress_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            await asyncio.sleep(0.1)

    # ---- lifecycle ----------------------------------------------------------------------

    def container_settings(self, selection: Selection, tag: str, gpus: list[GpuUnit]) -> ContainerSettings:
        if not self.idle_shutdown:
            selection = replace(selection, profile=replace(selection.profile, idle_timeout=0.0))
        return build_container_settings(
            selection, tag, user=self.user.name, server_name=self.name, deployment=self.deployment,
            home_volume_template=self.home_volume_template, network=self.network_name, gpus=gpus,
            default_idle_timeout=self.idle_timeout, homes_root=self.homes_root,
        )

    async def _allocate_gpus(self, selection: Selection) -> list[GpuUnit]:
        resources = selection.resources
        if not resources.gpu_type or not resources.gpu_count:
            return []
        allocator = await self.gpus()
        try:
            units = allocator.allocate(resources.gpu_type, resources.gpu_count, self.gpu_owner)
        except GpuUnavailable as error:
            raise web.HTTPError(409, str(error)) from None
        self.log.info("GPUs for %s: %s", self._log_name, ", ".join(u.uuid for u in units))
        self._progress(30, f"Allocated {len(units)} {resources.gpu_type} GPU(s)")
        return units

    def _apply_container_settings(self, settings: ContainerSettings) -> None:
        self._settings_applied = settings
        self.image = settings.image
        self.mem_limit = settings.mem_limit
        self.cpu_limit = settings.cpu_limit
        self.volumes = {name: dict(spec) for name, spec in settings.volumes.items()}
        create_kwargs: dict[str, Any] = {"labels": dict(settings.labels)}
        if settings.command:  # a dashboard server: titan-dashboard instead of jupyterhub-singleuser
            create_kwargs["command"] = list(settings.command)
        self.extra_create_kwargs = create_kwargs
        self.extra_host_config = dict(settings.host_config)
        self.environment = {**settings.environment, **dask_environment(self.dask_gateway, self.name)}
        if self.titan_service_url:
            self.environment["TITAN_SERVICE_URL"] = self.titan_service_url
        self._idle_args = tuple(settings.args)

    def get_args(self) -> list[str]:
        """JupyterHub's arguments, plus the profile's idle shutdown (spawner.idle)."""
        return [*super().get_args(), *self._idle_args]

    async def check_allowed(self, image: str) -> str:
        """DockerSpawner reads ``user_options["image"]`` as a raw image name. Ours is a profile
        option already validated and resolved to a tag, so the resolved tag always wins."""
        return str(self.image)

    async def pull_image(self, image: str) -> None:
        """No registry: the image must have been built here. Say so clearly if it was not."""
        self._progress(10, f"Checking image {image}")
        try:
            info = await self.engine.inspect_image(image)
        except ImageMissing:
            raise web.HTTPError(
                500, f"The image {image} is not built on this host. An admin builds it with "
                     f"`make images` (or `python -m images.build`)."
            ) from None
        self._progress(25, f"Image {image} is present ({format_memory(info.size)})")

    async def _ensure_network(self) -> None:
        plan = self.network_plan
        await networks.ensure_user_network(self.engine, plan, self.user.name)

    async def create_object(self) -> dict[str, Any]:
        self._progress(35, f"Preparing your network {self.network_name}")
        await self._ensure_network()
        self._progress(40, "Creating the container")
        try:
            obj: dict[str, Any] = await super().create_object()
        except Exception as error:
            if not isinstance(translate(error), NetworkGone):
                raise
            # The user's last other container went at this moment and took the network with it.
            await self._ensure_network()
            obj = await super().create_object()
        if LABEL_GPUS in self.extra_create_kwargs.get("labels", {}):
            (await self.gpus()).attach(self.gpu_owner, self.object_name)
        return obj

    async def start_object(self) -> None:
        self._progress(60, f"Starting container {self.object_name}")
        await super().start_object()

    async def start(self) -> tuple[str, int]:
        began = time.monotonic()
        profile = "unknown"
        try:
            ip, port = await self._start()
        except BaseException:
            if self._selection is not None:
                profile = self._selection.profile.slug
            SPAWN_DURATION.labels(profile, "failure").observe(time.monotonic() - began)
            raise
        assert self._selection is not None
        profile = self._selection.profile.slug
        SPAWN_DURATION.labels(profile, "success").observe(time.monotonic() - began)
        RUNNING.started(self.gpu_owner, profile)
        return ip, port

    async def _start(self) -> tuple[str, int]:
        self._progress_events = []
        if self._selection is None:  # started without passing apply_user_options (not expected)
            await self._apply_profile(self.user_options)
        assert self._selection is not None
        selection = self._selection
        tag = image_tag(selection.image)
        try:
            gpus = await self._allocate_gpus(selection)
            self._apply_container_settings(self.container_settings(selection, tag, gpus))
            self.log.info("Starting %s: profile %s, image %s, network %s", self._log_name, selection.profile.slug,
                          tag, self.network_name)
            ip, port = await super().start()
        except BaseException:
            await self._release_resources()
            raise
        what = f"the {selection.dashboard.app} dashboard" if selection.dashboard else "JupyterLab"
        self._progress(80, f"Container started; waiting for {what} on {ip}:{port}")
        await wait_for_listening(ip, port, float(self.http_timeout), self.poll)
        return ip, port

    async def poll(self) -> int | None:
        """DockerSpawner's poll; also keeps the running-servers metric true after a hub restart, and
        retires a server still running on the host network of Titan before per-user networks."""
        status: int | None = await super().poll()
        if status is None and not self._model_checked and await self._on_host_network():
            self.log.warning("Server %s runs on the host network (Titan before per-user networks), where every "
                             "user reaches it: stopping it. Its home is kept; its user starts it again.",
                             self._log_name)
            await self.stop_object()
            await self.remove_object()
            status = 0
        self._model_checked = status is None
        if status is None and self.gpu_owner not in RUNNING:
            profile = self.user_options.get("profile") if isinstance(self.user_options, dict) else None
            RUNNING.started(self.gpu_owner, str(profile or self.profile_set.default.slug))
            await self.gpus()  # the allocator (and its GPU metrics) exists from the first poll
        elif status is not None:
            RUNNING.stopped(self.gpu_owner)
        return status

    async def _on_host_network(self) -> bool:
        try:
            return (await self.engine.inspect(self.object_name)).network_mode == "host"
        except ContainerGone:
            return False

    async def _release_resources(self) -> None:
        RUNNING.stopped(self.gpu_owner)
        released = (await self.gpus()).release(self.gpu_owner)
        if released:
            self.log.info("Released GPUs of %s: %s", self._log_name, ", ".join(released))
        try:  # the user's network goes with their last container (the engine keeps one still in use)
            await networks.remove_if_unused(self.engine, self.network_name)
        except EngineError as error:
            self.log.warning("Could not remove network %s: %s", self.network_name, error)

    async def stop(self, now: bool = False) -> None:
        try:
            await server_stopped(self.dask_gateway, self.deployment, self.user.name, self.name, self.log,
                                 self.engine)
            await super().stop(now=now)
        finally:
            await self._release_resources()
            self._cleaned_up = True

    async def run_post_stop_hook(self) -> Any:
        """JupyterHub calls ``stop`` only for a server still running. One that exited by itself (its idle
        shutdown, a crash) reaches here without it: stop its Dask clusters and free its port and GPUs
        the same way. Then the configured ``post_stop_hook``."""
        if self._refused:  # nothing started: nothing to clean up, nothing to keep
            self._refused = False
            self._cleaned_up = True
            asyncio.ensure_future(forget_refused(self))
        if not self._cleaned_up:
            self.log.info("Server %s exited by itself: stopping its Dask clusters, freeing its resources",
                          self._log_name)
            try:
                await server_stopped(self.dask_gateway, self.deployment, self.user.name, self.name, self.log,
                                 self.engine)
            finally:
                await self._release_resources()
        self._cleaned_up = False  # for the next start
        result = super().run_post_stop_hook()
        if inspect.isawaitable(result):
            result = await result
        return result


RUNNING.known_profiles = lambda: sorted({p.slug for profiles in loaded_profile_sets() for p in profiles.profiles})
