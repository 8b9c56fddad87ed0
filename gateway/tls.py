"""The clusters' TLS material: each cluster's certificate and key as 0600 files of the container
user, in a per-cluster directory under the gateway's private ``tls_dir``, bind-mounted read-only
into its containers at :data:`TLS_DIR`: never in the environment, labels or an inspection.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.engine.spec import Mount

# Where the cluster's TLS certificate and key are inside each container (mode 0600, owned by the
# container's user), and what the DASK_DISTRIBUTED__COMM__TLS__* variables point at. The directory
# is the cluster's own directory on the host (:func:`write_tls_files`), bind-mounted read-only.
TLS_DIR = "/run/dask-gateway"
TLS_CERT_NAME = "dask.crt"
TLS_KEY_NAME = "dask.pem"
TLS_CERT = f"{TLS_DIR}/{TLS_CERT_NAME}"
TLS_KEY = f"{TLS_DIR}/{TLS_KEY_NAME}"


class TlsFiles:
    """The per-cluster directories under ``directory`` ("": a temporary directory, removed by
    :meth:`close`), with files owned by ``user`` (``"uid:gid"``)."""

    def __init__(self, directory: str, user: str, log: logging.Logger) -> None:
        self.directory = directory
        self.user = user
        self.log = log
        self._root: Path | None = None
        self._temporary = False

    def root(self) -> Path:
        """``directory`` (made 0700 if absent), or a temporary directory made on first use."""
        if self._root is None:
            if self.directory:
                root = Path(self.directory)
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
                root.chmod(0o700)
            else:
                root = Path(tempfile.mkdtemp(prefix="titan-dask-tls-"))
                self._temporary = True
            self._root = root
        return self._root

    def source(self, cluster: str) -> Path:
        """The host directory bind-mounted at ``TLS_DIR`` in ``cluster``'s containers."""
        if not cluster or "/" in cluster or cluster.startswith("."):
            raise ValueError(f"unexpected cluster name {cluster!r}")
        return self.root() / cluster

    def mount(self, cluster: str) -> Mount:
        return Mount(str(self.source(cluster)), TLS_DIR, read_only=True)

    def write(self, cluster: str, cert: bytes, key: bytes) -> Path:
        """Write (or check) the cluster's certificate and key: 0600 files of the container user."""
        uid, gid = parse_user(self.user)
        return write_tls_files(self.source(cluster), cert, key, uid, gid)

    def remove(self, cluster: str) -> None:
        if self._root is not None or self.directory:  # else none was made
            shutil.rmtree(self.root() / cluster, ignore_errors=True)

    def reap(self, is_gone: Callable[[str], bool]) -> None:
        """Remove the directories of clusters that ``is_gone`` (a crash between a cluster's stop
        and the removal of its directory)."""
        if self._root is None and not self.directory:
            return
        for entry in self.root().iterdir():
            if is_gone(entry.name):
                self.log.info("Removing the TLS files of cluster %s, which is gone", entry.name)
                self.remove(entry.name)

    def close(self) -> None:
        if self._root is not None and self._temporary:
            shutil.rmtree(self._root, ignore_errors=True)


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
