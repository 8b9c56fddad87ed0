"""JupyterHub config for the baseline hub of bench/spawn.py: stock parts, the least they need.

Stock DockerSpawner on one user-defined bridge network, as jupyterhub-deploy-docker sets it up
(``network_name`` = that network; the hub reached by containers at an address on it). The hub runs
on the host here, so it listens on the network's gateway address.

Everything variable comes from the environment bench/spawn.py sets:
BENCH_PUBLIC_PORT, BENCH_HUB_PORT, BENCH_PROXY_API_PORT, BENCH_STATE_DIR, BENCH_IMAGE,
BENCH_ID (container name prefix, label value and home-volume prefix), BENCH_ADMIN_TOKEN,
BENCH_NETWORK and BENCH_HUB_IP (the network bench/spawn.py made, and the host's address on it).
"""

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821

REPO = Path(__file__).resolve().parents[1]
state = Path(os.environ["BENCH_STATE_DIR"])
state.mkdir(parents=True, exist_ok=True)
bench_id = os.environ["BENCH_ID"]

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['BENCH_PUBLIC_PORT']}"
c.JupyterHub.hub_bind_url = f"http://{os.environ['BENCH_HUB_IP']}:{os.environ['BENCH_HUB_PORT']}"
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.JupyterHub.log_level = "INFO"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['BENCH_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [str(REPO / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.network_name = os.environ["BENCH_NETWORK"]
c.DockerSpawner.remove = True
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.DockerSpawner.image = os.environ["BENCH_IMAGE"]
c.DockerSpawner.mem_limit = "2G"
c.DockerSpawner.cpu_limit = 1.0
c.DockerSpawner.prefix = bench_id
c.DockerSpawner.extra_create_kwargs = {"labels": {"titan.bench": bench_id}}
c.DockerSpawner.volumes = {f"{bench_id}-home-{{username}}": "/home/jovyan"}

c.JupyterHub.services = [{"name": "bench-admin", "api_token": os.environ["BENCH_ADMIN_TOKEN"]}]
c.JupyterHub.load_roles = [
    {
        "name": "bench-admin",
        "scopes": ["admin:users", "admin:groups", "admin:servers", "tokens", "read:hub"],
        "services": ["bench-admin"],
    },
]
