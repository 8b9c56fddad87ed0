"""Pure builders for the scheduler and worker containers: names, labels, limits, the TLS archive.

Nothing here talks to Docker; :mod:`gateway.backend` applies the results.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spawner.container import LABEL_DEPLOYMENT, LABEL_OWNER, docker_safe

LABEL_CLUSTER = "titan.dask.cluster"
LABEL_ROLE = "titan.dask.role"  # "scheduler" or "worker"
LABEL_WORKER = "titan.dask.worker"
LABEL_ORIGIN = "titan.dask.server"  # the server the cluster belongs to (not titan.server: that marks servers)

SCHEDULER = "scheduler"
WORKER = "worker"

# Where the cluster's TLS certificate and key are written inside each container (mode 0600,
# owned by the container's user), and what the DASK_DISTRIBUTED__COMM__TLS__* variables point at.
TLS_DIR = "/run/dask-gateway"
TLS_CERT = f"{TLS_DIR}/dask.crt"
TLS_KEY = f"{TLS_DIR}/dask.pem"

# States in which a container counts as alive (created: between create and start).
ALIVE = frozenset({"created", "running", "restarting"})


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: Sequence[str]
    environment: Mapping[str, str]
    labels: Mapping[str, str]
    cores: float
    memory: int  # bytes; swap included (no swap on top)
    user: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for docker-py's ``APIClient.create_container`` (host config apart)."""
        return {
            "image": self.image, "command": list(self.command), "name": self.name,
            "environment": dict(self.environment), "labels": dict(self.labels), "user": self.user,
            "detach": True,
        }

    def host_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``APIClient.create_host_config``."""
        return {
            "network_mode": "host", "init": True,
            "mem_limit": self.memory, "memswap_limit": self.memory,
            "nano_cpus": int(round(self.cores * 1e9)),
            **self.extra,
        }


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


def container_name(deployment: str, owner: str, cluster: str, role: str, worker: str = "") -> str:
    """``<deployment>-dask-<owner>-<cluster[:12]>-scheduler`` or ``…-worker-<worker[:12]>``."""
    base = f"{deployment}-dask-{docker_safe(owner)}-{cluster[:12]}-{role}"
    return f"{base}-{worker[:12]}" if worker else base


def container_labels(deployment: str, owner: str, origin_server: str, cluster: str, role: str,
                     worker: str = "") -> dict[str, str]:
    labels = {
        LABEL_DEPLOYMENT: deployment,
        LABEL_OWNER: owner,
        LABEL_ORIGIN: origin_server,
        LABEL_CLUSTER: cluster,
        LABEL_ROLE: role,
    }
    if worker:
        labels[LABEL_WORKER] = worker
    return labels


def parse_user(user: str) -> tuple[int, int]:
    """``"1000:1000"`` → (1000, 1000); ``"1000"`` → (1000, 1000)."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def tls_archive(cert: bytes, key: bytes, uid: int, gid: int) -> bytes:
    """A tar of ``TLS_DIR`` (0700) with the certificate and key (0600), owned by ``uid:gid``,
    to be extracted at ``/`` of a created container before it starts."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo(TLS_DIR.lstrip("/"))
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o700
        directory.uid, directory.gid, directory.mtime = uid, gid, now
        tar.addfile(directory)
        for path, data in ((TLS_CERT, cert), (TLS_KEY, key)):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o600
            info.uid, info.gid, info.mtime = uid, gid, now
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
