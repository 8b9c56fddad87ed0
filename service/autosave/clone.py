"""Clones into a user's home volume when a server starts, with the user's GitHub token.

The service runs as root on the Docker host and reaches the home through the volume's host path,
which the user controls (from inside their container, as uid 1000). So:

* ``git clone`` runs as root but in a *staging* directory under the service's own state directory
  (mode 0700, no user can reach it), with no system or global config, hooks off
  (``core.hooksPath=/dev/null``: not even ``post-checkout`` runs), no submodules, only http(s),
  no redirects and credential helpers off. A fresh clone has no config or hooks from the remote;
  nothing from the repository is executed.
* The token reaches that one git process only, through ``GIT_ASKPASS`` and ``TITAN_GIT_TOKEN`` in
  its environment (as for pushes), and only for a URL on the GitHub host; the remote URL written
  into the clone's ``.git/config`` is credential-free.
* The finished tree is then copied into the home through directory file descriptors
  (``O_NOFOLLOW``, ``O_EXCL``, ``mkdir`` relative to the parent's descriptor), so a symbolic link
  the user swaps into the path cannot send root's writes outside the home, and every file,
  directory and link is ``fchown``'d to the home's owner (1000:1000 by default) as it is created.
* A repository already present (anything at the target path) is left alone.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from service.autosave.push import PushOutcome, classify, remote_url
from service.autosave.snapshot import GIT_OPTIONS, WorkspaceError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class CloneResult:
    state: str  # "cloned", "present", "sign in again", "error"
    message: str
    outcome: PushOutcome | None = None


def default_path(url: str) -> str:
    """Where a URL is cloned by default: its last path component without ``.git``."""
    name = PurePosixPath(urlsplit(url).path.rstrip("/")).name.removesuffix(".git")
    if not name or name in (".", "..") or name.startswith("."):
        raise ValueError(f"cannot name a directory after {url!r}")
    return name


def _open_parent(home_fd: int, parts: tuple[str, ...], uid: int, gid: int, create: bool) -> int | None:
    """A descriptor of ``parts`` below ``home_fd`` (no symbolic link followed); missing directories
    are created (owned by uid:gid) when ``create``, else None."""
    fd = os.dup(home_fd)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchown(child, uid, gid)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def present(home: Path, relpath: str) -> bool:
    """Something (a file, directory or link) is at ``relpath`` in the home already."""
    parts = PurePosixPath(relpath).parts
    home_fd = os.open(home, _DIR_FLAGS)
    try:
        try:
            parent = _open_parent(home_fd, parts[:-1], 0, 0, create=False)
        except OSError as error:  # ENOTDIR, ELOOP: a parent is a file or a symbolic link
            raise WorkspaceError(f"{relpath}: a parent folder is a file or a symbolic link") from error
        if parent is None:
            return False
        try:
            os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(parent)
    finally:
        os.close(home_fd)


def _copy_tree(source: Path, target_fd: int, uid: int, gid: int) -> None:
    """Copy ``source`` (root's staging tree) into the directory ``target_fd``, owned by uid:gid."""
    with os.scandir(source) as entries:
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(entry.path), entry.name, dir_fd=target_fd)
                os.chown(entry.name, uid, gid, dir_fd=target_fd, follow_symlinks=False)
            elif stat.S_ISDIR(info.st_mode):
                os.mkdir(entry.name, 0o700, dir_fd=target_fd)
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=target_fd)
                try:
                    os.fchown(child, uid, gid)
                    _copy_tree(Path(entry.path), child, uid, gid)
                    os.fchmod(child, mode)
                finally:
                    os.close(child)
            elif stat.S_ISREG(info.st_mode):
                out = os.open(entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o600, dir_fd=target_fd)
                try:
                    os.fchown(out, uid, gid)
                    with open(entry.path, "rb") as src, os.fdopen(os.dup(out), "wb") as dst:
                        shutil.copyfileobj(src, dst, 1024 * 1024)
                    os.fchmod(out, mode)
                finally:
                    os.close(out)
            # anything else (a fifo from a checkout cannot happen) is skipped


def clone_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }


def clone_into(home: Path, relpath: str, url: str, staging_root: Path, github_url: str, token: str | None,
               askpass: Path, uid: int = 1000, gid: int = 1000, timeout: float = 600) -> CloneResult:
    """Clone ``url`` to ``relpath`` in ``home`` (the host path of the user's home volume)."""
    try:
        if present(home, relpath):
            return CloneResult("present", f"{relpath} is already there; left alone")
    except WorkspaceError as error:
        return CloneResult("error", str(error))
    github = remote_url(url, github_url)
    parts = urlsplit(url)
    if github is None and (parts.scheme not in ("http", "https") or parts.username or parts.password):
        return CloneResult("error", "only http(s) URLs without credentials can be cloned")
    staging_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix="clone-", dir=staging_root))
    try:
        env = clone_env(staging)
        if github is not None and token:
            env.update({"GIT_ASKPASS": str(askpass), "TITAN_GIT_TOKEN": token})
        args = ["git", *GIT_OPTIONS, "-c", "credential.helper=", "-c", "http.followRedirects=false",
                "-c", "protocol.allow=never", "-c", "protocol.http.allow=always", "-c", "protocol.https.allow=always",
                "-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=60",
                "clone", "--quiet", "--no-recurse-submodules", "--", github or url, "repo"]
        try:
            result = subprocess.run(args, env=env, cwd=staging, capture_output=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return CloneResult("error", f"git clone took longer than {timeout:.0f} s", PushOutcome.NETWORK)
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            if token:
                stderr = stderr.replace(token, "***")
            outcome = classify(result.returncode, "", stderr)
            if outcome.outcome is PushOutcome.AUTH:
                return CloneResult("sign in again", "GitHub refused your token: sign in to Titan again",
                                   outcome.outcome)
            return CloneResult("error", f"git clone failed: {outcome.message}", outcome.outcome)
        target = PurePosixPath(relpath).parts
        home_fd = os.open(home, _DIR_FLAGS)
        try:
            parent = _open_parent(home_fd, target[:-1], uid, gid, create=True)
            assert parent is not None
            try:
                try:
                    os.mkdir(target[-1], 0o700, dir_fd=parent)
                except FileExistsError:
                    return CloneResult("present", f"{relpath} appeared meanwhile; left alone")
                top = os.open(target[-1], _DIR_FLAGS, dir_fd=parent)
                try:
                    os.fchown(top, uid, gid)
                    _copy_tree(staging / "repo", top, uid, gid)
                    os.fchmod(top, stat.S_IMODE((staging / "repo").stat().st_mode))
                finally:
                    os.close(top)
            finally:
                os.close(parent)
        finally:
            os.close(home_fd)
        return CloneResult("cloned", f"cloned {github or url} into {relpath}")
    except OSError as error:
        return CloneResult("error", f"could not write {relpath} into the home directory: {error.strerror or error}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["CloneResult", "clone_into", "default_path", "present"]
