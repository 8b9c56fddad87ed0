"""The hardening every container of Titan gets, servers and Dask containers alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: No capability at all (the images run as jovyan, uid 1000, and a JupyterLab server, a kernel or a
#: Dask worker needs none), and no gaining privileges through setuid binaries. The process-count
#: limit is per container (its profile's or the cluster's ``processes``).
HARDENING: Mapping[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}
