"""Pushing through the fake GitHub's git smart HTTP (``git http-backend``, token auth,
``receive.denyNonFastForwards``), and the engine's push rules: never forced, a moved remote goes to
a timestamped branch, a refused token means "sign in again" without a retry loop, network errors
back off. The hub is a small double; git, the git server and the database are real."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.autosave import PushOutcome, push, remote_url
from service.autosave.push import classify, write_askpass
from service.db import AutosaveRepo, AutosaveUser, Database
from service.engine import Autosave
from service.hub import GitHubCredentials
from tests.fakegithub import FakeGitHub
from tests.fakegithub.git import GitHosting, hosted


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[FakeGitHub, GitHosting]]:
    fake = FakeGitHub()
    fake.add_user("alice", name="Alice", email="alice@private.example", email_private=True, id=4242)
    fake.add_user("bob")
    fake.register_app("titan", "secret", "http://127.0.0.1:9/hub/oauth_callback")
    with fake:
        hosting = hosted(fake, tmp_path / "remote")
        hosting.create_repo("alice", "project")
        yield fake, hosting


class HubDouble:
    """What autosave asks the hub: auth_state's token."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def github_credentials(self, name: str) -> GitHubCredentials | None:
        if self.token is None:
            return None
        return GitHubCredentials(self.token, "alice", 4242, "Alice", "alice@private.example")


def make_home(tmp_path: Path, url: str) -> Path:
    home = tmp_path / "home"
    repo = home / "project"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", url)
    (repo / "notebook.py").write_text("print(1)\n")
    return home


def clone(url: str, token: str, target: Path, branch: str) -> Path:
    auth = f"http.extraHeader=Authorization: token {token}"
    subprocess.run(["git", "-c", auth, "clone", "-q", "-b", branch, url, str(target)], check=True,
                   capture_output=True)
    return target


def test_git_smart_http_needs_a_valid_token(github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, hosting = github
    url = hosting.clone_url("alice", "project")
    anonymous = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True,
                               env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})
    assert anonymous.returncode != 0
    bob = fake.issue_token("bob", "titan", ["repo"])
    home = make_home(tmp_path, url)
    from service.autosave import Identity, locate, snapshot

    ws = locate(home, "project", tmp_path / "stores")
    snapshot(ws, "autosave/alice/default", Identity("A", "a@x"))
    askpass = write_askpass(tmp_path)
    assert push(ws.store, url, "refs/heads/autosave/alice/default", "x", bob, askpass).outcome in (
        PushOutcome.FORBIDDEN, PushOutcome.ERROR)  # bob may not push to alice's repository
    alice = fake.issue_token("alice", "titan", ["repo"])
    assert push(ws.store, url, "refs/heads/autosave/alice/default", "x", alice, askpass).outcome is PushOutcome.PUSHED
    assert "x" in hosting.branches("alice", "project")


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def make_engine(tmp_path: Path, fake: FakeGitHub, hub: HubDouble) -> tuple[Autosave, int]:
    assert fake.url
    db = Database(f"sqlite:///{tmp_path / 'service.sqlite'}")
    with db.session() as session:
        session.add(AutosaveUser(name="alice", enabled=True, interval=1,
                                 repos=[AutosaveRepo(path="project", left_out=[])]))
    with db.session() as session:
        repo_id = session.query(AutosaveRepo).one().id
    engine = Autosave(db, hub, lambda user: tmp_path / "home", write_askpass(tmp_path), state_dir=tmp_path / "state",
                      github_url=fake.url, retry_base=60)
    return engine, repo_id


def test_engine_pushes_and_a_moved_remote_goes_to_a_timestamped_branch(
        github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, hosting = github
    url = hosting.clone_url("alice", "project")
    home = make_home(tmp_path, url)
    token = fake.issue_token("alice", "titan", ["repo", "user:email"])
    engine, repo_id = make_engine(tmp_path, fake, HubDouble(token))

    status = run(engine.run_repo("alice", repo_id, "", "scheduled"))
    assert isinstance(status, dict)
    assert status["state"] == "ok", status
    branch = "autosave/alice/default"
    assert hosting.branches("alice", "project")[branch] == status["last_commit"]
    copy = clone(url, token, tmp_path / "copy", branch)
    assert (copy / "notebook.py").read_text() == "print(1)\n"
    # private email: the noreply address is the author
    assert git(copy, "log", "-1", "--format=%an <%ae>").strip() == "Alice <4242+alice@users.noreply.github.com>"

    pushes = hosting.pushes()
    assert run(engine.run_repo("alice", repo_id, "", "scheduled"))["last_commit"] == status["last_commit"]  # type: ignore[index]
    assert hosting.pushes() == pushes  # nothing changed: no commit, no push

    # someone else moved the remote autosave branch: the next push must not overwrite it
    (copy / "other.txt").write_text("theirs\n")
    git(copy, "add", "other.txt")
    git(copy, "-c", "user.name=B", "-c", "user.email=b@x", "commit", "-qm", "elsewhere")
    git(copy, "-c", f"http.extraHeader=Authorization: token {token}", "push", "-q", "origin", branch)
    theirs = git(copy, "rev-parse", "HEAD").strip()
    (home / "project" / "notebook.py").write_text("print(2)\n")
    moved = run(engine.run_repo("alice", repo_id, "", "on request"))
    assert isinstance(moved, dict)
    assert moved["state"] == "pushed to a new branch", moved
    new_branch = moved["push_branch"]
    assert new_branch.startswith(branch + "-") and new_branch in moved["message"]
    branches = hosting.branches("alice", "project")
    assert branches[branch] == theirs  # nothing lost on the remote
    assert branches[new_branch] == moved["last_commit"]  # and nothing lost of ours

    # restore: a new branch at an autosave commit, on the remote
    restored = run(engine.restore("alice", repo_id, status["last_commit"]))
    assert isinstance(restored, dict) and restored["pushed"]
    assert hosting.branches("alice", "project")[restored["branch"]] == status["last_commit"]

    # the token is in no file the service wrote
    for path in [tmp_path / "service.sqlite", *(tmp_path / "state").rglob("*"), *(home.rglob("*"))]:
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_a_refused_token_means_sign_in_again_without_a_retry_loop(
        github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, hosting = github
    make_home(tmp_path, hosting.clone_url("alice", "project"))
    token = fake.issue_token("alice", "titan", ["repo"])
    fake.revoke_token(token)
    hub = HubDouble(token)
    engine, repo_id = make_engine(tmp_path, fake, hub)
    status = run(engine.run_repo("alice", repo_id, "", "scheduled"))
    assert isinstance(status, dict) and status["state"] == "sign in again", status
    assert status["last_commit"]  # the snapshot is kept locally
    attempts = len(hosting.log)
    for _ in range(3):
        (tmp_path / "home" / "project" / "more.txt").write_text(str(_))
        assert run(engine.run_repo("alice", repo_id, "", "on request"))["state"] == "sign in again"  # type: ignore[index]
    assert len(hosting.log) == attempts  # no more tries with the refused token
    # signing in again gives a new token in auth_state: pushing resumes
    hub.token = fake.issue_token("alice", "titan", ["repo"])
    assert run(engine.run_repo("alice", repo_id, "", "on request"))["state"] == "ok"  # type: ignore[index]


def test_network_errors_back_off(github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, _ = github
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    make_home(tmp_path, dead + "/alice/project.git")
    token = fake.issue_token("alice", "titan", ["repo"])
    engine, repo_id = make_engine(tmp_path, fake, HubDouble(token))
    engine.github_url = dead
    status = run(engine.run_repo("alice", repo_id, "", "scheduled"))
    assert isinstance(status, dict) and status["state"] == "network error", status
    assert status["message"] == "will retry in 60 s"
    assert not engine._retry_due(repo_id)  # not before the backoff ends


@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/alice/project.git", "https://github.com/alice/project.git"),
    ("git@github.com:alice/project.git", "https://github.com/alice/project.git"),
    ("ssh://git@github.com/alice/project", "https://github.com/alice/project"),
    ("https://ghp_secret@github.com/alice/project.git", "https://github.com/alice/project.git"),
    ("https://evil.example/alice/project.git", None),
    ("http://github.com/alice/project.git", None),
    ("https://github.com/alice/../bob/x.git", None),
    ("/srv/local/repo.git", None),
])
def test_the_token_only_goes_to_github(url: str, expected: str | None) -> None:
    assert remote_url(url, "https://github.com") == expected


def test_push_outcomes_are_classified() -> None:
    rejected = "To x\n!\trefs/heads/a:refs/heads/a\t[rejected] (fetch first)\nDone\n"
    assert classify(1, rejected, "").outcome is PushOutcome.REJECTED
    assert classify(0, "=\trefs/heads/a:refs/heads/a\t[up to date]\n", "").outcome is PushOutcome.UP_TO_DATE
    assert classify(128, "", "fatal: Authentication failed for 'http://x/'").outcome is PushOutcome.AUTH
    assert classify(128, "", "fatal: unable to access 'x': Failed to connect to h port 1").outcome is \
        PushOutcome.NETWORK
    assert classify(128, "", "fatal: unable to access 'x': The requested URL returned error: 403").outcome is \
        PushOutcome.FORBIDDEN
