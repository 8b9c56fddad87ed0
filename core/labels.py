"""Docker label names and name escaping shared by every part that runs or reads Titan's
containers and networks (the spawner, the gateway, the service)."""

from __future__ import annotations

import string

from escapism import escape

LABEL_DEPLOYMENT = "titan.deployment"  # every container and network of a deployment
LABEL_OWNER = "titan.owner"  # the user a container or network belongs to
LABEL_SERVER = "titan.server"  # a user's server (its name; "" for the default server)
LABEL_PROFILE = "titan.profile"  # the profile a server was started with
LABEL_NETWORK = "titan.network"  # on networks: "titan" (the deployment's own) or "user"

_SAFE = set(string.ascii_lowercase + string.digits)


def docker_safe(name: str) -> str:
    """A user or server name as a Docker-safe token (``Alice.B`` → ``alice-2eb``-style escapes)."""
    return escape(name.lower(), safe=_SAFE, escape_char="-").lower()
