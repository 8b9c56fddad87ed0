"""The Titan service's configuration file: ``python -m service -f service/config.py``.

The hub starts the service with it (service/hubconfig.py); settings come from titan.yaml
(TITAN_SETTINGS), as for the hub, through service/configure.py.
"""

import os

from core.network import titan_address
from core.settings import load_settings
from service.configure import configure

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by the traitlets config loader)
settings = load_settings()
configure(c, settings, os.environ.get("TITAN_ADDRESS") or titan_address(settings.network_plan))
