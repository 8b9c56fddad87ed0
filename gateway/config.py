"""dask-gateway-server's configuration file for Titan: ``dask-gateway-server -f gateway/config.py``.

The hub starts the gateway with it (see gateway/hub.py); settings come from titan.yaml
(TITAN_SETTINGS), as for the hub.
"""

from gateway.configure import configure
from titan.settings import load_settings

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by the traitlets config loader)
configure(c, load_settings())
