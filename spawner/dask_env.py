"""The environment a user's server needs so that ``Gateway()`` and ``GatewayCluster()`` work with
no arguments: the gateway's addresses, JupyterHub authentication (the client sends the server's
own ``JUPYTERHUB_API_TOKEN``) and, as a default cluster option, the server the clusters belong to.

A pure function; the spawner merges the result into the container's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _literal(text: str) -> str:
    """A value that dask's config reader (``ast.literal_eval``) and the dask-gateway client
    (``str.format`` with the environment) both leave as ``text``, whatever it contains."""
    return repr(text.replace("{", "{{").replace("}", "}}"))


def dask_environment(gateway: Mapping[str, Any], server_name: str) -> dict[str, str]:
    """``DASK_GATEWAY__*`` variables for the server ``server_name`` ("" for the default server).

    ``gateway`` holds ``address`` (the gateway's HTTP address, with its prefix),
    ``proxy_address`` (the scheduler proxy, ``gateway://host:port``) and optionally
    ``public_address`` (the address browsers use for dashboards). Without an ``address``
    (no gateway in this deployment) nothing is set.
    """
    address = str(gateway.get("address") or "")
    if not address:
        return {}
    return {
        "DASK_GATEWAY__ADDRESS": address,
        "DASK_GATEWAY__PUBLIC_ADDRESS": str(gateway.get("public_address") or address),
        "DASK_GATEWAY__PROXY_ADDRESS": str(gateway["proxy_address"]),
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        "DASK_GATEWAY__CLUSTER__OPTIONS__SERVER": _literal(server_name),
    }
