"""The HTTP paths one Titan part calls on another (the parts meet in core and over HTTP only)."""

from __future__ import annotations

#: The gateway's route the hub (the spawner's ``stop``) calls when a user's server stopped.
SERVER_STOPPED_PATH = "/api/titan/v1/server-stopped"
#: The gateway's route the Titan service's admin page calls to stop one cluster.
STOP_CLUSTER_PATH = "/api/titan/v1/stop-cluster"
