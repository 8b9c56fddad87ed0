"""Clones into a user's home when one of their servers starts: the repositories of the user's
settings and of the server's profile (``clone`` lists), with the user's GitHub token. Told by the
hub watcher which servers became ready; uses the autosave part's GitHub host, home owner, threads
and token memory (a token GitHub refused is not tried again by either)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from traitlets import Float
from traitlets.config import LoggingConfigurable

from core.timeutil import utcnow
from service.autosave import PushOutcome
from service.autosave.clone import clone_into, default_path
from service.autosave.steps import STEP_ERRORS, safe_error
from service.db import CloneRepo
from service.engine import Autosave
from service.watcher import ServerChange

log = logging.getLogger("titan.service.autosave")

#: () -> (the default profile's slug, profile slug -> repositories its servers clone)
ProfileClones = Callable[[], tuple[str, Mapping[str, tuple[str, ...]]]]
#: (user, server) -> the profile slug of that running server (its container's titan.profile label)
ProfileOf = Callable[[str, str], str | None]


class Clones(LoggingConfigurable):
    """Clones at server start, from the user's list and the profile's."""

    clone_timeout = Float(
        600.0, help="Seconds one git clone may take before it counts as failed (its status says so). Default 600.",
    ).tag(config=True)

    def __init__(self, autosave: Autosave, *, profiles: ProfileClones | None = None,
                 profile_of: ProfileOf | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.autosave = autosave
        self.profiles = profiles
        self.profile_of = profile_of
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def servers_changed(self, change: ServerChange) -> None:
        """The hub watcher's pass: clones for the servers that became ready since the last one."""
        if not self.autosave.enabled:
            return
        jobs = await self._clone_jobs(change)
        if jobs:
            await asyncio.gather(*jobs)

    async def _clone_jobs(self, change: ServerChange) -> list[Awaitable[Any]]:
        """Clones for servers that started since the last pass (the user's list and the profile's)."""
        if not change.started:
            return []
        with self.autosave.db.session() as session:
            own: dict[str, list[tuple[str, str]]] = {}
            for row in session.scalars(select(CloneRepo).where(CloneRepo.source == "settings")):
                own.setdefault(row.user_name, []).append((row.url, row.path))
        default, by_profile = self.profiles() if self.profiles else ("", {})
        jobs: list[Awaitable[Any]] = []
        for user, server in sorted(change.started):
            model = change.active.get(user, {}).get(server, {})
            profile = str((model.get("user_options") or {}).get("profile") or "")
            if not profile and self.profile_of is not None and by_profile:
                profile = await self.autosave.thread(self.profile_of, user, server) or ""
            profile = profile or default
            wanted = [(url, path, "settings") for url, path in own.get(user, [])]
            for url in by_profile.get(profile, ()):
                try:
                    wanted.append((url, default_path(url), f"profile {profile}"))
                except ValueError as error:
                    log.warning("Profile %s: %s", profile, error)
            if wanted:
                jobs.append(self.clone_for(user, wanted))
        return jobs

    async def clone_for(self, user: str, wanted: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """Clone each (url, path, source) into the user's home unless something is there already."""
        results = []
        try:
            home: Path | None = await self.autosave.thread(self.autosave.volume_path, user)
        except (LookupError, OSError) as error:
            home, problem = None, str(error)
        creds = await self.autosave.credentials(user) if home is not None else None
        token = creds.token if creds and not self.autosave.refused(user, creds.token) else None
        for url, path, source in wanted:
            lock = self._locks.setdefault((user, path), asyncio.Lock())
            async with lock:
                if home is None:
                    state, message = "error", problem
                else:
                    try:
                        part = self.autosave
                        result = await part.thread(
                            clone_into, home, path, url, part.state_dir / "clones", part.github_url, token,
                            part.askpass, part.home_uid, part.home_gid, self.clone_timeout)
                        state, message = result.state, result.message
                        if result.outcome is PushOutcome.AUTH and creds is not None:
                            self.autosave.refuse(user, creds.token)
                    except STEP_ERRORS as error:
                        log.exception("Clone of %s for %s failed", url, user)
                        state, message = "error", f"{type(error).__name__}: {safe_error(error)}"
                if state == "cloned":
                    log.info("Cloned %s into %s's home at %s (%s)", url, user, path, source)
                results.append(self._clone_status(user, url, path, source, state, message))
        return results

    def _clone_status(self, user: str, url: str, path: str, source: str, state: str, message: str) -> dict[str, Any]:
        with self.autosave.db.session() as session:
            row = session.scalars(select(CloneRepo).where(CloneRepo.user_name == user, CloneRepo.path == path)).first()
            if row is None:
                row = CloneRepo(user_name=user, url=url, path=path, source=source)
                session.add(row)
            elif row.source != "settings":
                row.url, row.source = url, source
            row.state, row.message, row.last_attempt = state, message, utcnow()
            session.flush()
            return row.status()
