"""Titan's JupyterHub configuration: wiring only.

Reads titan.yaml (path in TITAN_SETTINGS) through core.settings and hands each value to the
part that owns it. No logic lives here.
"""
# ruff: noqa: F821  (`c` is provided by JupyterHub)

import os
from dataclasses import replace
from pathlib import Path

from core.images import image_tag
from core.network import titan_address
from core.settings import REPO_ROOT, load_settings
from core.state import ensure_state_dir, secret_file
from core.supervise import supervised
from spawner.consent import hub_no_confirm_clients
from titan import admin_api as titan_admin_api
from titan import culling as titan_culling
from titan import hublog as titan_hublog
from titan import monitoring as titan_monitoring
from titan.homes import resolve_home_template

settings = load_settings()
state = ensure_state_dir(settings.state_dir)
# Homes are <deployment>-home-<user> (titan.homes: an install from before keeps its users' data).
settings = replace(settings, home_volume_template=resolve_home_template(
    state, settings.deployment, settings.home_volume_template, lambda: image_tag("minimal")))

# ---- networks -------------------------------------------------------------------------
# Each user's servers and Dask containers share a Docker network of their own (core.network); the
# deployment's own network gives this host the Titan address, where the hub API, the gateway and the
# Titan service listen for containers. Nothing listens on every interface.
# On a swarm (engine: swarm) servers run on other hosts: they reach this host at swarm.hub_address,
# and each user's network is an overlay across the nodes (docs/swarm-network.md).
address = settings.swarm["hub_address"] if settings.engine == "swarm" else titan_address(settings.network_plan)
c.TitanDockerSpawner.network_pool = settings.network["pool"]
c.TitanDockerSpawner.network_subnet_prefix = settings.network["subnet_prefix"]

# ---- hub, proxy, database -------------------------------------------------------------
c.JupyterHub.bind_url = settings.public_url
c.JupyterHub.hub_bind_url = f"http://{address}:{settings.hub_port}"
c.JupyterHub.hub_connect_url = c.JupyterHub.hub_bind_url
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
secret_file(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.JupyterHub.log_level = settings.log_level
# A user's refused options are logged at WARNING, not as the hub's ERROR (titan/hublog.py).
c.JupyterHub.logging_config = titan_hublog.LOGGING_CONFIG
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
# The proxy and every managed service run through core.supervise: they end with the hub, however the
# hub ends, and state/pids/ names them for `make up` and `make down` (titan.lifecycle).
c.ConfigurableHTTPProxy.command = supervised(state, "proxy",
                                             [str(REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy")])
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
os.environ.setdefault("JUPYTERHUB_CRYPT_KEY", secret_file(state / "crypt-key"))

# ---- login ----------------------------------------------------------------------------
# auth_state (the GitHub token, teams and user) is encrypted with JUPYTERHUB_CRYPT_KEY (above).
c.Authenticator.enable_auth_state = True
c.JupyterHub.template_paths = [str(Path(REPO_ROOT, "titan", "templates"))]
if settings.github_configured:
    github = settings.github
    c.JupyterHub.authenticator_class = "titan.auth.TitanGitHubOAuthenticator"
    c.TitanGitHubOAuthenticator.client_id = github["client_id"]
    c.TitanGitHubOAuthenticator.client_secret = github["client_secret"]
    c.TitanGitHubOAuthenticator.oauth_callback_url = github["callback_url"]
    c.TitanGitHubOAuthenticator.github_url = github["url"]
    # Nobody gets in without an allow rule: allow_all stays False (start-up logs who may log in).
    c.TitanGitHubOAuthenticator.allowed_organizations = set(github["allowed_organizations"])
    c.TitanGitHubOAuthenticator.allowed_users = {name.lower() for name in github["allowed_users"]}
    c.TitanGitHubOAuthenticator.admin_users = {name.lower() for name in settings.admin_users}
    c.TitanGitHubOAuthenticator.admin_team = github["admin_team"]
    c.TitanGitHubOAuthenticator.autosave_push = github["autosave_push"]
    c.TitanGitHubOAuthenticator.auth_refresh_age = github["refresh_age"]
    c.JupyterHub.template_vars = {"titan_dev_login": False, "titan_github_url": github["url"]}
else:
    c.JupyterHub.authenticator_class = "dummy"
    c.Authenticator.admin_users = set(settings.admin_users)
    c.DummyAuthenticator.allow_all = True
    if settings.dev_password:
        c.DummyAuthenticator.password = settings.dev_password
    c.JupyterHub.template_vars = {"titan_dev_login": True, "titan_dev_password": bool(settings.dev_password)}

# ---- servers --------------------------------------------------------------------------
c.JupyterHub.spawner_class = "titan-swarm" if settings.engine == "swarm" else "titan-docker"
c.TitanSwarmSpawner.manager = settings.swarm["manager"]
c.TitanSwarmSpawner.published_ports = settings.swarm["published_ports"]
c.TitanSwarmSpawner.registry = settings.swarm["registry"]
c.TitanDockerSpawner.homes_root = settings.swarm["homes_root"]
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = settings.named_server_limit_per_user
c.Spawner.start_timeout = settings.start_timeout
c.Spawner.http_timeout = settings.start_timeout
c.TitanDockerSpawner.deployment = settings.deployment
c.TitanDockerSpawner.profiles_dir = str(settings.profiles_dir)
c.TitanDockerSpawner.home_volume_template = settings.home_volume_template
c.TitanDockerSpawner.host_cpus = settings.host_cpus
c.TitanDockerSpawner.host_memory = settings.host_memory
c.TitanDockerSpawner.gpu_db_url = f"sqlite:///{state / 'gpu-allocations.sqlite'}"
c.TitanDockerSpawner.gpu_inventory_xml = settings.gpu_inventory_xml
# A dashboard's viewers go straight to it, with no "Authorize access" page (spawner/consent.py);
# every other server, a shared JupyterLab too, still asks.
c.JupyterHub.tornado_settings = {"oauth_no_confirm_list": hub_no_confirm_clients()}

# ---- services -------------------------------------------------------------------------
# titan-admin: the token automation (bench/, Ansible checks) uses; least privilege. It creates users
# through titan/admin_api.py (admin:users would let it read every user's GitHub token).
c.JupyterHub.custom_scopes = titan_admin_api.CUSTOM_SCOPES
c.JupyterHub.extra_handlers = [(titan_admin_api.ROUTE, titan_admin_api.CreateUserHandler)]
c.JupyterHub.services = [
    {"name": "titan-admin", "api_token": secret_file(state / "admin-token")},
]
c.JupyterHub.load_roles = [
    {
        "name": "titan-admin",
        "description": "Automation: create users and groups, start and stop servers, issue user tokens; "
                       "never users' auth state.",
        "scopes": [titan_admin_api.CREATE_USERS_SCOPE, "users", "delete:users", "admin:groups", "admin:servers",
                   "tokens", "read:hub", "read:shares"],
        "services": ["titan-admin"],
    },
]

# ---- dask gateway ---------------------------------------------------------------------
# dask-gateway-server as a hub-managed service (gateway/hub.py builds the pieces): its private API on
# 127.0.0.1, its proxies on the Titan address.
# It needs no hub scopes of its own: it checks each caller's token against the hub and reads
# from the Docker engine which servers run. Users (and so their servers' tokens) get
# access:services!service=dask-gateway; servers get DASK_GATEWAY__* from the spawner.
if settings.gateway["enabled"]:
    from gateway import hub as dask_gateway_hub

    c.JupyterHub.services.append(dask_gateway_hub.service(settings, address))
    c.JupyterHub.load_roles = dask_gateway_hub.with_user_access(c.JupyterHub.load_roles)
    c.Spawner.server_token_scopes = dask_gateway_hub.with_server_token_scopes(
        list(c.Spawner.server_token_scopes) if "server_token_scopes" in c.Spawner else [])
    c.TitanDockerSpawner.dask_gateway = dask_gateway_hub.spawner_link(settings, address)

# ---- titan service --------------------------------------------------------------------
# The hub-managed service at /services/titan/ (git autosave; service/hubconfig.py builds the
# pieces). Its role has exactly list:users, read:users, read:servers and admin:auth_state; users get
# access:services!service=titan so they can sign in to its pages and API.
if settings.service["enabled"]:
    from service import hubconfig as titan_service

    c.JupyterHub.services.append(titan_service.service(settings, address))
    c.TitanDockerSpawner.titan_service_url = f"http://{address}:{settings.service['port']}/services/titan/"
    c.JupyterHub.load_roles = titan_service.with_service_roles(c.JupyterHub.load_roles)
    # A server calls the service as its owner (JupyterLab's Share… and autosave status, titan_lab).
    c.Spawner.server_token_scopes = titan_service.with_server_token_scopes(
        list(c.Spawner.server_token_scopes) if "server_token_scopes" in c.Spawner else [])

# ---- idle culling ---------------------------------------------------------------------
# Each server stops itself after its profile's idle_timeout (default culling.timeout), through
# jupyter_server's own idle settings; the hub notices within spawner.poll_interval and stops its
# Dask clusters. jupyterhub-idle-culler (a managed service, the exact role of its README:
# list:users, read:users:activity, read:servers, delete:servers) culls at the longest profile
# timeout as the backstop. titan/culling.py builds the pieces.
c.Spawner.poll_interval = settings.poll_interval
for _key, _value in titan_culling.spawner_settings(settings).items():
    setattr(c.TitanDockerSpawner, _key, _value)
if settings.culling["enabled"]:
    c.JupyterHub.services.append(titan_culling.service(settings))
    c.JupyterHub.load_roles = titan_culling.with_culler_role(c.JupyterHub.load_roles)

# ---- metrics --------------------------------------------------------------------------
# /hub/metrics (JupyterHub's and the spawner's, spawner/metrics.py) and /services/titan/metrics
# need a token with read:metrics: state/metrics-token, of the titan-metrics service (read:metrics
# and access to the titan service, nothing else) is the one to give Prometheus.
c.JupyterHub.services.append(titan_monitoring.service(state))
c.JupyterHub.load_roles = [
    *(r for r in c.JupyterHub.load_roles if r.get("name") != titan_monitoring.ROLE_NAME),
    titan_monitoring.role("titan" if settings.service["enabled"] else None),
]
