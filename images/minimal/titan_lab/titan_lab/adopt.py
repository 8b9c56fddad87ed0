"""Keep dask-labextension's manager in step with the user's running Gateway clusters."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from dask_gateway import Gateway
from dask_labextension.manager import DaskClusterManager, manager


def sidebar_id(cluster_name: str) -> str:
    """The sidebar's id for a Gateway cluster: dask-labextension's routes take only UUID-shaped ids;
    a Gateway name that is a UUID's hex keeps its digits."""
    try:
        return str(uuid.UUID(hex=cluster_name))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dask-gateway:{cluster_name}"))


class Adopter:
    """Adds the clusters the manager does not know (made from a notebook, say) and drops the ones it
    adopted once the Gateway no longer runs them. Clusters the sidebar made itself are left alone."""

    def __init__(self, gateway: Any, clusters: DaskClusterManager) -> None:
        self.gateway = gateway
        self.clusters = clusters
        self.adopted: set[str] = set()

    def _managed_names(self) -> set[str]:
        names = (getattr(cluster, "name", None) for cluster in self.clusters._clusters.values())
        return {name for name in names if isinstance(name, str)}

    async def step(self) -> None:
        reports = await self.gateway.list_clusters(status="running")
        running = {report.name for report in reports}
        for name in sorted(running - self._managed_names()):
            # Shutting it down from the sidebar shuts the cluster down, as for the sidebar's own.
            cluster = await self.gateway.connect(name, shutdown_on_close=True)
            key = sidebar_id(name)
            self.clusters._clusters[key] = cluster
            self.clusters._cluster_names[key] = f"Gateway cluster {name[:8]}"
            self.adopted.add(name)
        for name in sorted(self.adopted - running):
            self.adopted.discard(name)
            key = sidebar_id(name)
            cluster = self.clusters._clusters.pop(key, None)
            self.clusters._cluster_names.pop(key, None)
            self.clusters._adaptives.pop(key, None)
            if cluster is not None:
                cluster.shutdown_on_close = False  # it is gone already: only the connection goes
                await cluster.close()


async def adopt_forever(log: logging.Logger, every: float) -> None:
    adopter = Adopter(Gateway(asynchronous=True), manager)
    while True:
        try:
            await adopter.step()
        except Exception as error:  # the Gateway restarting or unreachable: try again next time
            log.warning("titan_lab: could not list the Gateway's clusters: %s", error)
        await asyncio.sleep(every)
