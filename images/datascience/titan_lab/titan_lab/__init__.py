"""Titan's JupyterLab server extension: the Dask sidebar shows every Gateway cluster of the user.

dask-labextension lists only the clusters it made itself. A user's clusters made from a notebook
(``GatewayCluster()``) run on the same Gateway, so every few seconds this extension asks the Gateway
for the user's running clusters and hands the sidebar's manager a connection to each one it does
not know yet (:mod:`titan_lab.adopt`): they appear in the sidebar, their dashboards open through
the Gateway's authenticated route, and scaling or shutting one down from the sidebar acts on the
cluster itself. A cluster that ends elsewhere leaves the sidebar.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

ADOPT_EVERY = 3.0  # seconds between two looks at the Gateway


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "titan_lab"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    if not os.environ.get("DASK_GATEWAY__ADDRESS"):
        server_app.log.info("titan_lab: no Dask Gateway configured; the Dask sidebar shows its own clusters only")
        return
    from titan_lab.adopt import adopt_forever

    server_app.io_loop.add_callback(lambda: asyncio.ensure_future(adopt_forever(server_app.log, ADOPT_EVERY)))
