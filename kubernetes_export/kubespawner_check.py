"""KubeSpawner's own check of the exported profiles, and the Kubernetes schema's check of its pods.

For every profile and every combination of its choices (and each unlisted value the regex takes
among the listed keys), KubeSpawner normalises the profile list, runs ``load_user_options`` and
``get_pod_manifest``; the pod must have the image, CPU and memory limits and guarantees, GPU count
and node selector Titan's own gate (:func:`spawner.options.resolve_selection`) gives, and be valid against the
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

from core.capacity import HostCapacity
from core.profiles import Profile, ProfileSet
from kubernetes_export.errors import ExportError
from kubernetes_export.options import GPU_RESOURCE, GPU_TYPE_LABEL
from kubernetes_export.profile_list import Context
from spawner.options import OptionsError, Selection, resolve_selection

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: offline, user: {token: offline}}]
contexts: [{name: offline, context: {cluster: offline, user: offline, namespace: jupyterhub}}]
current-context: offline
"""
#: Kubernetes versions the pods are validated against: the oldest the pinned chart supports (its
#: kubeVersion), and the newest kubernetes-validate knows.
OLDEST_KUBERNETES = "1.28.0"
#: Big enough for any profile: Titan's own gate checks the host; a cluster's scheduler does that here.
ANY_HOST = HostCapacity(cpus=1e6, memory=1 << 60)


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


def titan_options(profile: Profile, combo: Mapping[str, str]) -> dict[str, str]:
    """Titan's user_options for a combination (an unlisted value goes under the option's own key)."""
    return {"profile": profile.slug, **{k: v for k, v in combo.items() if k != "--unlisted"}}


def titan_selection(profiles: ProfileSet, options: Mapping[str, str], user: User) -> Selection:
    """Titan's own gate (:func:`spawner.options.resolve_selection`) on a host big enough for anything."""
    gpus = dict.fromkeys(profiles.gpu_types, 1 << 20)
    host = HostCapacity(cpus=ANY_HOST.cpus, memory=ANY_HOST.memory, gpus_total=gpus, gpus_free=gpus)
    return resolve_selection(profiles, options, user.name, [g.name for g in user.groups], host, image_dashboards={})


def titan_refuses(profiles: ProfileSet, options: Mapping[str, str], user: User) -> bool:
    try:
        titan_selection(profiles, options, user)
    except OptionsError:
        return True
    return False


def expected(selection: Selection, ctx: Context) -> dict[str, Any]:
    """What Titan runs for a selection."""
    resources = selection.resources
    gpus = resources.gpu_count if resources.gpu_type else 0
    return {"image": ctx.images[selection.image], "cpu": resources.cpu, "memory": resources.memory,
            "gpus": gpus, "gpu_type": resources.gpu_type if gpus else None}


def observed(pod: Mapping[str, Any], where: str) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    if (limits["cpu"], limits["memory"]) != (requests["cpu"], requests["memory"]):
        raise ExportError(f"{where}: KubeSpawner's guarantees {requests} differ from its limits {limits}")
    gpus = int(limits.get(GPU_RESOURCE, 0))
    return {"image": container["image"], "cpu": float(limits["cpu"]), "memory": int(limits["memory"]),
            "gpus": gpus, "gpu_type": (pod["spec"].get("nodeSelector") or {}).get(GPU_TYPE_LABEL)}


def kubernetes_versions() -> tuple[str, ...]:
    import kubernetes_validate

    return (OLDEST_KUBERNETES, kubernetes_validate.latest_version())


def _validate_pod(pod: Mapping[str, Any], where: str) -> None:
    import kubernetes_validate

    for version in kubernetes_versions():
        try:
            kubernetes_validate.validate(dict(pod), version, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise ExportError(f"{where}: the pod is not valid Kubernetes {version}: {error.message}") from None


async def _refused(profile_list: Any, options: Mapping[str, str], user: User) -> bool:
    """Whether KubeSpawner refuses the options as it validates them: ValueError (an unlisted value,
    an unknown profile), KeyError (an unknown choice), HTTPError (no profile for the user). A value
    that got through and broke a trait later (TraitError) was taken, not refused."""
    from tornado.web import HTTPError

    try:
        await pod_for(profile_list, options, user)
    except (ValueError, KeyError, HTTPError):
        return True
    except Exception:  # noqa: BLE001 - taken, then failed: not a refusal
        return False
    return False


def _member(profile: Profile) -> User:
    if profile.access.everyone or profile.access.users:
        return User(name=sorted(profile.access.users)[0] if profile.access.users else "someone")
    return User(name="member", groups=[Group(sorted(profile.access.groups)[0])])


async def _refusals(profiles: ProfileSet, profile: Profile, profile_list: Any, user: User) -> None:
    """What Titan refuses, KubeSpawner refuses: an unknown choice, a typed value the regex refuses,
    a profile the user may not use."""
    cases = []
    for option in profile.options:
        if option.unlisted is None:
            cases.append(({option.key: "no-such-choice"}, {option.key: "no-such-choice"}, user))
        bad = "not a valid value\n!"
        cases.append(({option.key: bad}, {f"{option.key}--unlisted-choice": bad}, user))
    if not profile.access.everyone:
        cases.append(({}, {}, User(name="outsider")))
    for titan, kube, who in cases:
        titan_options, kube_options = {"profile": profile.slug, **titan}, {"profile": profile.slug, **kube}
        if not titan_refuses(profiles, titan_options, who):
            raise ExportError(f"profile {profile.slug!r}: Titan takes {titan_options} from {who.name!r}; "
                              "the export's refusal checks are out of date")
        if not await _refused(profile_list, kube_options, who):
            raise ExportError(f"profile {profile.slug!r}: KubeSpawner takes {kube_options} from {who.name!r}, "
                              "which Titan refuses")


async def _check(profiles: ProfileSet, profile_list: Any, ctx: Context) -> list[str]:
    pods = 0
    for profile in profiles.profiles:
        user = _member(profile)
        for combo in combinations(profile):
            options = user_options(profile, combo)
            where = f"profile {profile.slug!r} with {options}"
            try:
                want = expected(titan_selection(profiles, titan_options(profile, combo), user), ctx)
            except OptionsError as error:
                raise ExportError(f"{where}: Titan refuses it: {error}") from None
            pod = await pod_for(profile_list, options, user)
            got = observed(pod, where)
            differ = [k for k in want if want[k] != got[k]]
            if differ:
                raise ExportError(f"{where}: KubeSpawner gives {', '.join(differ)} = {[got[k] for k in differ]}, "
                                  f"Titan {[want[k] for k in differ]}: Kubernetes cannot express this combination "
                                  "of choices")
            _validate_pod(pod, where)
            pods += 1
        await _refusals(profiles, profile, profile_list, user)
    return [f"KubeSpawner built {pods} pods, one per profile and combination of choices, with the image, "
            "limits, guarantees, GPUs and node selector Titan's own gate gives, and refused what Titan refuses",
            f"each pod is valid against the Kubernetes {' and '.join(kubernetes_versions())} OpenAPI schemas "
            "(kubernetes-validate)"]


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
