"""Wiring: the hub's service entry and scopes, the gateway's settings, and its HTTP additions."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from traitlets.config import Config

from core.endpoints import SERVER_STOPPED_PATH
from core.settings import load_settings
from gateway import hub, routes
from gateway.configure import configure


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "titan.yaml"
    path.write_text(yaml.safe_dump({
        "deployment": "t1", "state_dir": str(tmp_path / "state"),
        "hub": {"public_url": "https://titan.example"},
        "gateway": {"api_port": 18010, "proxy_port": 18011, "scheduler_proxy_port": 18012, "idle_timeout": 600},
    }))
    return path


def test_gateway_settings_have_defaults(tmp_path: Path) -> None:
    gateway = load_settings(tmp_path / "absent.yaml", environ={}).gateway
    assert gateway["enabled"] is True
    assert (gateway["api_port"], gateway["proxy_port"], gateway["scheduler_proxy_port"]) == (8010, 8011, 8012)


def test_unknown_gateway_settings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "titan.yaml"
    path.write_text("gateway: {port: 1}\n")
    with pytest.raises(ValueError, match="at gateway: unknown key"):
        load_settings(path, environ={})


def test_the_hub_runs_the_gateway_as_a_service_on_the_titan_address(settings_file: Path) -> None:
    settings = load_settings(settings_file, environ={})
    service = hub.service(settings, "10.213.0.1")
    assert service["name"] == "dask-gateway"
    assert service["url"] == "http://10.213.0.1:18011"
    assert service["environment"]["TITAN_ADDRESS"] == "10.213.0.1"
    # Dashboards sign users in through the hub (gateway.dashboards), with no consent page.
    assert service["oauth_no_confirm"] is True
    assert service["command"][1:3] == ["-m", "core.supervise"]  # it ends with the hub
    assert service["command"][-4:] == [sys.executable, "-m", "dask_gateway_server", "-f", str(hub.CONFIG_FILE)][-4:]
    assert service["environment"]["TITAN_SETTINGS"] == str(settings_file)
    assert "api_token" not in service  # the hub makes one at each start


def test_the_spawner_link_points_servers_at_the_gateway(settings_file: Path) -> None:
    link = hub.spawner_link(load_settings(settings_file, environ={}), "10.213.0.1")
    assert link["address"] == "http://10.213.0.1:18011/services/dask-gateway"
    assert link["proxy_address"] == "gateway://10.213.0.1:18012"
    assert link["public_address"] == "https://titan.example/services/dask-gateway"
    assert link["control_url"] == "http://127.0.0.1:18010/api/titan/v1/server-stopped"
    assert len(link["control_token"]) == 64


def test_users_and_server_tokens_get_the_gateway_scope() -> None:
    admin = {"name": "titan-admin", "scopes": ["admin:users"], "services": ["titan-admin"]}
    roles = hub.with_user_access([admin])
    assert roles[0] == admin
    assert roles[1]["name"] == "user" and roles[1]["scopes"] == ["self", hub.ACCESS_SCOPE]
    # An existing user role is extended, not replaced.
    roles = hub.with_user_access([{"name": "user", "scopes": ["self", "access:services!service=other"]}])
    assert roles == [{"name": "user", "scopes": ["self", "access:services!service=other", hub.ACCESS_SCOPE]}]
    assert hub.with_user_access(roles) == roles
    scopes = hub.with_server_token_scopes([])
    assert {"users:activity!user", "access:servers!server", hub.ACCESS_SCOPE, "read:users:groups!user"} == set(scopes)
    assert hub.with_server_token_scopes(["custom:x"])[0] == "custom:x"


def test_gateway_configuration_keeps_its_secrets_private(settings_file: Path) -> None:
    settings = load_settings(settings_file, environ={})
    c = Config()
    configure(c, settings, "10.213.0.1")
    state = settings.state_dir
    assert c.DaskGateway.address == "127.0.0.1:18010"  # the private API: the hub and the service only
    # The proxies, on the Titan address, where containers reach them; nothing on every interface.
    assert (c.Proxy.address, c.Proxy.tcp_address) == ("10.213.0.1:18011", "10.213.0.1:18012")
    assert c.DockerBackend.dashboard_gate_url == "http://127.0.0.1:18010"
    assert c.Proxy.prefix == "/services/dask-gateway"
    assert c.DaskGateway.authenticator_class == "gateway.auth.HubAuthenticator"
    assert c.JupyterHubAuthenticator.jupyterhub_service_name == "dask-gateway"
    assert c.JupyterHubAuthenticator.use_service_access_scopes is True
    assert c.DockerBackend.deployment == "t1"
    assert c.DockerBackend.db_url == f"sqlite:///{state / 'dask-gateway.sqlite'}"
    assert c.DockerBackend.stop_clusters_on_shutdown is False
    assert c.DockerBackend.tls_dir == str(state / "dask-tls")  # in the 0700 state directory
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert c.ClusterConfig.idle_timeout == 600
    assert len(c.DockerBackend.db_encrypt_keys[0]) == 32
    for name in ("dask-gateway-db-key", "dask-gateway-control-token", "dask-gateway.sqlite"):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
    # A second start reads the same key.
    again = Config()
    configure(again, settings, "10.213.0.1")
    assert again.DockerBackend.db_encrypt_keys == c.DockerBackend.db_encrypt_keys


def test_on_swarm_the_gateway_runs_its_clusters_as_services_and_listens_where_nodes_reach_it(
        settings_file: Path) -> None:
    document = yaml.safe_load(settings_file.read_text())
    one_host = Config()
    configure(one_host, load_settings(settings_file, environ={}), "10.213.0.1")
    assert "engine_kind" not in one_host.DockerBackend  # the backend's default: docker
    document.update({"engine": "swarm", "swarm": {"manager": "tcp://10.9.0.11:2376", "hub_address": "10.9.0.254",
                                                  "published_ports": "31000-31999"}})
    settings_file.write_text(yaml.safe_dump(document))
    c = Config()
    settings = load_settings(settings_file, environ={})
    configure(c, settings, "10.213.0.1")
    assert (c.Proxy.address, c.Proxy.tcp_address) == ("10.9.0.254:18011", "10.9.0.254:18012")
    # The hub, and the servers on the nodes, reach it there.
    assert hub.service(settings, "10.213.0.1")["url"] == "http://10.9.0.254:18011"
    link = hub.spawner_link(settings, "10.213.0.1")
    assert (link["address"], link["proxy_address"]) == ("http://10.9.0.254:18011/services/dask-gateway",
                                                        "gateway://10.9.0.254:18012")
    assert link["control_url"].startswith("http://127.0.0.1:18010/")  # the hub's own call stays on loopback
    assert c.DaskGateway.address == "127.0.0.1:18010"  # the private API stays on loopback
    assert (c.DockerBackend.engine_kind, c.DockerBackend.swarm_manager, c.DockerBackend.swarm_published_ports) == (
        "swarm", "tcp://10.9.0.11:2376", "31000-31999")


class StubBackend:
    control_token = "right"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    async def stop_server_clusters(self, user: str, server: str, wait: float = 20.0) -> list[str]:
        self.calls.append((user, server, wait))
        return ["c1"]


async def client_for(backend: Any) -> TestClient[web.Request, web.Application]:
    app = web.Application()

    async def scale(request: web.Request) -> web.Response:
        routes.note(f"clipped from {routes.requested_count(None)}")
        return web.json_response({"ok": True, "msg": None})

    async def other(request: web.Request) -> web.Response:
        routes.note("ignored")  # no scale request: nobody is told
        return web.json_response({"ok": True})

    app.router.add_post("/api/v1/clusters/{name}/scale", scale)
    app.router.add_post("/api/v1/clusters/{name}/other", other)
    routes.install(app, backend)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.mark.asyncio
async def test_a_clipped_scale_request_tells_the_user() -> None:
    client = await client_for(StubBackend())
    try:
        response = await client.post("/api/v1/clusters/c/scale", json={"count": 9})
        assert await response.json() == {"ok": False, "msg": "clipped from 9"}
        response = await client.post("/api/v1/clusters/c/other", json={"count": 9})
        assert await response.json() == {"ok": True}
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_only_the_hub_may_report_a_stopped_server() -> None:
    backend = StubBackend()
    client = await client_for(backend)
    try:
        path = SERVER_STOPPED_PATH
        for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": "jupyterhub right"}):
            response = await client.post(path, json={"user": "a", "server": ""}, headers=headers)
            assert response.status == 403
        response = await client.post(path, json={"user": "a"}, headers={"Authorization": "token right"})
        assert response.status == 400
        response = await client.post(path, json={"user": "a", "server": "", "wait": 999},
                                     headers={"Authorization": "token right"})
        assert response.status == 200 and await response.json() == {"stopped": ["c1"]}
        assert backend.calls == [("a", "", 60.0)]
    finally:
        await client.close()
