"""Titan's profiles → KubeSpawner's ``profile_list`` (``singleuser.profileList`` in the chart). Pure.

A profile's settings become its ``kubespawner_override``; each choice's override becomes the
KubeSpawner settings of exactly the keys it changes, which KubeSpawner applies over the profile's
in option order, merging dictionaries as Titan merges overrides. Whether the two agree for every
combination of choices is checked with KubeSpawner itself (:mod:`kubernetes_export.kubespawner_check`).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.profiles import Profile, ProfileOption
from kubernetes_export.errors import CannotExpress
from kubernetes_export.options import GPU_RESOURCE, GPU_TYPE_LABEL
from spawner.idle import idle_shutdown_args

#: The dask-gateway client's default ``image`` cluster option: a cluster runs in its server's image.
DASK_IMAGE_ENV = "DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"
TEMPLATE = "{value}"


@dataclass(frozen=True)
class Context:
    """What a translation needs besides the profile."""

    images: Mapping[str, str]  # catalog name → image in the cluster's registry
    idle_timeout: float | None  # default idle timeout in seconds; None: servers never stop themselves
    dask_image_env: bool  # tell the Dask Gateway client which image the server runs


def gpu_tolerations(gpu_type: str) -> list[dict[str, str]]:
    """Tolerations of a pod that holds GPUs of ``gpu_type``: the usual ``nvidia.com/gpu`` taint of
    GPU nodes and a taint per type (REPORT.md lists both)."""
    return [
        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": GPU_TYPE_LABEL, "operator": "Equal", "value": gpu_type, "effect": "NoSchedule"},
    ]


def anchored(regex: str) -> str:
    """Titan matches a typed value against the whole regex, KubeSpawner with ``re.match`` (the start
    only): anchor it at both ends so both accept the same values."""
    inner = regex[1:] if regex.startswith("^") else regex
    inner = inner[:-1] if inner.endswith("$") and not inner.endswith("\\$") else inner
    return f"^(?:{inner})$"


def _key(where: str, key: str) -> str:
    """The Titan key a message names: ``resources.cpu`` of a profile, ``<where>.resources.cpu`` of a choice."""
    return f"{where}.{key}" if where else key


def _templated(value: Any) -> bool:
    return isinstance(value, str) and TEMPLATE in value


def _image(block: Mapping[str, Any], slug: str, where: str, ctx: Context) -> dict[str, Any]:
    name = block["image"]
    if _templated(name):
        raise CannotExpress(slug, _key(where, "image"), "an image name typed by the user cannot be mapped to an image "
                            "in the cluster's registry; offer the images as choices instead")
    out: dict[str, Any] = {"image": ctx.images[str(name)]}
    if ctx.dask_image_env:
        out["environment"] = {DASK_IMAGE_ENV: ctx.images[str(name)]}
    return out


def _gpu(gpu: Mapping[str, Any], base_gpu: Mapping[str, Any], slug: str, where: str, base: bool) -> dict[str, Any]:
    if _templated(gpu.get("type")):
        raise CannotExpress(slug, _key(where, "resources.gpu.type"), "a GPU type typed by the user cannot be checked "
                            "against gpu_types by KubeSpawner; offer the GPU types as choices instead")
    merged = {**base_gpu, **gpu}
    gpu_type = merged.get("type")
    count = merged.get("count", 1) if gpu_type else 0
    out: dict[str, Any] = {}
    if "type" in gpu:
        if gpu_type:
            out["node_selector"] = {GPU_TYPE_LABEL: gpu_type}
            out["tolerations"] = gpu_tolerations(str(gpu_type))
        elif not base:
            out["node_selector"] = {GPU_TYPE_LABEL: None}  # None: KubeSpawner removes the key
            out["tolerations"] = []
    adds_gpus = "type" in gpu and not base_gpu.get("type")
    if "count" in gpu or adds_gpus or ("type" in gpu and not gpu_type):
        if gpu_type and count not in (0, "0"):
            out["extra_resource_limits"] = {GPU_RESOURCE: str(count)}
        elif not base:
            out["extra_resource_limits"] = {GPU_RESOURCE: None}
    return out


def translate(block: Mapping[str, Any], base_gpu: Mapping[str, Any], slug: str, where: str, ctx: Context,
              base: bool = False) -> dict[str, Any]:
    """The KubeSpawner settings for the keys a Titan settings block (profile or override) sets."""
    out: dict[str, Any] = {}
    if "image" in block:
        out.update(_image(block, slug, where, ctx))
    resources = block.get("resources", {})
    if "processes" in resources:
        raise CannotExpress(slug, _key(where, "resources.processes"), "Kubernetes has no per-pod process limit (the "
                            "kubelet's podPidsLimit holds for every pod of a node); remove the key and set "
                            "podPidsLimit on the nodes")
    if "cpu" in resources:
        if isinstance(resources["cpu"], str):
            raise CannotExpress(slug, _key(where, "resources.cpu"), "KubeSpawner fills {value} in as text and its "
                                "cpu_limit takes a number; offer the CPU counts as choices instead")
        out["cpu_limit"] = out["cpu_guarantee"] = float(resources["cpu"])
    if "memory" in resources:
        out["mem_limit"] = out["mem_guarantee"] = str(resources["memory"])
    if "gpu" in resources:
        out.update(_gpu(resources["gpu"] or {}, base_gpu, slug, where, base))
    return out


def _clone_hook(urls: tuple[str, ...]) -> dict[str, Any]:
    steps = []
    for url in urls:
        folder = posixpath.basename(url.rstrip("/"))
        folder = folder[:-4] if folder.endswith(".git") else folder
        target = f'"$HOME"/{shlex.quote(folder)}'
        steps.append(f"[ -e {target} ] || git clone --quiet {shlex.quote(url)} {target} || true")
    return {"postStart": {"exec": {"command": ["sh", "-c", "; ".join(steps)]}}}


def _option(option: ProfileOption, base_gpu: Mapping[str, Any], slug: str, ctx: Context) -> dict[str, Any]:
    where = f"profile_options.{option.key}"
    choices: dict[str, Any] = {}
    for choice in option.choices:
        entry: dict[str, Any] = {"display_name": choice.display_name}
        if choice.description:
            entry["description"] = choice.description
        if choice.key == option.default:
            entry["default"] = True
        entry["kubespawner_override"] = translate(choice.override, base_gpu, slug,
                                                  f"{where}.choices.{choice.key}.override", ctx)
        choices[choice.key] = entry
    out: dict[str, Any] = {"display_name": option.display_name, "choices": choices}
    if option.unlisted is not None:
        unlisted = option.unlisted
        try:
            re.compile(anchored(unlisted.validation_regex))
        except re.error as error:
            raise CannotExpress(slug, f"{where}.unlisted_choice.validation_regex", str(error)) from None
        out["unlisted_choice"] = {
            "enabled": True,
            "display_name": unlisted.display_name,
            "validation_regex": anchored(unlisted.validation_regex),
            "validation_message": unlisted.validation_message,
            "kubespawner_override": translate(unlisted.override, base_gpu, slug,
                                              f"{where}.unlisted_choice.override", ctx),
        }
    return out


def profile_entry(profile: Profile, ctx: Context) -> dict[str, Any]:
    """One ``profile_list`` entry for ``profile``."""
    base_gpu = dict(profile.settings.get("resources", {}).get("gpu") or {})
    override = translate(profile.settings, {}, profile.slug, "", ctx, base=True)
    timeout = profile.idle_timeout if profile.idle_timeout is not None else ctx.idle_timeout
    if ctx.idle_timeout is not None and timeout:
        override["args"] = list(idle_shutdown_args(timeout))
    if profile.clone:
        override["lifecycle_hooks"] = _clone_hook(profile.clone)
    entry: dict[str, Any] = {"display_name": profile.display_name, "slug": profile.slug,
                             "description": profile.description}
    if profile.default:
        entry["default"] = True
    entry["kubespawner_override"] = override
    if profile.options:
        entry["profile_options"] = {o.key: _option(o, base_gpu, profile.slug, ctx) for o in profile.options}
    return entry
