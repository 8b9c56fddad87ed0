"""Builders for the scheduler and worker containers: names, labels, limits, and the TLS files
bind-mounted into them.

Nothing here talks to Docker; :mod:`gateway.backend` applies the results.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.hardening import HARDENING
from core.labels import (
    LABEL_CLUSTER,
    LABEL_DEPLOYMENT,
    LABEL_ORIGIN,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_WORKER,
    docker_safe,
)

# Where the cluster's TLS certificate and key are inside each container (mode 0600, owned by the
# container's user), and what the DASK_DISTRIBUTED__COMM__TLS__* variables point at. The directory
# is the cluster's own directory on the host (:func:`write_tls_files`), bind-mounted read-only.
TLS_DIR = "/run/dask-gateway"
TLS_CERT_NAME = "dask.crt"
TLS_KEY_NAME = "dask.pem"
TLS_CERT = f"{TLS_DIR}/{TLS_CERT_NAME}"
TLS_KEY = f"{TLS_DIR}/{TLS_KEY_NAME}"

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
    network: str  # network_mode: the namespace of the cluster's server (server_namespace), nothing else
    processes: int = 4096  # process and thread limit of the container
    tls_source: str = ""  # host directory holding the cluster's certificate and key, mounted read-only at TLS_DIR
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
        binds = {self.tls_source: {"bind": TLS_DIR, "mode": "ro"}} if self.tls_source else {}
        return {
            "network_mode": self.network, "init": True,
            "mem_limit": self.memory, "memswap_limit": self.memory,
            "nano_cpus": int(round(self.cores * 1e9)),
            "pids_limit": self.processes, **HARDENING,
            **({"binds": binds} if binds else {}),
            **self.extra,
        }


def server_namespace(server_container: str) -> str:
    """The ``network_mode`` putting a scheduler or worker in the network namespace of its cluster's
    server: on that server's user network (core.network) and on no other, with no interface, veth or
    resolver of its own to set up (``docker start`` 0.1 s sooner than a container on a bridge)."""
    if not server_container or ":" in server_container or "/" in server_container:
        raise ValueError(f"unexpected server container id {server_container!r}")
    return f"container:{server_container}"


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


def write_tls_files(directory: Path, cert: bytes, key: bytes, uid: int, gid: int) -> Path:
    """The cluster's certificate and key as ``directory/dask.crt`` and ``directory/dask.pem``
    (mode 0600, owned by ``uid:gid``, in a 0700 directory of theirs), to be bind-mounted read-only
    at ``TLS_DIR``. ``directory``'s parent must exist and be private to the gateway (the state
    directory's ``dask-tls``, 0700 root): nobody else on the host reaches the files.

    Idempotent: files already there with this content, mode and owner are left alone; others are
    replaced atomically (a new file renamed over the old), so a running container never reads a
    half-written key.
    """
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    _own(directory, 0o700, uid, gid, is_dir=True)
    for name, data in ((TLS_CERT_NAME, cert), (TLS_KEY_NAME, key)):
        path = directory / name
        if _is_file_of(path, data, uid, gid):
            continue
        partial = directory / f".{name}.{secrets.token_hex(4)}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
            info = os.fstat(fd)
            if (info.st_uid, info.st_gid) != (uid, gid):
                os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            partial.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(partial, path)
    return directory


def _own(path: Path, mode: int, uid: int, gid: int, is_dir: bool) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or stat.S_ISDIR(info.st_mode) != is_dir:
        raise RuntimeError(f"{path} is not a {'directory' if is_dir else 'file'}")
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)


def _is_file_of(path: Path, data: bytes, uid: int, gid: int) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or (info.st_uid, info.st_gid) != (uid, gid) \
            or stat.S_IMODE(info.st_mode) != 0o600 or info.st_size != len(data):
        return False
    return path.read_bytes() == data
