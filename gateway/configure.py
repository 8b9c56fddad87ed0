"""Titan's settings → dask-gateway-server configuration (the body of gateway/config.py).

The private API (``gateway.api_port``) listens on 127.0.0.1 (the hub and the Titan service call it);
the HTTP proxy clients use (``gateway.proxy_port``, under the hub's service prefix) and the TLS proxy
to schedulers (``gateway.scheduler_proxy_port``) listen on the Titan address (core.network), where
servers and schedulers reach them. Nothing listens on every interface. The database and its
encryption key live in the state directory (key file mode 0600), as do the clusters' TLS files;
clusters keep running across a gateway restart. Workers' GPUs are claimed in the spawner's GPU
allocation database, over the same inventory.
"""

from __future__ import annotations

import os
from pathlib import Path

from traitlets.config import Config

from core.settings import Settings
from core.state import ensure_state_dir, secret_file
from gateway.hub import SERVICE_NAME, SERVICE_PREFIX, control_token, listen_address

GPU_DB_FILE = "gpu-allocations.sqlite"  # in the state directory, as c.TitanDockerSpawner.gpu_db_url has it
TLS_DIR_NAME = "dask-tls"  # in the state directory: one directory per cluster


def configure(c: Config, settings: Settings, address: str) -> None:
    """``address``: the Titan address (core.network.titan_address); on Swarm, ``swarm.hub_address``
    replaces it."""
    gateway = settings.gateway
    state = ensure_state_dir(settings.state_dir)

    # On Swarm, schedulers are services on the swarm's nodes (gateway.swarm): the proxies, and the API
    # they call under the HTTP proxy, listen on the hub host's address on the nodes' network.
    address = listen_address(settings, address)
    if settings.engine == "swarm":
        c.DockerBackend.engine_kind = "swarm"
        c.DockerBackend.swarm_manager = settings.swarm["manager"]
        c.DockerBackend.swarm_published_ports = settings.swarm["published_ports"]
    c.DaskGateway.address = f"127.0.0.1:{gateway['api_port']}"
    c.DaskGateway.log_level = gateway["log_level"]
    c.Proxy.address = f"{address}:{gateway['proxy_port']}"
    c.Proxy.tcp_address = f"{address}:{gateway['scheduler_proxy_port']}"
    c.Proxy.prefix = SERVICE_PREFIX

    # Users: JupyterHub tokens holding access:services!service=dask-gateway, nothing else
    # (the stock JupyterHubAuthenticator, answering 401 to tokens the hub does not know).
    c.DaskGateway.authenticator_class = "gateway.auth.HubAuthenticator"
    c.JupyterHubAuthenticator.jupyterhub_service_name = SERVICE_NAME
    c.JupyterHubAuthenticator.use_service_access_scopes = True

    c.DaskGateway.backend_class = "gateway.backend.DockerBackend"
    c.DockerBackend.deployment = settings.deployment
    c.DockerBackend.dashboard_gate_url = f"http://127.0.0.1:{gateway['api_port']}"
    c.DockerBackend.profiles_dir = str(settings.profiles_dir)
    c.DockerBackend.db_url = f"sqlite:///{private_file(state / 'dask-gateway.sqlite')}"
    c.DockerBackend.db_encrypt_keys = [bytes.fromhex(secret_file(state / "dask-gateway-db-key"))]
    c.DockerBackend.stop_clusters_on_shutdown = False  # a restart keeps clusters running
    # Each cluster's TLS certificate and key, bind-mounted read-only into its containers (0600 files
    # of their user, in a directory no one else on the host can reach: the state directory is 0700).
    c.DockerBackend.tls_dir = str(state / TLS_DIR_NAME)
    # Workers' GPUs come from the spawner's own allocation table (jupyterhub_config.py: the same file).
    c.DockerBackend.gpu_db_url = f"sqlite:///{state / GPU_DB_FILE}"
    c.DockerBackend.gpu_inventory_xml = settings.gpu_inventory_xml
    c.DockerBackend.control_token = control_token(settings)
    c.DockerBackend.server_check_period = float(gateway["server_check_period"])
    c.DockerBackend.cluster_status_period = 5.0
    c.DockerBackend.worker_status_period = 5.0
    c.DockerBackend.cluster_start_timeout = 120.0
    c.DockerBackend.worker_start_timeout = 120.0

    c.ClusterConfig.idle_timeout = float(gateway["idle_timeout"])


def private_file(path: Path) -> Path:
    """``path``, created empty if absent, readable by its owner only (sqlite takes an empty file)."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)
    return path
