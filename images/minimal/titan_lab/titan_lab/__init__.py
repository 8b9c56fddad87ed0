"""Titan inside JupyterLab: the server half of the ``titan-lab`` JupyterLab extension.

- ``titan/api/server``: this server's profile, image and limits (the spawner's environment), for
  the status bar.
- ``titan/api/autosave`` and ``titan/api/links``: the Titan service's autosave status and its
  share links, asked with this server's own token (the owner's identity; the service decides what
  the owner may do and words its errors, which the extension shows as they are). See handlers.py.
- The Dask sidebar (dask-labextension, where the image has it) also shows the user's Gateway
  clusters made elsewhere, from a notebook say (adopt.py), and opens their dashboard panels through
  the Gateway (dashboards.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from typing import Any

ADOPT_EVERY = 3.0  # seconds between two looks at the Gateway


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "titan_lab"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from titan_lab.handlers import routes

    web_app = server_app.web_app
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    if not os.environ.get("DASK_GATEWAY__ADDRESS") or importlib.util.find_spec("dask_labextension") is None:
        return
    from titan_lab import dashboards
    from titan_lab.adopt import adopt_forever

    # Tornado tries rule groups in the order they were added and extensions load by name, so
    # dask-labextension's own dashboard proxy came first: the Gateway clusters' route goes in front.
    web_app.add_handlers(".*$", dashboards.routes(web_app.settings["base_url"]))
    rules = web_app.default_router.rules
    rules.insert(0, rules.pop(-2))  # add_handlers put it just before the server's own handlers

    server_app.io_loop.add_callback(lambda: asyncio.ensure_future(adopt_forever(server_app.log, ADOPT_EVERY)))
