"""Which OAuth clients skip the hub's consent page: no-confirm services and dashboard servers only."""

from __future__ import annotations

from types import SimpleNamespace

from spawner.consent import NoConfirmClients, is_dashboard_server

SERVICES = [SimpleNamespace(oauth_client_id="service-titan", oauth_no_confirm=True),
            SimpleNamespace(oauth_client_id="service-grafana", oauth_no_confirm=False)]
SPAWNERS = [
    SimpleNamespace(oauth_client_id="jupyterhub-user-alice-dash-1a2b",
                    user_options={"profile": "small", "dashboard": {"app": "voila", "path": "d.ipynb"}}),
    SimpleNamespace(oauth_client_id="jupyterhub-user-alice-lab2", user_options={"profile": "small"}),
    SimpleNamespace(oauth_client_id="jupyterhub-user-alice", user_options=None),
    SimpleNamespace(oauth_client_id="jupyterhub-user-mallory-dash-x", user_options={"dashboard": None}),
]


def clients() -> NoConfirmClients:
    return NoConfirmClients(lambda: SERVICES, lambda: SPAWNERS)


def test_dashboard_servers_and_no_confirm_services_skip_the_page() -> None:
    assert "jupyterhub-user-alice-dash-1a2b" in clients()
    assert "service-titan" in clients()


def test_every_other_client_keeps_it() -> None:
    for identifier in ("jupyterhub-user-alice-lab2", "jupyterhub-user-alice", "service-grafana",
                       "jupyterhub-user-mallory-dash-x", "jupyterhub-user-bob-dash-1a2b", "", None, 3):
        assert identifier not in clients(), identifier


def test_what_makes_a_dashboard_server() -> None:
    assert is_dashboard_server(SPAWNERS[0])
    assert not any(is_dashboard_server(s) for s in SPAWNERS[1:])
    assert not is_dashboard_server(SimpleNamespace())
