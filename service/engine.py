"""The autosave scheduler: which repositories to snapshot when, pushing, and the status it keeps.

Files are reached through the host path of the user's home volume (``docker volume inspect``
→ Mountpoint; the service runs as root on the Docker host), not through ``docker exec``: that
works whether or not a server runs (the final snapshot is taken *after* a server stopped, from
the volume that outlives it), needs nothing from the user's image, and keeps the token out of
the user's container entirely.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from traitlets import Bool, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from core.timeutil import utcnow
from service.autosave import Identity, PushOutcome, WorkspaceError, locate, push, remote_url, snapshot
from service.autosave.snapshot import autosave_commits, create_branch, git_env
from service.autosave.steps import STEP_ERRORS, noreply_email, safe_error, safe_ref_part
from service.db import DEFAULT_INTERVAL, AutosaveRepo, AutosaveUser, Database
from service.github import github_user
from service.hub import GitHubCredentials, HubError
from service.metrics import record_push, record_snapshot
from service.watcher import ServerChange

log = logging.getLogger("titan.service.autosave")

class CredentialSource(Protocol):
    """What autosave asks the hub (``HubClient``): a user's GitHub token, fetched fresh for each use."""

    async def github_credentials(self, name: str) -> GitHubCredentials | None: ...


VolumeResolver = Callable[[str], Path]


@dataclass
class _Backoff:
    delay: float = 0.0
    until: float = 0.0


class Autosave(LoggingConfigurable):
    """Snapshots and pushes users' repositories; told by the hub watcher (``servers_changed``) what
    runs and stopped. Clones at a server's start (``service.clones``) use its settings and tokens."""

    github_url = Unicode(
        "https://github.com",
        help="""The GitHub the users' tokens belong to (https://github.com or a GitHub Enterprise URL).
        Pushes and clones with a token go only to remotes on this host: the token is never sent anywhere
        else. titan.yaml auth.github.url. Default https://github.com.""",
    ).tag(config=True)
    branch_template = Unicode(
        "autosave/{user}/{server}",
        help="""Autosave branch name; {user} and {server} ("default" for the default server) are filled
        in. titan.yaml service.branch_template. Default autosave/{user}/{server}.""",
    ).tag(config=True)
    default_interval = Integer(
        DEFAULT_INTERVAL, help="""Autosave interval of a user who has not chosen one, in seconds.
        titan.yaml service.interval. Default 600.""",
    ).tag(config=True)
    min_interval = Integer(
        60, help="Shortest autosave interval a user may choose, in seconds. titan.yaml service.min_interval. "
        "Default 60.",
    ).tag(config=True)
    max_file_size = Integer(
        10 * 1024 * 1024, help="""Files larger than this many bytes are left out of snapshots and listed.
        titan.yaml service.max_file_size_mb. Default 10 MB (GitHub refuses 100 MB).""",
    ).tag(config=True)
    concurrency = Integer(4, help="Repositories snapshotted, pushed or cloned at the same time. Default 4.").tag(
        config=True)
    retry_base = Float(30.0, help="First retry delay after a network error, in seconds (doubles). Default 30.").tag(
        config=True)
    retry_max = Float(1800.0, help="Longest retry delay after network errors, in seconds. Default 1800.").tag(
        config=True)
    push_timeout = Float(300.0, help="Seconds one git push may take before it counts as failed. Default 300.").tag(
        config=True)
    author_ttl = Float(
        3600.0, help="""Seconds a user's GitHub name and public email (the commits' author) are reused before
        GitHub is asked again. Default 3600.""",
    ).tag(config=True)
    home_owner = Unicode(
        "1000:1000", help="""uid:gid that files cloned into a home volume get (the images' jovyan).
        Default 1000:1000.""",
    ).tag(config=True)
    enabled = Bool(
        True, help="""Take snapshots and clones (the watcher tells this part what changes). False: the
        pages and API are served, nothing is snapshotted. Default True.""",
    ).tag(config=True)

    def __init__(self, db: Database, hub: CredentialSource, volume_path: VolumeResolver, askpass: Path, *,
                 state_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db
        self.hub = hub
        self.volume_path = volume_path
        self.askpass = askpass
        self.state_dir = state_dir
        self.running: dict[str, set[str]] = {}  # user -> servers running at the last pass
        self._locks: dict[int, asyncio.Lock] = {}
        self._refused: dict[str, str] = {}  # user -> keyed fingerprint of a refused token
        self._backoff: dict[int, _Backoff] = {}
        self._authors: dict[str, tuple[str, float, Identity]] = {}  # user -> (token key, until, who)
        self._key = secrets.token_bytes(32)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="autosave")

    @property
    def home_uid(self) -> int:
        return int(self.home_owner.partition(":")[0])

    @property
    def home_gid(self) -> int:
        uid, _, gid = self.home_owner.partition(":")
        return int(gid or uid)

    async def thread(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    # ---- settings ------------------------------------------------------------------------

    def store_root(self, user: str) -> Path:
        return self.state_dir / "autosave" / safe_ref_part(user)

    def branch_for(self, user: str, server: str) -> str:
        return self.branch_template.format(user=safe_ref_part(user), server=safe_ref_part(server or "default"))

    # ---- the hub watcher's pass ------------------------------------------------------------

    async def servers_changed(self, change: ServerChange) -> None:
        """One pass: final snapshots for stopped servers, scheduled snapshots when due."""
        self.running = {}
        for user, server in change.running:
            self.running.setdefault(user, set()).add(server)
        if not self.enabled:
            return
        with self.db.session() as session:
            users = [(u.name, u.interval, [r.id for r in u.repos])
                     for u in session.scalars(select(AutosaveUser).where(AutosaveUser.enabled.is_(True)))]
        jobs: list[Awaitable[Any]] = []
        for name, interval, repo_ids in users:
            if not repo_ids:
                continue
            for user, stopped in sorted(change.stopped):
                if user == name:
                    log.info("Server %s/%s stopped: final snapshot", name, stopped or "default")
                    jobs += [self.run_repo(name, repo_id, stopped, "final snapshot") for repo_id in repo_ids]
            servers = self.running.get(name)
            if servers:
                server = sorted(servers)[0]
                jobs += [self.run_repo(name, repo_id, server, "scheduled", interval) for repo_id in repo_ids]
        if jobs:
            await asyncio.gather(*jobs)

    async def final_pass(self) -> int:
        """Final snapshots for every server seen running: the service is stopping, and when the hub
        stops it, the servers stop next, while no service watches. Returns the snapshots tried."""
        with self.db.session() as session:
            repos = {u.name: [r.id for r in u.repos]
                     for u in session.scalars(select(AutosaveUser).where(AutosaveUser.enabled.is_(True)))}
        jobs = [self.run_repo(name, repo_id, server, "final snapshot")
                for name, servers in self.running.items() for server in sorted(servers)[:1]
                for repo_id in repos.get(name, [])]
        if jobs:
            log.info("Stopping: final snapshots of %d repositories", len(jobs))
            await asyncio.gather(*jobs)
        return len(jobs)

    # ---- snapshots -----------------------------------------------------------------------

    async def run_repo(self, user: str, repo_id: int, server: str, reason: str,
                       interval: int | None = None) -> dict[str, Any]:
        """Snapshot one repository (when due) and push; returns its status."""
        lock = self._locks.setdefault(repo_id, asyncio.Lock())
        async with lock:
            with self.db.session() as session:
                repo = session.get(AutosaveRepo, repo_id)
                if repo is None or repo.user_name != user:
                    raise KeyError(repo_id)
                due = interval is None or repo.last_pass is None or (
                    utcnow() - repo.last_pass).total_seconds() >= interval
                pending_push = repo.last_commit is not None and repo.last_commit != repo.last_pushed_commit
                if not due and not (pending_push and self._retry_due(repo_id)):
                    return repo.status()
                path, remote = repo.path, repo.remote
                branch = repo.branch or self.branch_for(user, server)
                strip = bool(repo.user.strip_outputs)
            try:
                await self._pass(user, repo_id, path, remote, branch, reason, snap=due, strip=strip)
            except STEP_ERRORS as error:
                log.exception("Autosave of %s:%s failed", user, path)
                record_snapshot(reason, "failed")
                self._update(repo_id, state="error", error=f"{type(error).__name__}: {safe_error(error)}")
            with self.db.session() as session:
                found = session.get(AutosaveRepo, repo_id)
                return found.status() if found else {}

    def _retry_due(self, repo_id: int) -> bool:
        backoff = self._backoff.get(repo_id)
        return backoff is not None and backoff.delay > 0 and time.monotonic() >= backoff.until

    def _update(self, repo_id: int, **values: Any) -> None:
        with self.db.session() as session:
            repo = session.get(AutosaveRepo, repo_id)
            if repo is not None:
                for key, value in values.items():
                    setattr(repo, key, value)

    async def _author(self, user: str, creds: GitHubCredentials | None) -> Identity:
        if creds is None:
            return Identity(user, f"{safe_ref_part(user)}@users.noreply.titan.invalid")
        key = self._fingerprint(creds.token)
        cached = self._authors.get(user)
        if cached and cached[0] == key and cached[1] > time.monotonic():
            return cached[2]  # no GitHub API call on every pass (most passes find nothing to commit)
        email = None
        status, body = await github_user(self.github_url, creds.token)
        if status == 200:
            email = body.get("email")  # GitHub shows only a public email here
        elif status == 401:
            self._refused[user] = key
        identity = Identity(creds.name or creds.login, email or noreply_email(creds.login, creds.id))
        if status == 200:
            self._authors[user] = (key, time.monotonic() + self.author_ttl, identity)
        return identity

    def _fingerprint(self, token: str) -> str:
        # keyed with a per-process random key, kept only in memory: not a stored form of the token
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def refuse(self, user: str, token: str) -> None:
        """GitHub refused ``user``'s ``token``: not used again (pushes, clones) until it changes."""
        self._refused[user] = self._fingerprint(token)

    def refused(self, user: str, token: str) -> bool:
        return self._refused.get(user) == self._fingerprint(token)

    async def credentials(self, user: str) -> GitHubCredentials | None:
        try:
            return await self.hub.github_credentials(user)
        except HubError as error:
            log.warning("Could not fetch %s's GitHub credentials from the hub: %s", user, type(error).__name__)
            return None

    async def _pass(self, user: str, repo_id: int, path: str, remote: str, branch: str, reason: str,
                    snap: bool, strip: bool = False) -> None:
        home = await self.thread(self.volume_path, user)
        workspace = locate(home, path, self.store_root(user))
        creds = await self.credentials(user)
        now = utcnow()
        if snap:
            author = await self._author(user, creds)
            result = await self.thread(lambda: snapshot(
                workspace, branch, author, max_size=self.max_file_size, strip_outputs=strip,
                message=f"Autosave ({reason}) {now.strftime('%Y-%m-%d %H:%M:%S')} UTC"))
            record_snapshot(reason, "committed" if result.commit else "unchanged")
            values: dict[str, Any] = {"last_pass": now, "branch": branch,
                                      "left_out": [item.as_dict() for item in result.left_out]}
            if result.commit:
                values.update(last_snapshot=now, last_commit=result.commit)
                log.info("Autosave %s:%s -> %s %s (%d files, %s)", user, path, branch, result.commit[:8],
                         result.files, reason)
            elif result.tip:
                values["last_commit"] = result.tip
            self._update(repo_id, **values)
        await self._push(user, repo_id, workspace, remote, branch, creds)

    async def _push(self, user: str, repo_id: int, workspace: Any, remote: str, branch: str,
                    creds: GitHubCredentials | None) -> None:
        with self.db.session() as session:
            repo = session.get(AutosaveRepo, repo_id)
            assert repo is not None
            tip, pushed, target = repo.last_commit, repo.last_pushed_commit, repo.push_branch or branch
        if tip is None:
            self._update(repo_id, state="ok", message="nothing to save yet", error="")
            return
        if tip == pushed:
            self._update(repo_id, state="ok", message=f"up to date on {target}", error="")
            return
        if creds is None:
            self._update(repo_id, state="not pushed", error="",
                         message="snapshot kept on the server; no GitHub token to push with (sign in with GitHub)")
            return
        if self._refused.get(user) == self._fingerprint(creds.token):
            self._update(repo_id, state="sign in again", error="",
                         message="GitHub refused your token: sign in to Titan again; snapshots are kept meanwhile")
            return
        url = await self.thread(self._remote_url, workspace.gitdir, remote)
        if url is None:
            self._update(repo_id, state="error", message="",
                         error=f"remote {remote!r} is missing or not on {self.github_url}")
            return
        result = await self.thread(push, workspace.store, url, f"refs/heads/{branch}", target, creds.token,
                                    self.askpass, self.push_timeout)
        record_push(result.outcome.value)
        now = utcnow()
        if result.outcome is PushOutcome.REJECTED:
            moved = target
            target = f"{branch}-{now.strftime('%Y%m%d-%H%M%S')}"
            result = await self.thread(push, workspace.store, url, f"refs/heads/{branch}", target, creds.token,
                                        self.askpass, self.push_timeout)
            record_push(result.outcome.value)
            if result.outcome in (PushOutcome.PUSHED, PushOutcome.UP_TO_DATE):
                self._backoff.pop(repo_id, None)
                self._update(repo_id, state="pushed to a new branch", push_branch=target, last_push=now,
                             last_pushed_commit=tip, last_pushed_branch=target, error="",
                             message=f"the remote branch {moved} had moved; pushed to {target} instead, nothing lost")
                log.info("Autosave %s: %s moved on the remote; pushed to %s", user, moved, target)
                return
        if result.outcome in (PushOutcome.PUSHED, PushOutcome.UP_TO_DATE):
            self._backoff.pop(repo_id, None)
            self._update(repo_id, state="ok", last_push=now, last_pushed_commit=tip, last_pushed_branch=target,
                         message=f"pushed to {target}", error="")
        elif result.outcome is PushOutcome.AUTH:
            self._refused[user] = self._fingerprint(creds.token)
            self._update(repo_id, state="sign in again", error="", message=result.message)
            log.info("Autosave %s: GitHub refused the token; waiting for a new sign-in", user)
        elif result.outcome is PushOutcome.NETWORK:
            backoff = self._backoff.setdefault(repo_id, _Backoff())
            backoff.delay = min(self.retry_max, backoff.delay * 2 or self.retry_base)
            backoff.until = time.monotonic() + backoff.delay
            self._update(repo_id, state="network error", error=result.message,
                         message=f"will retry in {backoff.delay:.0f} s")
        else:
            self._update(repo_id, state="error", message="", error=f"{result.outcome.value}: {result.message}")

    @staticmethod
    def _remote_url_of(gitdir: Path, remote: str) -> str | None:
        if not re.match(r"^[A-Za-z0-9._-]+$", remote):
            return None
        # --file reads that one file as data; includes are off with --file.
        result = subprocess.run(["git", "config", "--file", str(gitdir / "config"), "--get", f"remote.{remote}.url"],
                                capture_output=True, text=True, check=False, env=git_env(gitdir.parent),
                                cwd="/")
        return result.stdout.strip() or None if result.returncode == 0 else None

    def _remote_url(self, gitdir: Path, remote: str) -> str | None:
        url = self._remote_url_of(gitdir, remote)
        return remote_url(url, self.github_url) if url else None

    # ---- status and restore --------------------------------------------------------------

    async def history(self, user: str, repo_id: int) -> list[dict[str, str]]:
        with self.db.session() as session:
            repo = session.get(AutosaveRepo, repo_id)
            if repo is None or repo.branch is None:
                return []
            path, branch = repo.path, repo.branch
        try:
            home = await self.thread(self.volume_path, user)
            workspace = locate(home, path, self.store_root(user))
        except (WorkspaceError, LookupError, OSError):
            return []
        commits: list[dict[str, str]] = await self.thread(autosave_commits, workspace, branch)
        return commits

    async def restore(self, user: str, repo_id: int, commit: str) -> dict[str, Any]:
        """A new branch ``restore/...`` at an autosave commit, created on the remote (and in the store)."""
        with self.db.session() as session:
            repo = session.get(AutosaveRepo, repo_id)
            if repo is None or repo.user_name != user or repo.branch is None:
                raise WorkspaceError("this repository has no autosave yet")
            path, remote, branch = repo.path, repo.remote, repo.branch
        home = await self.thread(self.volume_path, user)
        workspace = locate(home, path, self.store_root(user))
        known = {c["commit"] for c in await self.thread(autosave_commits, workspace, branch, 1000)}
        if commit not in known:
            raise WorkspaceError("not a commit of this repository's autosave branch")
        name = f"restore/{safe_ref_part(user)}/{utcnow().strftime('%Y%m%d-%H%M%S')}-{commit[:7]}"
        await self.thread(create_branch, workspace, name, commit)
        creds = await self.credentials(user)
        url = await self.thread(self._remote_url, workspace.gitdir, remote)
        if creds is None or url is None:
            return {"branch": name, "commit": commit, "pushed": False,
                    "message": "branch created on the server; it could not be pushed (no token or remote)"}
        result = await self.thread(push, workspace.store, url, f"refs/heads/{name}", name, creds.token,
                                    self.askpass, self.push_timeout)
        pushed = result.outcome in (PushOutcome.PUSHED, PushOutcome.UP_TO_DATE)
        if result.outcome is PushOutcome.AUTH:
            self._refused[user] = self._fingerprint(creds.token)
        message = (f"`git fetch {remote} {name}` then `git switch {name}` to get it back" if pushed
                   else result.message)
        return {"branch": name, "commit": commit, "pushed": pushed, "message": message}


