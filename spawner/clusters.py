"""The hub's side of "this server stopped": ask the gateway to stop the server's clusters.

Called from the spawner's ``stop`` for every stop (by the user, an admin, the idle culler, or the
hub shutting down). Never raises: a server always stops. When the gateway cannot be reached (the
hub stops its services before its servers), the clusters' containers are removed directly; the
gateway marks those clusters stopped on its next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from core.engine.base import ContainerEngine, EngineError
from core.labels import LABEL_CLUSTER, LABEL_DEPLOYMENT, LABEL_ORIGIN, LABEL_OWNER

REQUEST_TIMEOUT = 30.0
WAIT_FOR_CONTAINERS = 20.0


async def remove_cluster_containers(engine: ContainerEngine, deployment: str, user: str, server: str) -> int:
    """Remove the scheduler and worker containers of ``user``'s server ``server``."""
    found = await engine.list_containers({LABEL_DEPLOYMENT: deployment, LABEL_OWNER: user, LABEL_CLUSTER: None})
    removed = await asyncio.gather(*(engine.remove(c.id) for c in found if c.labels.get(LABEL_ORIGIN) == server))
    return sum(removed)


async def server_stopped(gateway: Mapping[str, Any], deployment: str, user: str, server: str,
                         log: logging.Logger | logging.LoggerAdapter[Any], engine: ContainerEngine) -> None:
    """Stop the clusters of ``user``'s server ``server``; log, never raise."""
    url, token = gateway.get("control_url"), gateway.get("control_token")
    if not url or not token:
        return
    request = HTTPRequest(
        str(url), method="POST", body=json.dumps({"user": user, "server": server, "wait": WAIT_FOR_CONTAINERS}),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        connect_timeout=3, request_timeout=REQUEST_TIMEOUT,
    )
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 200:
            stopped = json.loads(response.body or b"{}").get("stopped", [])
            if stopped:
                log.info("Stopped the Dask clusters of %s/%s: %s", user, server, ", ".join(stopped))
            return
        log.warning("The Dask gateway answered %d to stopping the clusters of %s/%s", response.code, user, server)
    except (OSError, HTTPClientError, ValueError) as error:  # no connection, a timeout, a body that is not JSON
        log.warning("The Dask gateway is not reachable (%s) to stop the clusters of %s/%s", error, user, server)
    try:
        removed = await remove_cluster_containers(engine, deployment, user, server)
        if removed:
            log.info("Removed %d Dask container(s) of %s/%s directly", removed, user, server)
    except EngineError:
        log.warning("Removing the Dask containers of %s/%s failed", user, server, exc_info=True)
