"""Titan's settings -> the Titan service's configuration (the body of service/config.py).

Each titan.yaml setting of the service is handed to the one trait that owns it, with its help
string there: ``TitanService`` (listening, state, sharing), ``HubWatcher`` (the pass interval),
``Autosave`` (snapshots, pushes, clones), ``DockerHost`` (which volumes, home directories and containers are
this deployment's), ``Operations`` (the gateway the admin page stops clusters through). The service
listens on the Titan address (core.network), where the proxy and containers reach it.
"""

from __future__ import annotations

from traitlets.config import Config

from core.labels import HOME_TEMPLATE_RECORD, default_home_template
from core.settings import Settings


def home_volume_template(settings: Settings) -> str:
    """The home volume template in force: titan.yaml's, else the one the hub recorded (titan.homes)."""
    if settings.home_volume_template:
        return settings.home_volume_template
    record = settings.state_dir / HOME_TEMPLATE_RECORD
    return record.read_text().strip() if record.exists() else default_home_template(settings.deployment)


def configure(c: Config, settings: Settings, address: str) -> None:
    """``address``: the Titan address (core.network.titan_address)."""
    service = settings.service
    c.Application.log_level = service["log_level"]
    c.TitanService.ip = address
    c.TitanService.port = int(service["port"])
    c.TitanService.state_dir = str(settings.state_dir / "service")
    if service["db_url"]:
        c.TitanService.db_url = service["db_url"]
    c.TitanService.max_body_mb = float(service["max_body_mb"])
    c.TitanService.profiles_dir = str(settings.profiles_dir)
    c.TitanService.hub_public_url = settings.public_url

    sharing = settings.sharing
    c.TitanService.public_links = bool(sharing["public_links"])
    c.TitanService.frame_ancestors = list(sharing["frame_ancestors"])
    c.TitanService.max_notebook_mb = float(sharing["max_notebook_mb"])
    c.TitanService.versions_kept = int(sharing["versions_kept"])
    c.TitanService.dashboard_profile = sharing["dashboard_profile"]
    c.TitanService.guess_limit = int(sharing["guess_limit"])
    c.TitanService.guess_window = float(sharing["guess_window"])
    c.TitanService.public_dashboard_port = int(sharing["public_dashboard_port"])
    c.TitanService.public_dashboard_url = sharing["public_dashboard_url"]

    c.HubWatcher.interval = float(service["check_interval"])

    c.Autosave.github_url = settings.github["url"]
    c.Autosave.branch_template = service["branch_template"]
    c.Autosave.default_interval = int(service["interval"])
    c.Autosave.min_interval = int(service["min_interval"])
    c.Autosave.max_file_size = int(float(service["max_file_size_mb"]) * 1024 * 1024)

    c.DockerHost.home_volume_template = home_volume_template(settings)
    c.DockerHost.deployment = settings.deployment
    c.DockerHost.homes_root = settings.swarm["homes_root"]
    c.DockerHost.swarm = settings.engine == "swarm"
    c.DockerHost.manager = settings.swarm["manager"]

    if settings.gateway["enabled"]:  # the admin page stops Dask clusters through the gateway's control route
        c.Operations.gateway_url = f"http://127.0.0.1:{settings.gateway['api_port']}"
        c.Operations.gateway_token_file = str(settings.state_dir / "dask-gateway-control-token")
