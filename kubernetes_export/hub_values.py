"""``values.yaml`` for the Zero to JupyterHub chart, built from the deployment. Pure."""

from __future__ import annotations

from typing import Any

from core.images import hub_version
from kubernetes_export import access, login
from kubernetes_export.options import CHART_VERSION, ExportOptions
from kubernetes_export.profile_list import Context, profile_entry
from kubernetes_export.source import Deployment
from service import hubconfig as titan_service
from titan.culling import backstop_timeout

#: The KubeSpawner the export is checked against, installed into the hub image with Titan's JupyterHub.
KUBESPAWNER_VERSION = "7.1.0"
OAUTHENTICATOR_VERSION = "17.4.0"
GATEWAY_SERVICE = "dask-gateway"
GATEWAY_PREFIX = f"/services/{GATEWAY_SERVICE}"


def registry_image(options: ExportOptions, local_tag: str) -> str:
    """``titan/minimal:3f2a…`` → ``<registry>/minimal:3f2a…``."""
    repository, tag = local_tag.rsplit(":", 1)
    return f"{options.registry.rstrip('/')}/{repository.split('/')[-1]}:{tag}"


def hub_image(options: ExportOptions) -> dict[str, str]:
    """The chart's hub image rebuilt with the JupyterHub Titan's single-user images run."""
    return {"name": f"{options.registry.rstrip('/')}/k8s-hub", "tag": f"{CHART_VERSION}-jupyterhub-{hub_version()}"}


def hub_dockerfile() -> str:
    return (f"# The Zero to JupyterHub {CHART_VERSION} hub with the JupyterHub of Titan's single-user images.\n"
            f"FROM quay.io/jupyterhub/k8s-hub:{CHART_VERSION}\n"
            f'RUN pip install --no-cache-dir "jupyterhub=={hub_version()}" '
            f'"jupyterhub-kubespawner=={KUBESPAWNER_VERSION}" "oauthenticator=={OAUTHENTICATOR_VERSION}"\n')


def gateway_fullname(options: ExportOptions) -> str:
    """The Dask Gateway chart's resource name prefix for the release (Helm's fullname rule)."""
    release = options.gateway_release
    return release if "dask-gateway" in release else f"{release}-dask-gateway"


def context(deployment: Deployment, options: ExportOptions) -> Context:
    settings = deployment.settings
    return Context(
        images={name: registry_image(options, tag) for name, tag in deployment.local_images.items()},
        idle_timeout=float(settings.culling["timeout"]) if settings.culling["enabled"] else None,
        dask_image_env=bool(settings.gateway["enabled"]),
    )


def _services(deployment: Deployment, options: ExportOptions) -> dict[str, Any]:
    services: dict[str, Any] = {}
    if deployment.settings.service["enabled"]:
        services[titan_service.SERVICE_NAME] = {
            "url": options.titan_service_url.rstrip("/"),
            "display": True,
            "info": {"description": "Git autosave of your repositories, and share links"},
            "oauth_no_confirm": True,
        }
    if deployment.settings.gateway["enabled"]:
        services[GATEWAY_SERVICE] = {"url": f"http://traefik-{gateway_fullname(options)}.{options.namespace}",
                                     "display": False}
    return services


def _roles(deployment: Deployment) -> dict[str, Any]:
    user_scopes = ["self"]
    roles: dict[str, Any] = {}
    if deployment.settings.service["enabled"]:
        role = titan_service.role()
        roles[role["name"]] = {k: v for k, v in role.items() if k != "name"}
        user_scopes.append(titan_service.ACCESS_SCOPE)
    if deployment.settings.gateway["enabled"]:
        user_scopes.append(f"access:services!service={GATEWAY_SERVICE}")
    if len(user_scopes) > 1:
        roles["user"] = {"description": "Standard user privileges, and Titan's services", "scopes": user_scopes}
    return roles


def _gateway_env(options: ExportOptions) -> dict[str, str]:
    name = gateway_fullname(options)
    return {
        "DASK_GATEWAY__ADDRESS": f"http://proxy-public{GATEWAY_PREFIX}",
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://traefik-{name}.{options.namespace}:80",
        "DASK_GATEWAY__PUBLIC_ADDRESS": f"{GATEWAY_PREFIX}/",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }


def _cull(deployment: Deployment) -> dict[str, Any]:
    culling = deployment.settings.culling
    if not culling["enabled"]:
        return {"enabled": False}
    timeout = backstop_timeout(deployment.profiles, float(culling["timeout"]))
    return {"enabled": True, "timeout": timeout, "every": min(int(culling["every"]), max(1, timeout // 2)),
            "users": False, "removeNamedServers": False}


def values(deployment: Deployment, options: ExportOptions) -> dict[str, Any]:
    """The chart's values: hub (login, services, roles, access), single-user profiles, culler."""
    settings = deployment.settings
    ctx = context(deployment, options)
    default_image = ctx.images[str(deployment.profiles.default.settings["image"])]
    name, tag = default_image.rsplit(":", 1)
    hub: dict[str, Any] = {
        "image": hub_image(options),
        "config": login.github_config(settings, options),
        "allowNamedServers": True,
        "namedServerLimitPerUser": settings.named_server_limit_per_user,
        "extraConfig": {login.EXTRA_CONFIG_KEY: login.GROUPS_CODE, **access.extra_config(deployment.profiles)},
    }
    services = _services(deployment, options)
    if services:
        hub["services"] = services
    roles = _roles(deployment)
    if roles:
        hub["loadRoles"] = roles
    singleuser: dict[str, Any] = {
        "image": {"name": name, "tag": tag},
        "defaultUrl": "/lab",
        "profileList": [profile_entry(p, ctx) for p in deployment.profiles.profiles],
    }
    if settings.gateway["enabled"]:
        singleuser["extraEnv"] = _gateway_env(options)
    return {"hub": hub, "singleuser": singleuser, "cull": _cull(deployment)}
