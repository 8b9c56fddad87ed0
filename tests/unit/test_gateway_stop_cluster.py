"""The gateway's control route for the admin page (stop one cluster by name, with the control token),
and the hub's side of a stopped server when the gateway cannot be reached (FakeEngine)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.endpoints import STOP_CLUSTER_PATH
from gateway import routes
from spawner.clusters import remove_cluster_containers, server_stopped
from tests.fakes import FakeEngine


class Backend:
    """A routes.ClusterControl whose clusters are a dict."""

    control_token = "right"

    def __init__(self) -> None:
        self.active = {"c1": "alice"}
        self.stopped: list[tuple[str, float]] = []

    async def stop_cluster_by_name(self, name: str, wait: float = 20.0) -> str | None:
        self.stopped.append((name, wait))
        return self.active.pop(name, None)

    async def stop_server_clusters(self, username: str, server: str, wait: float = 20.0) -> list[str]:
        return []


@pytest.mark.asyncio
async def test_only_the_control_token_stops_a_cluster_and_an_unknown_one_is_404() -> None:
    backend: routes.ClusterControl = Backend()
    app = web.Application()
    routes.install(app, backend)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        path = STOP_CLUSTER_PATH
        for headers in ({}, {"Authorization": "token wrong"}):
            assert (await client.post(path, json={"cluster": "c1"}, headers=headers)).status == 403
        assert isinstance(backend, Backend) and backend.stopped == []
        right = {"Authorization": "token right"}
        assert (await client.post(path, json={"name": "c1"}, headers=right)).status == 400
        assert (await client.post(path, json={"cluster": 5}, headers=right)).status == 400
        response = await client.post(path, json={"cluster": "c1", "wait": 500}, headers=right)
        assert response.status == 200 and await response.json() == {"stopped": "c1", "user": "alice"}
        response = await client.post(path, json={"cluster": "c1"}, headers=right)
        assert response.status == 404 and "no active cluster c1" in (await response.json())["error"]
        assert isinstance(backend, Backend) and backend.stopped == [("c1", 60.0), ("c1", 20.0)]
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_without_a_gateway_the_hub_removes_only_that_servers_dask_containers() -> None:
    engine = FakeEngine()
    dask = {"titan.deployment": "t", "titan.owner": "alice", "titan.dask.cluster": "c1"}
    engine.add_container("lab-s", {**dask, "titan.dask.server": "lab", "titan.dask.role": "scheduler"})
    engine.add_container("lab-w", {**dask, "titan.dask.server": "lab", "titan.dask.role": "worker"})
    engine.add_container("gpu-s", {**dask, "titan.dask.server": "gpu", "titan.dask.role": "scheduler"})
    engine.add_container("bob-s", {**dask, "titan.owner": "bob", "titan.dask.server": "lab"})
    engine.add_container("lab", {"titan.deployment": "t", "titan.owner": "alice", "titan.server": "lab"})
    await server_stopped({}, "t", "alice", "lab", logging.getLogger("test"), engine)  # no gateway: nothing
    assert engine.removed == []
    gateway = {"control_url": "http://127.0.0.1:1/api/titan/v1/server-stopped", "control_token": "x"}
    await server_stopped(gateway, "t", "alice", "lab", logging.getLogger("test"), engine)  # unreachable
    assert sorted(engine.removed) == ["lab-s", "lab-w"]
    assert await remove_cluster_containers(engine, "t", "alice", "lab") == 0
