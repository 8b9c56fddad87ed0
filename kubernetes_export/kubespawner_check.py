"""KubeSpawner's own check of the exported profiles, and the Kubernetes schema's check of its pods.

For every profile and every combination of its choices (and each unlisted value the regex takes
among the listed keys), KubeSpawner normalises the profile list, runs ``load_user_options`` and
``get_pod_manifest``; the pod must have the image, CPU and memory limits and guarantees, GPU count
and node selector Titan's own :func:`spawner.options.settings_for` gives, and be valid against the
Kubernetes OpenAPI schema (kubernetes-validate, offline). What Titan refuses (an unknown choice, an
unlisted value its regex refuses, a profile the user may not use) KubeSpawner must refuse too.

Needs ``jupyterhub-kubespawner`` and ``kubernetes-validate`` (the test extra); no cluster: KubeSpawner
is pointed at a kubeconfig naming an address nothing listens on, and makes no API call here.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_export.errors import ExportError
from kubernetes_export.options import GPU_RESOURCE, GPU_TYPE_LABEL
from kubernetes_export.profile_list import Context
from spawner.options import settings_for
from spawner.profiles import Profile, ProfileSet, resources_from_settings

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: offline, user: {token: offline}}]
contexts: [{name: offline, context: {cluster: offline, user: offline, namespace: jupyterhub}}]
current-context: offline
"""
KUBERNETES_VERSION = "1.32.0"  # the oldest the pinned chart supports (kubeVersion >=1.32 at HEAD; 1.28 at 4.4.0)


@dataclass
class Group:
    name: str


@dataclass
class User:
    """What KubeSpawner reads of a hub user."""

    name: str
    groups: list[Group] = field(default_factory=list)

    @property
    def escaped_name(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return f"/user/{self.name}/"

    @property
    def id(self) -> int:
        return 1


@contextmanager
def offline_kubeconfig() -> Iterator[None]:
    """KUBECONFIG pointing at no real cluster, for the duration."""
    previous = os.environ.get("KUBECONFIG")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config"
        path.write_text(KUBECONFIG)
        os.environ["KUBECONFIG"] = str(path)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = previous


def combinations(profile: Profile) -> list[dict[str, str]]:
    """Every combination of listed choices; then, per unlisted choice, each listed key its regex takes."""
    keys = [o.key for o in profile.options]
    combos = [dict(zip(keys, values, strict=True))
              for values in itertools.product(*([c.key for c in o.choices] for o in profile.options))]
    for option in profile.options:
        if option.unlisted is not None:
            combos += [{option.key: c.key, "--unlisted": option.key} for c in option.choices
                       if option.unlisted.accepts(c.key)]
    return combos or [{}]


def user_options(profile: Profile, combo: Mapping[str, str]) -> dict[str, str]:
    """KubeSpawner's user_options for a combination (an unlisted value goes to ``<key>--unlisted-choice``)."""
    options = {"profile": profile.slug}
    for key, value in combo.items():
        if key == "--unlisted":
            continue
        options[f"{key}--unlisted-choice" if combo.get("--unlisted") == key else key] = value
    return options


async def pod_for(profile_list: Any, options: Mapping[str, str], user: User) -> dict[str, Any]:
    """The pod KubeSpawner builds for ``options``; its errors propagate."""
    from kubernetes_asyncio.client import ApiClient
    from kubespawner import KubeSpawner

    spawner = KubeSpawner(_mock=True, user=user, profile_list=profile_list, cmd=["jupyterhub-singleuser"])
    spawner.user_options = dict(options)
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        data: dict[str, Any] = client.sanitize_for_serialization(pod)
    return data


def expected(profile: Profile, combo: Mapping[str, str], ctx: Context) -> dict[str, Any]:
    """What Titan would run for the combination."""
    settings = settings_for(profile, {k: v for k, v in combo.items() if k != "--unlisted"})
    resources = resources_from_settings(settings)
    gpus = resources.gpu_count if resources.gpu_type else 0
    return {"image": ctx.images[str(settings["image"])], "cpu": resources.cpu, "memory": resources.memory,
            "gpus": gpus, "gpu_type": resources.gpu_type if gpus else None}


def observed(pod: Mapping[str, Any]) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    if (limits["cpu"], limits["memory"]) != (requests["cpu"], requests["memory"]):
        raise AssertionError(f"guarantees {requests} differ from limits {limits}")
    gpus = int(limits.get(GPU_RESOURCE, 0))
    return {"image": container["image"], "cpu": float(limits["cpu"]), "memory": int(limits["memory"]),
            "gpus": gpus, "gpu_type": (pod["spec"].get("nodeSelector") or {}).get(GPU_TYPE_LABEL)}


def _validate_pod(pod: Mapping[str, Any], where: str) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(dict(pod), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise ExportError(f"{where}: the pod is not valid Kubernetes: {error.message}") from None


async def _refused(profile_list: Any, options: Mapping[str, str], user: User) -> bool:
    try:
        await pod_for(profile_list, options, user)
    except Exception:  # noqa: BLE001 - any refusal counts: KubeSpawner raises ValueError, KeyError, HTTPError
        return True
    return False


def _member(profile: Profile) -> User:
    if profile.access.everyone or profile.access.users:
        return User(name=sorted(profile.access.users)[0] if profile.access.users else "someone")
    return User(name="member", groups=[Group(sorted(profile.access.groups)[0])])


async def _check(profiles: ProfileSet, profile_list: Any, ctx: Context) -> list[str]:
    pods = 0
    for profile in profiles.profiles:
        user = _member(profile)
        for combo in combinations(profile):
            options = user_options(profile, combo)
            where = f"profile {profile.slug!r} with {options}"
            pod = await pod_for(profile_list, options, user)
            want, got = expected(profile, combo, ctx), observed(pod)
            if want != got:
                keys = ", ".join(k for k in want if want[k] != got[k])
                raise ExportError(f"{where}: KubeSpawner gives {keys} = {[got[k] for k in want if want[k] != got[k]]}, "
                                  f"Titan {[want[k] for k in want if want[k] != got[k]]}: Kubernetes cannot express "
                                  "this combination of choices")
            _validate_pod(pod, where)
            pods += 1
        for option in profile.options:
            bad = {"profile": profile.slug, option.key: "no-such-choice"}
            if option.unlisted is None and not await _refused(profile_list, bad, user):
                raise ExportError(f"profile {profile.slug!r}: KubeSpawner takes {bad} that Titan refuses")
            typed = {"profile": profile.slug, f"{option.key}--unlisted-choice": "not a valid value\n!"}
            if not await _refused(profile_list, typed, user):
                raise ExportError(f"profile {profile.slug!r}: KubeSpawner takes {typed} that Titan refuses")
        if not profile.access.everyone and not await _refused(profile_list, {"profile": profile.slug},
                                                                 User(name="outsider")):
            raise ExportError(f"profile {profile.slug!r}: KubeSpawner lets a user outside its access start it")
    return [f"KubeSpawner built {pods} pods, one per profile and combination of choices, with the image, "
            "limits, guarantees, GPUs and node selector Titan gives, and refused what Titan refuses",
            f"each pod is valid against the Kubernetes {KUBERNETES_VERSION} OpenAPI schema (kubernetes-validate)"]


def check(profiles: ProfileSet, profile_list: Sequence[Mapping[str, Any]], extra_config: Mapping[str, str],
          ctx: Context) -> list[str]:
    """Run the checks; :class:`ExportError` on the first disagreement. Returns what was checked."""
    namespace: dict[str, Any] = {}
    from traitlets.config import Config

    config = Config()
    config.KubeSpawner.profile_list = [dict(p) for p in profile_list]
    namespace["c"] = config
    for key in sorted(extra_config):
        exec(compile(extra_config[key], f"hub.extraConfig.{key}", "exec"), namespace)  # noqa: S102 - our own code
    with offline_kubeconfig():
        return asyncio.run(_check(profiles, config.KubeSpawner.profile_list, ctx))
