"""Users' homes as directories on shared storage (titan.yaml ``swarm.homes_root``; docs/swarm-homes.md).

On a Swarm a server may land on any node, so its home cannot be a Docker volume of one node. With
``homes_root`` set, a user's home is the directory ``<homes_root>/<home name>`` (the name is the one
their home volume has: :func:`core.labels.home_volume_name`) on storage that the hub host and every
node mount at that same path (NFS in production). A server binds it at /home/jovyan; the Titan
service reads it there.

The home directory is made here, on the hub host, before a server's service is created, and
nowhere else: a node that has not mounted the storage lacks the directory, so Swarm rejects the
task there ("bind source path does not exist") instead of writing a home on that node's own disk.
For the same reason the root itself is never created here, and a home is made only under a root
that holds the marker file ``.titan-homes`` (made once on the shared storage by the admin or
Ansible): a hub host whose mount is missing sees its bare mount point, without the marker, and
refuses instead of making homes on its own disk.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from core.labels import home_volume_name

#: The owner of every home: the images' user jovyan (uid 1000, gid 1000).
HOME_UID = 1000
HOME_GID = 1000
#: The file that marks a homes root as the shared storage itself (not a bare mount point).
HOMES_MARKER = ".titan-homes"


class HomesRootMissing(RuntimeError):
    """The homes root is not the shared storage on this host (missing, or without its marker): it is
    not mounted here."""


def home_directory(root: str | Path, template: str, user: str) -> Path:
    """Where ``user``'s home is under ``root`` (nothing is checked or made)."""
    return Path(root) / home_volume_name(template, user)


def ensure_home(root: str | Path, template: str, user: str, uid: int = HOME_UID, gid: int = HOME_GID) -> Path:
    """``user``'s home directory under ``root``, made (mode 0700, owned ``uid:gid``) when missing;
    an existing one is kept as it is, with only its own owner set to ``uid:gid`` if it differs.

    A new home appears whole: it is made under a temporary name, given its owner, then renamed into
    place, so a server never binds a home that jovyan cannot write, even when two starts race.
    Blocking (a shared mount may be slow): call it in a thread. Raises :class:`HomesRootMissing`
    when ``root`` is not a directory holding :data:`HOMES_MARKER`, ``OSError`` when the storage refuses."""
    base = Path(root)
    if not base.is_absolute():
        raise ValueError(f"the homes root must be an absolute path, not {root!r}")
    if not (base / HOMES_MARKER).is_file():
        raise HomesRootMissing(f"the homes root {base} on this host is not the shared storage (no {HOMES_MARKER} "
                               f"there): is the storage mounted? (docs/swarm-homes.md)")
    home = home_directory(base, template, user)
    if not _existing(home):
        fresh = base / f".{home.name}.new-{secrets.token_hex(4)}"
        os.mkdir(fresh, 0o700)
        try:
            os.chown(fresh, uid, gid)
            os.rename(fresh, home)  # an empty home made meanwhile is replaced by this equal one
        except OSError:
            os.rmdir(fresh)
            if not _existing(home):  # not someone else's home made meanwhile (ENOTEMPTY): a real failure
                raise
    info = os.lstat(home)
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(home, uid, gid, follow_symlinks=False)
    return home


def _existing(home: Path) -> bool:
    """Whether ``home`` exists as a directory (not a link to one); OSError for anything else there."""
    try:
        info = os.lstat(home)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{home} exists and is not a directory: an admin must move it away")
    return True
