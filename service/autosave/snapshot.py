"""Snapshots: the working tree of a user's repository, committed onto an autosave branch.

The commit is built in the service's own *store* repository (one per user repository, in the
service's state directory), never in the user's:

* ``GIT_DIR`` is the store, ``GIT_WORK_TREE`` the user's working tree, ``GIT_INDEX_FILE`` a private
  index kept in the store per branch (so unchanged files are not re-hashed on the next pass);
* the store borrows the user's objects read-only through ``objects/info/alternates``, so the
  user's HEAD commit can be the parent without copying history;
* the user's ``.git`` is only *read* as data (HEAD, refs, ``info/exclude``); git never loads the
  user's config, hooks or filters, which matters because the service runs as root on the host;
* ``.gitignore`` is honoured (``--exclude-standard``), and every candidate file passes
  ``check_file`` (secret names, size cap, secret content) before it enters the private index.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from core.timeutil import as_utc, utcnow
from service.autosave.excludes import DEFAULT_MAX_FILE_SIZE, LeftOut, check_file
from service.autosave.strip import ATTRIBUTES, filter_options

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_REF = re.compile(r"^refs/[A-Za-z0-9._/-]+$")
#: Branch names autosave may create: what git allows, minus anything surprising.
_BRANCH = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![/.])$")


class WorkspaceError(ValueError):
    """The repository cannot be autosaved (missing, not a git repository, outside the home)."""


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


@dataclass(frozen=True)
class Workspace:
    """A user's repository (``worktree``, its ``gitdir``) and the service's ``store`` for it."""

    worktree: Path
    gitdir: Path
    store: Path


@dataclass
class SnapshotResult:
    commit: str | None  # the new autosave commit, or None when nothing changed
    tip: str | None  # the branch tip after the pass
    head: str | None  # the user's HEAD commit, if any
    left_out: list[LeftOut] = field(default_factory=list)
    files: int = 0  # paths added, changed or removed in this commit


def valid_branch(name: str) -> bool:
    return bool(_BRANCH.match(name)) and not name.endswith(".lock") and "@{" not in name


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def locate(home: Path, relpath: str, store_root: Path) -> Workspace:
    """The workspace for ``relpath`` inside ``home`` (the host path of the user's home volume).

    Refuses paths that leave the home (``..``, absolute paths, symbolic links pointing out), and
    ``.git`` files pointing outside it.
    """
    home = home.resolve()
    if not relpath or Path(relpath).is_absolute():
        raise WorkspaceError("the repository path must be relative to the home directory")
    worktree = (home / relpath).resolve()
    if not _inside(worktree, home):
        raise WorkspaceError("the repository path leaves the home directory")
    dotgit = worktree / ".git"
    if dotgit.is_symlink():
        raise WorkspaceError("the repository's .git is a symbolic link")
    if dotgit.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dotgit.read_text(errors="replace").strip()
        if not text.startswith("gitdir:"):
            raise WorkspaceError("the repository's .git file is not understood")
        gitdir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    elif dotgit.is_dir():
        gitdir = dotgit
    else:
        raise WorkspaceError(f"{relpath} is not a git repository")
    if not _inside(gitdir, home) or not (gitdir / "objects").is_dir():
        raise WorkspaceError("the repository's git directory is missing or outside the home directory")
    digest = hashlib.sha256(str(worktree.relative_to(home)).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(worktree.relative_to(home)))[:40].strip("-.") or "home"
    return Workspace(worktree=worktree, gitdir=gitdir, store=store_root / f"{slug}-{digest}.git")


def git_env(store: Path, worktree: Path | None = None, index: Path | None = None) -> dict[str, str]:
    """A minimal environment: no system or global config, no prompts, the store as GIT_DIR."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(store),  # nothing to read there: no ~/.gitconfig of anybody
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_DIR": str(store),
    }
    if worktree is not None:
        env["GIT_WORK_TREE"] = str(worktree)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    return env


#: Options on every git call: no hooks, no fsmonitor, no automatic line-ending conversion.
GIT_OPTIONS = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.autocrlf=false",
               "-c", "core.quotepath=false")


def git(env: dict[str, str], *args: str, input_bytes: bytes | None = None, check: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["git", *GIT_OPTIONS, *args], env=env, input=input_bytes, capture_output=True,
                            check=False, timeout=timeout, cwd=env.get("GIT_WORK_TREE") or env["GIT_DIR"])
    if check and result.returncode != 0:
        command = next((a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "-c")),
                       "")
        raise subprocess.CalledProcessError(result.returncode, ["git", command], result.stdout, result.stderr)
    return result


def _out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace").strip()


def read_head(gitdir: Path) -> str | None:
    """The user's HEAD commit, read as data (``HEAD``, loose refs, ``packed-refs``); None if unborn."""
    try:
        head = (gitdir / "HEAD").read_text().strip()
    except OSError:
        return None
    if _SHA.match(head):
        return head
    if not head.startswith("ref:"):
        return None
    ref = head.removeprefix("ref:").strip()
    if not _REF.match(ref) or ".." in ref:
        return None
    common = gitdir
    if (gitdir / "commondir").is_file():  # a linked worktree keeps its branches in the main gitdir
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    for base in dict.fromkeys((gitdir, common)):
        loose = base / ref
        if loose.is_file():
            value = loose.read_text().strip()
            return value if _SHA.match(value) else None
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(errors="replace").splitlines():
                sha, _, name = line.partition(" ")
                if name == ref and _SHA.match(sha):
                    return sha
    return None


def ensure_store(ws: Workspace, strip_outputs: bool = False) -> None:
    """Create the store (first time), point its alternates at the user's objects, and set its
    attributes (notebook output stripping, when asked for)."""
    if not (ws.store / "objects").is_dir():
        ws.store.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", str(ws.store)], env=git_env(ws.store), check=True,
                       capture_output=True, cwd=ws.store.parent)
        git(git_env(ws.store), "config", "core.bare", "false")
        git(git_env(ws.store), "config", "gc.auto", "0")
    alternates = ws.store / "objects" / "info" / "alternates"
    wanted = f"{ws.gitdir / 'objects'}\n"
    if not alternates.is_file() or alternates.read_text() != wanted:
        alternates.write_text(wanted)
    # The user's own excludes (.git/info/exclude) apply as well; read as data and copied.
    user_exclude = ws.gitdir / "info" / "exclude"
    exclude = ws.store / "info" / "exclude"
    text = user_exclude.read_text(errors="replace") if user_exclude.is_file() else ""
    if not exclude.is_file() or exclude.read_text() != text:
        exclude.parent.mkdir(exist_ok=True)
        exclude.write_text(text)
    # info/attributes outranks the user's .gitattributes: only the stripping filter, or nothing.
    attributes = ws.store / "info" / "attributes"
    wanted_attributes = ATTRIBUTES if strip_outputs else ""
    if not attributes.is_file() or attributes.read_text() != wanted_attributes:
        attributes.write_text(wanted_attributes)


def _batch_check(env: dict[str, str], specs: list[str]) -> dict[str, str]:
    """spec -> object name, for the specs that resolve (one ``git cat-file --batch-check``)."""
    out = git(env, "cat-file", "--batch-check=%(objectname)", input_bytes="".join(f"{s}\n" for s in specs).encode())
    found = {}
    for spec, line in zip(specs, out.stdout.decode(errors="replace").splitlines(), strict=False):
        if _SHA.match(line.strip()):
            found[spec] = line.strip()
    return found


def _object_exists(env: dict[str, str], spec: str) -> bool:
    return git(env, "cat-file", "-e", spec, check=False).returncode == 0


def _rev(env: dict[str, str], spec: str) -> str | None:
    result = git(env, "rev-parse", "-q", "--verify", spec, check=False)
    return _out(result) or None if result.returncode == 0 else None


def branch_tip(ws: Workspace, branch: str) -> str | None:
    if not (ws.store / "objects").is_dir():
        return None
    return _rev(git_env(ws.store), f"refs/heads/{branch}^{{commit}}")


def index_path(ws: Workspace, branch: str, strip_outputs: bool = False) -> Path:
    """The private index of a branch; one per stripping mode, since it caches what was staged."""
    suffix = "-stripped" if strip_outputs else ""
    return ws.store / f"index-{hashlib.sha256(branch.encode()).hexdigest()[:16]}{suffix}"


def _candidates(env: dict[str, str], filters: tuple[str, ...] = ()) -> list[str]:
    """Paths that differ between the private index and the working tree (incl. untracked ones)."""
    git(env, *filters, "update-index", "-q", "--refresh", check=False)
    listed = git(env, *filters, "ls-files", "-z", "--modified", "--deleted", "--others", "--exclude-standard").stdout
    return list(dict.fromkeys(p.decode("utf-8", "surrogateescape") for p in listed.split(b"\0") if p))


def _read_limited(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit)


def _screen(worktree: Path, paths: list[str], max_size: int) -> tuple[list[str], list[LeftOut]]:
    """Split candidate paths into those to stage and those left out (with the reason)."""
    allowed: list[str] = []
    left_out: list[LeftOut] = []
    for rel in paths:
        full = worktree / rel
        try:
            info = full.lstat()
        except FileNotFoundError:
            allowed.append(rel)  # deleted: the removal is recorded
            continue
        if stat.S_ISDIR(info.st_mode):
            left_out.append(LeftOut(rel.rstrip("/"), "a nested git repository"))
            continue
        if stat.S_ISLNK(info.st_mode):
            allowed.append(rel)  # committed as a link; its target is not read
            continue
        if not stat.S_ISREG(info.st_mode):
            left_out.append(LeftOut(rel, "not a regular file"))
            continue
        reason = check_file(rel, info.st_size, functools.partial(_read_limited, full, info.st_size), max_size)
        if reason is None:
            allowed.append(rel)
        else:
            left_out.append(reason)
    return allowed, left_out


def snapshot(ws: Workspace, branch: str, author: Identity, message: str = "",
             max_size: int = DEFAULT_MAX_FILE_SIZE, now: datetime | None = None,
             strip_outputs: bool = False) -> SnapshotResult:
    """Commit the working tree of ``ws`` onto ``refs/heads/<branch>`` of its store.

    No commit when the result equals the branch tip's tree (or, before the first snapshot, the
    user's HEAD tree). Parents: the previous autosave commit and, when it is not already part of
    the autosave history, the user's current HEAD. With ``strip_outputs``, notebooks are
    committed with outputs and execution counts cleared (the working tree is not changed).
    """
    if not valid_branch(branch):
        raise WorkspaceError(f"invalid autosave branch name {branch!r}")
    ensure_store(ws, strip_outputs)
    index = index_path(ws, branch, strip_outputs)
    other = index_path(ws, branch, not strip_outputs)
    other.unlink(missing_ok=True)  # the setting changed: the next switch back starts afresh
    env = git_env(ws.store, ws.worktree, index)
    filters = filter_options() if strip_outputs else ()
    head = read_head(ws.gitdir)
    # one git process for: is the user's HEAD here, the branch tip, and their trees
    tip_ref = f"refs/heads/{branch}"
    found = _batch_check(env, [f"{tip_ref}^{{commit}}", f"{tip_ref}^{{tree}}"]
                         + ([f"{head}^{{commit}}", f"{head}^{{tree}}"] if head else []))
    tip, tip_tree = found.get(f"{tip_ref}^{{commit}}"), found.get(f"{tip_ref}^{{tree}}")
    if head is not None and f"{head}^{{commit}}" not in found:
        head = None
    base = tip or head
    base_tree = (tip_tree if tip else found.get(f"{head}^{{tree}}")) if base else EMPTY_TREE
    # "<index>.clean" holds the base the index was last found equal to: with nothing new to stage
    # since, write-tree and the comparison are skipped (a pass with nothing changed: 3 git runs).
    clean = Path(f"{index}.clean")
    fresh = not index.exists()
    if fresh:
        clean.unlink(missing_ok=True)
        if base:
            git(env, "read-tree", base)
        else:
            git(env, "read-tree", "--empty")
    allowed, left_out = _screen(ws.worktree, _candidates(env, filters), max_size)
    if not allowed and not fresh and clean.is_file() and clean.read_text() == (base or ""):
        return SnapshotResult(commit=None, tip=tip, head=head, left_out=left_out)
    clean.unlink(missing_ok=True)
    if allowed:
        git(env, *filters, "update-index", "--add", "--remove", "-z", "--stdin",
            input_bytes=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in allowed))
    tree = _out(git(env, "write-tree"))
    if tree == base_tree:
        clean.write_text(base or "")
        return SnapshotResult(commit=None, tip=tip, head=head, left_out=left_out)
    parents = [tip] if tip else []
    if head and (not tip or git(env, "merge-base", "--is-ancestor", head, tip, check=False).returncode != 0):
        parents.append(head)
    when = as_utc(now or utcnow())
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S +0000")
    commit_env = {**env, "GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
                  "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email,
                  "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    text = message or f"Autosave {when.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    if left_out:
        text += "\n\nLeft out:\n" + "\n".join(f"- {item.path}: {item.reason}" for item in left_out)
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    commit = _out(git(commit_env, *args, "-F", "-", input_bytes=text.encode()))
    git(env, "update-ref", f"refs/heads/{branch}", commit, tip or "0" * 40)
    clean.write_text(commit)
    changed = git(env, "diff-tree", "-r", "--name-only", "-z", "--no-commit-id", base_tree or EMPTY_TREE, tree)
    files = len([p for p in changed.stdout.split(b"\0") if p])
    return SnapshotResult(commit=commit, tip=commit, head=head, left_out=left_out, files=files)


def create_branch(ws: Workspace, branch: str, commit: str) -> None:
    """A new branch in the store at ``commit`` (which must be an autosave commit there)."""
    if not valid_branch(branch):
        raise WorkspaceError(f"invalid branch name {branch!r}")
    env = git_env(ws.store)
    if not _SHA.match(commit) or not _object_exists(env, f"{commit}^{{commit}}"):
        raise WorkspaceError("no such commit")
    git(env, "update-ref", f"refs/heads/{branch}", commit, "0" * 40)


def autosave_commits(ws: Workspace, branch: str, limit: int = 20) -> list[dict[str, str]]:
    """The latest commits of the autosave branch (not the user's own): sha, date, subject."""
    tip = branch_tip(ws, branch)
    if tip is None:
        return []
    env = git_env(ws.store)
    head = read_head(ws.gitdir)
    exclude = ["--not", head] if head and _object_exists(env, f"{head}^{{commit}}") else []
    out = _out(git(env, "log", f"-n{limit}", "--first-parent", "--format=%H%x09%cI%x09%s", tip, *exclude))
    commits = []
    for line in out.splitlines():
        sha, date, subject = (line.split("\t", 2) + ["", ""])[:3]
        commits.append({"commit": sha, "date": date, "subject": subject})
    return commits
