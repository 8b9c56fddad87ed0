"""REPORT.md: how to install the charts, and everything that does not carry over by itself. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.images import hub_version
from core.profiles import resources_from_settings
from core.units import format_cpu, format_duration, format_memory
from kubernetes_export.hub_values import context, hub_image, registry_image
from kubernetes_export.options import CHART_HUB_JUPYTERHUB, CHART_VERSION, GPU_RESOURCE, GPU_TYPE_LABEL, ExportOptions
from kubernetes_export.source import Deployment

HUB_DOCKERFILE = "hub.Dockerfile"
SERVICE_SCRIPT = "titan-service.sh"


def _install(deployment: Deployment, options: ExportOptions) -> list[str]:
    ns = options.namespace
    secrets = [] if options.include_secrets else [
        '  --set hub.config.GitHubOAuthenticator.client_id="$OAUTH_CLIENT_ID" \\',
        '  --set hub.config.GitHubOAuthenticator.client_secret="$OAUTH_CLIENT_SECRET" \\']
    lines = ["## Install", "", "```sh",
             "helm repo add jupyterhub https://hub.jupyter.org/helm-chart/ && helm repo update",
             f"helm upgrade --install {options.hub_release} jupyterhub/jupyterhub --version {options.chart_version} \\",
             f"  --namespace {ns} --create-namespace \\", *secrets, "  --values values.yaml"]
    if deployment.settings.gateway["enabled"]:
        lines += ["helm repo add dask https://helm.dask.org/ && helm repo update",
                  f"helm upgrade --install {options.gateway_release} dask/dask-gateway "
                  f"--version {options.gateway_chart_version} \\",
                  f"  --namespace {ns} --values dask-gateway-values.yaml"]
    lines += ["```", ""]
    if not options.include_secrets:
        lines += ["values.yaml holds placeholders for the GitHub OAuth app's client id and secret: pass them with "
                  "`--set` as above (or rerun the export with `--include-secrets` and keep the file out of git).", ""]
    if options.chart_version != CHART_VERSION:
        lines += [f"**Chart version {options.chart_version}** was asked for; the values were checked against the "
                  f"schema of {CHART_VERSION} (the vendored one). Check `helm lint` with the new version.", ""]
    return lines


def _images(deployment: Deployment, options: ExportOptions) -> list[str]:
    hub = hub_image(options)
    lines = ["## Images: push them where the cluster can pull", "",
             "Titan builds its images on the old host (`make images`); the cluster pulls from "
             f"`{options.registry}`. On the old host:", "", "```sh"]
    for local in deployment.local_images.values():
        remote = registry_image(options, local)
        lines += [f"docker tag {local} {remote}", f"docker push {remote}"]
    lines += [f"docker build -t {hub['name']}:{hub['tag']} -f {HUB_DOCKERFILE} .",
              f"docker push {hub['name']}:{hub['tag']}", "```", "",
              f"The chart {CHART_VERSION}'s hub runs JupyterHub {CHART_HUB_JUPYTERHUB}; Titan's single-user images "
              f"run JupyterHub {hub_version()}. `{HUB_DOCKERFILE}` rebuilds the chart's hub image with JupyterHub "
              f"{hub_version()} (values.yaml: hub.image); the hub and the servers must run the same major version.", ""]
    return lines


def _gpus(deployment: Deployment) -> list[str]:
    profiles = deployment.profiles
    if not profiles.gpu_types:
        return []
    lines = ["## GPU nodes", "",
             f"Servers ask for `{GPU_RESOURCE}` (NVIDIA's device plugin or GPU operator must run) and select "
             f"their GPU type by the node label `{GPU_TYPE_LABEL}`, which Kubernetes does not set: label each GPU "
             "node by the model its GPUs are (`kubectl get nodes -L nvidia.com/gpu.product` shows them).", "",
             "| GPU type | Titan matched the model name by | label the node with |", "| --- | --- | --- |"]
    for name, match in profiles.gpu_types.items():
        lines.append(f"| {name} ({profiles.gpu_display_names[name]}) | `{match}` | "
                     f"`kubectl label node NODE {GPU_TYPE_LABEL}={name}` |")
    lines += ["", "Optionally keep other pods off GPU nodes: `kubectl taint node NODE "
              f"{GPU_TYPE_LABEL}=TYPE:NoSchedule` (GPU servers tolerate it, and `{GPU_RESOURCE}`).", ""]
    return lines


def _profiles(deployment: Deployment, options: ExportOptions) -> list[str]:
    ctx = context(deployment, options)
    lines = ["## Profiles", "", "| profile | image | CPU | memory | GPUs | idle timeout | who |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in deployment.profiles.profiles:
        r = resources_from_settings(p.settings)
        gpus = f"{r.gpu_count} × {r.gpu_type}" if r.gpu_type and r.gpu_count else "none"
        timeout = p.idle_timeout if p.idle_timeout is not None else ctx.idle_timeout
        idle = format_duration(timeout) if ctx.idle_timeout is not None and timeout else "never"
        who = "everyone" if p.access.everyone else ", ".join(sorted(p.access.groups | p.access.users))
        options_note = f" (+ {', '.join(o.key for o in p.options)})" if p.options else ""
        lines.append(f"| {p.slug}{options_note} | {ctx.images[str(p.settings['image'])]} | {format_cpu(r.cpu)} | "
                     f"{format_memory(r.memory)} | {gpus} | {idle} | {who} |")
    return [*lines, ""]


def _not_carried(deployment: Deployment) -> list[str]:
    settings = deployment.settings
    items = [
        "Home directories: Titan's Docker volumes (`" + (settings.home_volume_template or
                                                         f"{settings.deployment}-home-{{username}}") + "`) "
        "are not moved; the chart gives each user a new volume (singleuser.storage). Copy the data across "
        "(e.g. `docker run -v VOLUME:/from ... tar` into the user's PVC) before users start.",
        "Host capacity: Titan refused a start the host could not hold; on Kubernetes the pod waits for a node "
        "(up to the chart's singleuser.startTimeout). Guarantees equal the limits, so nodes are never "
        "overcommitted.",
        "Process limit per server (resources.processes, default 4096): set the kubelet's podPidsLimit.",
        "Per-user networks: the chart's singleuser.networkPolicy (on by default) isolates servers instead.",
        "Development login (auth.dev_password) and the titan-admin and titan-metrics services are not exported.",
    ]
    if any(p.clone for p in deployment.profiles.profiles):
        items.append("clone: a postStart hook clones each repository with git, without the user's GitHub token "
                     "(Titan's service cloned private ones too); only public repositories are cloned.")
    if settings.gateway["enabled"]:
        items += [
            "Dask limits: Dask Gateway limits each cluster, not a user's clusters together. max_cores, max_memory "
            "and max_workers become per-cluster limits (cluster_max_*); max_clusters has no equivalent.",
            "Dask images and GPU types: Titan ran a cluster in its server's image and gave GPU workers the server's "
            "GPU type; here servers set the `image` cluster option by default "
            "(DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE) and GPU workers need `worker_gpu_type`.",
        ]
    if not settings.culling["enabled"]:
        items.append("Culling is off in titan.yaml: the chart's culler is off and servers do not stop themselves.")
    return ["## What does not carry over", "", *(f"- {item}" for item in items), ""]


def _stays(deployment: Deployment, options: ExportOptions) -> list[str]:
    if not deployment.settings.service["enabled"]:
        return []
    return ["## What stays on the old host", "",
            "The Titan service (git autosave, share links, published reports and dashboards) works on the old "
            "host's Docker volumes and engine, so it stays there, as an external service of the new hub "
            f"(values.yaml: hub.services.titan, url {options.titan_service_url}, and its role in hub.loadRoles). "
            f"Run `{SERVICE_SCRIPT}` on the old host (under systemd, for instance): it builds the service's "
            "image from `titan-service.Dockerfile` if missing (`docker build --network host -f "
            "titan-service.Dockerfile -t titan/service <Titan repository>`), reads the service's API "
            "token from the chart's `hub` Secret with kubectl and runs the container (Docker socket, "
            "/var/lib/docker/volumes and the state dir mounted) publishing "
            f"port {deployment.settings.service['port']}. Autosave and sharing of servers that run in the "
            "cluster need the homes reachable from the old host; until then the service keeps serving what "
            "was saved and published before the move.", ""]


def report(deployment: Deployment, options: ExportOptions, checks: Sequence[str]) -> str:
    """The whole report; ``checks`` says what was validated before anything was written."""
    lines = [f"# Moving {deployment.settings.deployment} to Kubernetes", "",
             f"Generated by `python -m kubernetes_export` from {deployment.settings.source} and "
             f"{deployment.profiles_dir}: `values.yaml` for Zero to JupyterHub {options.chart_version}"
             + (f", `dask-gateway-values.yaml` for Dask Gateway {options.gateway_chart_version}"
                if deployment.settings.gateway["enabled"] else "") + ".", ""]
    lines += _install(deployment, options) + _images(deployment, options) + _gpus(deployment)
    lines += _profiles(deployment, options) + _not_carried(deployment) + _stays(deployment, options)
    lines += ["## Checked before writing", "", *(f"- {c}" for c in checks), ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
