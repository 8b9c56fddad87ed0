"""The gateway's control route for the admin page: stop one cluster by name, with the control token."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import routes


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
        path = routes.STOP_CLUSTER_PATH
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
