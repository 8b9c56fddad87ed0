"""Viewers of a live dashboard go straight to it: no "Authorize access" page of the hub in between.

JupyterHub asks a user to approve a server they do not own the first time that server identifies
them through the hub's OAuth. For a dashboard server (``user_options["dashboard"]``, see
spawner.dashboard) the question adds nothing: the viewer reached it through a share link whose
access the Titan service checked before granting a share of that one server, the server serves one
app and nothing of Jupyter (``titan-dashboard``), and all it learns is the viewer's name and groups.
Every other server, a shared JupyterLab included, keeps the page.

JupyterHub's one switch is its tornado setting ``oauth_no_confirm_list``: the OAuth clients that
skip the page, which it fills with the services configured with ``oauth_no_confirm``.
:class:`NoConfirmClients` takes its place and holds those services' clients and, asked about any
other client, whether it is a running dashboard server's.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator
from typing import Any

from spawner.dashboard import DASHBOARD_FIELD


def is_dashboard_server(spawner: Any) -> bool:
    """Whether a spawner's server is a live dashboard (its options carry a dashboard)."""
    options = getattr(spawner, "user_options", None)
    return isinstance(options, dict) and bool(options.get(DASHBOARD_FIELD))


class NoConfirmClients(Container[str]):
    """OAuth client ids that skip the consent page: no-confirm services and dashboard servers."""

    def __init__(self, services: Callable[[], Iterable[Any]], spawners: Callable[[], Iterable[Any]]) -> None:
        self._services = services
        self._spawners = spawners

    def __contains__(self, identifier: object) -> bool:
        if not isinstance(identifier, str) or not identifier:
            return False
        if any(getattr(s, "oauth_no_confirm", False) and s.oauth_client_id == identifier for s in self._services()):
            return True
        return any(s.oauth_client_id == identifier and is_dashboard_server(s) for s in self._spawners())


def _hub_services() -> Iterable[Any]:
    from jupyterhub.app import JupyterHub

    services: dict[str, Any] = JupyterHub.instance()._service_map
    return services.values()


def _hub_spawners() -> Iterator[Any]:
    from jupyterhub.app import JupyterHub

    for user in list(JupyterHub.instance().users.values()):
        yield from list(user.spawners.values())


def hub_no_confirm_clients() -> NoConfirmClients:
    """The set for ``c.JupyterHub.tornado_settings["oauth_no_confirm_list"]``, read from the running hub."""
    return NoConfirmClients(_hub_services, _hub_spawners)
