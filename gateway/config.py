"""dask-gateway-server's configuration file for Titan: ``dask-gateway-server -f gateway/config.py``.

The hub starts the gateway with it (see gateway/hub.py); settings come from titan.yaml
(TITAN_SETTINGS), as for the hub.
"""

import os

from core.network import titan_address
from core.settings import load_settings
from gateway.configure import configure

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by the traitlets config loader)
settings = load_settings()
configure(c, settings, os.environ.get("TITAN_ADDRESS") or titan_address(settings.network_plan))
