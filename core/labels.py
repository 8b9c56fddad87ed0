"""Docker label names, label values and object names shared by every part that runs or reads
Titan's containers and networks (the spawner, the gateway, the service): one home for each."""

from __future__ import annotations

import string
from collections.abc import Mapping

from escapism import escape

# ---- every Titan container and network ------------------------------------------------------
LABEL_DEPLOYMENT = "titan.deployment"  # every container and network of a deployment
LABEL_OWNER = "titan.owner"  # the user a container or network belongs to
LABEL_NETWORK = "titan.network"  # on networks: "titan" (the deployment's own) or "user"
LABEL_GPUS = "titan.gpus"  # comma-separated uuids of the GPU units the container holds
LABEL_FOR_SERVICE = "titan.for-service"  # on Swarm secrets: the service whose secret it is (core.engine.swarm)
NODE_POOL = "titan.pool"  # a Swarm node's label: the node pool it belongs to (ContainerSpec.pool)

# ---- users' servers --------------------------------------------------------------------------
LABEL_SERVER = "titan.server"  # a user's server (its name; "" for the default server)
LABEL_PROFILE = "titan.profile"  # the profile a server was started with
LABEL_DASHBOARD = "titan.dashboard"  # a live-dashboard server: the app it serves (core.dashboards)

# ---- Dask schedulers and workers -------------------------------------------------------------
LABEL_CLUSTER = "titan.dask.cluster"
LABEL_ROLE = "titan.dask.role"  # SCHEDULER or WORKER
LABEL_WORKER = "titan.dask.worker"
LABEL_ORIGIN = "titan.dask.server"  # the server the cluster belongs to (not titan.server: that marks servers)
SCHEDULER = "scheduler"
WORKER = "worker"

#: States in which a container counts as alive (created: between create and start).
ALIVE = frozenset({"created", "running", "restarting"})

_SAFE = set(string.ascii_lowercase + string.digits)


def docker_safe(name: str) -> str:
    """A user or server name as a Docker-safe token (``Alice.B`` → ``alice-2eb``-style escapes)."""
    return str(escape(name.lower(), safe=_SAFE, escape_char="-")).lower()


def home_volume_name(template: str, user: str) -> str:
    """The home volume of ``user``: one per user, shared by all of their servers."""
    return template.format(username=docker_safe(user))


# The file in the state directory naming the deployment's home volume template once chosen
# (titan.homes writes it at the hub's first start; the service reads it).
HOME_TEMPLATE_RECORD = "home-volume-template"


def default_home_template(deployment: str) -> str:
    """Home volumes named after the deployment: ``<deployment>-home-{username}``."""
    return f"{deployment}-home-{{username}}"


# ---- GPU owner keys (the allocator's owners: a server is ``<user>/<server>``) ----------------

def worker_gpu_owner(user: str, cluster: str, worker: str) -> str:
    """The GPU allocator's owner key of one worker: ``<user>/dask/<cluster>/<worker>`` (a server's
    is ``<user>/<server>``; server names hold no ``/``, so the two never meet)."""
    return f"{cluster_gpu_prefix(user, cluster)}{worker}"


def cluster_gpu_prefix(user: str, cluster: str) -> str:
    """What the owner keys of every worker of ``cluster`` start with."""
    return f"{user}/dask/{cluster}/"


def parse_worker_gpu_owner(owner: str) -> tuple[str, str, str] | None:
    """``(user, cluster, worker)`` of a worker's owner key; ``None`` for any other key (a server's)."""
    parts = owner.split("/")
    if len(parts) == 4 and parts[1] == "dask" and all(parts):
        return parts[0], parts[2], parts[3]
    return None


def worker_gpu_owner_from_labels(labels: Mapping[str, str]) -> str | None:
    """The owner key of a worker container, from its labels; ``None`` for any other container."""
    if labels.get(LABEL_ROLE) != WORKER:
        return None
    user, cluster, worker = labels.get(LABEL_OWNER, ""), labels.get(LABEL_CLUSTER, ""), labels.get(LABEL_WORKER, "")
    return worker_gpu_owner(user, cluster, worker) if user and cluster and worker else None
