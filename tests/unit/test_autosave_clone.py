"""Clones at server start: from the user's settings and from the server's profile, through the fake
GitHub's git smart HTTP with the user's token (GIT_ASKPASS, never written), into a home directory
in a tmp dir as 1000:1000; a repository already there and symbolic links are left alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.autosave.clone import clone_into, default_path
from service.autosave.push import write_askpass
from service.clones import Clones
from service.db import CloneRepo, Database
from service.engine import Autosave
from service.hub import GitHubCredentials
from service.watcher import HubWatcher
from tests.fakegithub import FakeGitHub
from tests.fakegithub.git import GitHosting, hosted

ROOT = os.geteuid() == 0
UID, GID = (1000, 1000) if ROOT else (os.geteuid(), os.getegid())


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[FakeGitHub, GitHosting]]:
    fake = FakeGitHub()
    fake.add_user("alice", name="Alice", id=4242)
    fake.register_app("titan", "secret", "http://127.0.0.1:9/hub/oauth_callback")
    with fake:
        hosting = hosted(fake, tmp_path / "remote")
        for name in ("project", "course"):
            hosting.create_repo("alice", name)
            seed = tmp_path / f"seed-{name}"
            token = fake.issue_token("alice", "titan", ["repo"])
            for args in (["init", "-q", "-b", "main", str(seed)], ["-C", str(seed), "commit", "-q", "--allow-empty",
                                                                   "-m", "first"],
                         ["-C", str(seed), "-c", f"http.extraHeader=Authorization: token {token}", "push", "-q",
                          hosting.clone_url("alice", name), "main"]):
                subprocess.run(["git", "-c", "user.name=A", "-c", "user.email=a@x", *args], check=True,
                               capture_output=True)
        yield fake, hosting


class HubDouble:
    def __init__(self, token: str | None, profile: str = "course") -> None:
        self.token = token
        self.servers: dict[str, dict[str, Any]] = {"": {"ready": True, "user_options": {"profile": profile}}}

    async def active_servers(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {"alice": dict(self.servers)}

    async def github_credentials(self, name: str) -> GitHubCredentials | None:
        return GitHubCredentials(self.token, "alice", 4242, "Alice", None) if self.token else None


class Watched:
    """Autosave told by a real hub watcher (one pass: ``tick``) over the hub double."""

    def __init__(self, engine: Autosave, clones: Clones, hub: HubDouble) -> None:
        self.engine, self.db = engine, engine.db
        self.watcher = HubWatcher(hub)
        self.watcher.watch("Autosave", engine.servers_changed)
        self.watcher.watch("Clones", clones.servers_changed)

    def tick(self) -> None:
        asyncio.run(self.watcher.run_pass())


def make_engine(tmp_path: Path, fake: FakeGitHub, hub: HubDouble, profile_clones: tuple[str, ...]) -> Watched:
    assert fake.url
    db = Database(f"sqlite:///{tmp_path / 'service.sqlite'}")
    (tmp_path / "home").mkdir(exist_ok=True)
    engine = Autosave(db, hub, lambda user: tmp_path / "home", write_askpass(tmp_path), state_dir=tmp_path / "state",
                      github_url=fake.url, home_owner=f"{UID}:{GID}")
    return Watched(engine, Clones(engine, profiles=lambda: ("small", {"course": profile_clones})), hub)


def statuses(engine: Watched) -> dict[str, dict[str, Any]]:
    with engine.db.session() as session:
        return {row.path: row.status() for row in session.query(CloneRepo)}


def test_clones_from_settings_and_profile_at_server_start(github: tuple[FakeGitHub, GitHosting],
                                                          tmp_path: Path) -> None:
    fake, hosting = github
    token = fake.issue_token("alice", "titan", ["repo"])
    hub = HubDouble(token)
    engine = make_engine(tmp_path, fake, hub, (hosting.clone_url("alice", "course"),))
    with engine.db.session() as session:
        session.add(CloneRepo(user_name="alice", url=hosting.clone_url("alice", "project"), path="work/project"))
    home = tmp_path / "home"

    engine.tick()
    found = statuses(engine)
    assert found["work/project"]["state"] == "cloned", found
    assert found["course"]["state"] == "cloned" and found["course"]["source"] == "profile course"
    for repo in (home / "work" / "project", home / "course"):
        log = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(repo), "log", "--format=%s"],
                             capture_output=True, text=True, check=True).stdout
        assert log.strip() == "first"
        config = (repo / ".git" / "config").read_text()
        assert f"url = {fake.url}/alice/" in config and "@" not in config.split("url = ")[1].splitlines()[0]
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [home / "work", *(home / "work").rglob("*"),
                                                             *(home / "course").rglob("*")]}
    assert owners == {(UID, GID)}
    assert not list((tmp_path / "state" / "clones").iterdir())  # the staging copy is gone
    for path in [tmp_path / "service.sqlite", *(tmp_path / "state").rglob("*"), *home.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            assert token.encode() not in path.read_bytes(), path

    # the same server on the next pass: nothing to do; a restart finds the repositories present
    requests = len(hosting.log)
    engine.tick()
    assert len(hosting.log) == requests
    (home / "course" / "mine.txt").write_text("user's work\n")
    hub.servers = {}
    engine.tick()
    hub.servers = {"": {"ready": True, "user_options": {}}}  # no profile in user_options: the default profile
    engine.tick()
    hub.servers = {}  # stopped, then started again with the profile that clones
    engine.tick()
    hub.servers = {"": {"ready": True, "user_options": {"profile": "course"}}}
    engine.tick()
    assert statuses(engine)["course"]["state"] == "present"
    assert (home / "course" / "mine.txt").read_text() == "user's work\n"  # left alone
    assert len(hosting.log) == requests


def test_a_refused_token_and_a_missing_repository_are_reported(github: tuple[FakeGitHub, GitHosting],
                                                               tmp_path: Path) -> None:
    fake, hosting = github
    token = fake.issue_token("alice", "titan", ["repo"])
    fake.revoke_token(token)
    engine = make_engine(tmp_path, fake, HubDouble(token), (hosting.clone_url("alice", "course"),))
    engine.tick()
    assert statuses(engine)["course"]["state"] == "sign in again"
    assert not (tmp_path / "home" / "course").exists()
    fresh = fake.issue_token("alice", "titan", ["repo"])
    result = clone_into(tmp_path / "home", "gone", hosting.clone_url("alice", "missing"), tmp_path / "staging",
                        fake.url or "", fresh, write_askpass(tmp_path), UID, GID)
    assert result.state == "error" and fresh not in result.message


def test_symbolic_links_in_the_home_are_never_followed(github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, hosting = github
    token = fake.issue_token("alice", "titan", ["repo"])
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    (home / "course").symlink_to(outside)
    (home / "work").symlink_to(outside)
    askpass = write_askpass(tmp_path)
    url = hosting.clone_url("alice", "course")
    assert clone_into(home, "course", url, tmp_path / "staging", fake.url or "", token, askpass, UID, GID).state == \
        "present"
    assert clone_into(home, "work/course", url, tmp_path / "staging", fake.url or "", token, askpass, UID,
                      GID).state == "error"
    assert list(outside.iterdir()) == []


def test_default_clone_paths() -> None:
    assert default_path("https://github.com/o/data.git") == "data"
    assert default_path("https://github.com/o/data/") == "data"
    with pytest.raises(ValueError, match="cannot name"):
        default_path("https://github.com/o/.git")
