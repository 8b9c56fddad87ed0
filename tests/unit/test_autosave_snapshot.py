"""Snapshots with real git repositories in tmp dirs: the user's HEAD, index, branches and
working tree stay untouched; excludes; no change, no commit."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from service.autosave import Identity, WorkspaceError, locate, snapshot
from service.autosave.snapshot import autosave_commits, create_branch, read_head

BRANCH = "autosave/alice/default"
ME = Identity("Alice", "42+alice@users.noreply.github.com")
TOKEN = "ghp_" + "A1b2C3d4" * 4 + "zzzz"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def store_git(store: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(store), *args], check=True, capture_output=True, text=True).stdout


def user_state(repo: Path) -> tuple[str, str, str, str, str]:
    """Everything of the user's that autosave must not change."""
    index = repo / ".git" / "index"
    return (git(repo, "status", "--porcelain", "--untracked-files=all"), git(repo, "rev-parse", "HEAD"),
            hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else "",
            git(repo, "for-each-ref"), (repo / ".git" / "HEAD").read_text())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    repo = home / "project"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# project\n")
    (repo / ".gitignore").write_text("*.log\n__pycache__/\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=A", "-c", "user.email=a@x", "commit", "-qm", "first")
    return home


def tree_of(store: Path, commit: str) -> set[str]:
    return set(store_git(store, "ls-tree", "-r", "--name-only", commit).split())


def test_snapshot_commits_the_working_tree_without_touching_the_users_repository(home: Path, tmp_path: Path) -> None:
    repo = home / "project"
    (repo / "README.md").write_text("# project\nedited\n")
    (repo / "analysis.py").write_text("print('hi')\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")  # something in the user's index must stay exactly as it is
    (repo / "debug.log").write_text("ignored\n")
    before = user_state(repo)
    head = git(repo, "rev-parse", "HEAD").strip()

    ws = locate(home, "project", tmp_path / "stores")
    result = snapshot(ws, BRANCH, ME)

    assert user_state(repo) == before
    assert result.commit and result.head == head
    assert tree_of(ws.store, result.commit) == {".gitignore", "README.md", "analysis.py", "staged.txt"}
    assert store_git(ws.store, "show", f"{result.commit}:README.md") == "# project\nedited\n"
    assert store_git(ws.store, "rev-list", "--parents", "-n1", result.commit).split()[1:] == [head]
    author = store_git(ws.store, "log", "-1", "--format=%an <%ae>", result.commit).strip()
    assert author == "Alice <42+alice@users.noreply.github.com>"
    assert not (repo / ".git" / "refs" / "heads" / "autosave").exists()  # nothing written into the user's .git
    assert list((repo / ".git").glob("index*")) == [repo / ".git" / "index"]


def test_nothing_changed_means_no_commit(home: Path, tmp_path: Path) -> None:
    ws = locate(home, "project", tmp_path / "stores")
    assert snapshot(ws, BRANCH, ME).commit is None  # the worktree equals HEAD: nothing to save
    (home / "project" / "new.txt").write_text("new\n")
    first = snapshot(ws, BRANCH, ME)
    assert first.commit
    again = snapshot(ws, BRANCH, ME)
    assert again.commit is None and again.tip == first.commit
    (home / "project" / "new.txt").write_text("newer\n")
    third = snapshot(ws, BRANCH, ME)
    assert third.commit and store_git(ws.store, "rev-parse", f"{third.commit}^").strip() == first.commit
    (home / "project" / "new.txt").unlink()
    removed = snapshot(ws, BRANCH, ME)
    assert removed.commit and "new.txt" not in tree_of(ws.store, removed.commit)


def test_secrets_and_large_files_are_left_out_and_listed(home: Path, tmp_path: Path) -> None:
    repo = home / "project"
    (repo / ".env").write_text("PASSWORD=hunter2\n")
    (repo / "notes.txt").write_text(f"my token is {TOKEN}\n")
    (repo / "aws.cfg").write_text("key = AKIAIOSFODNN7EXAMPLE\n")
    (repo / "id_ed25519").write_text("whatever\n")
    (repo / "deploy.txt").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    (repo / "big.bin").write_bytes(b"\0" * 2048)
    (repo / "ok.csv").write_text("a,b\n1,2\n")
    before = user_state(repo)

    ws = locate(home, "project", tmp_path / "stores")
    result = snapshot(ws, BRANCH, ME, max_size=1024)

    assert user_state(repo) == before
    assert result.commit
    files = tree_of(ws.store, result.commit)
    assert "ok.csv" in files
    assert not files & {".env", "notes.txt", "aws.cfg", "id_ed25519", "deploy.txt", "big.bin"}
    reasons = {item.path: item.reason for item in result.left_out}
    assert reasons[".env"] == "secret file name"
    assert reasons["id_ed25519"] == "secret file name"
    assert "GitHub token" in reasons["notes.txt"]
    assert "AWS access key" in reasons["aws.cfg"]
    assert "private key" in reasons["deploy.txt"]
    assert reasons["big.bin"].startswith("larger than 1 KB")
    message = store_git(ws.store, "log", "-1", "--format=%B", result.commit)
    assert "big.bin" in message and TOKEN not in message
    # the secret never entered the store's object database either
    objects = subprocess.run(["grep", "-rl", "hunter2", str(ws.store)], capture_output=True, text=True).stdout
    assert objects == ""


def test_the_users_later_commits_become_a_second_parent(home: Path, tmp_path: Path) -> None:
    repo = home / "project"
    ws = locate(home, "project", tmp_path / "stores")
    (repo / "a.txt").write_text("1\n")
    first = snapshot(ws, BRANCH, ME)
    git(repo, "add", "a.txt")
    git(repo, "-c", "user.name=A", "-c", "user.email=a@x", "commit", "-qm", "mine")
    (repo / "a.txt").write_text("2\n")
    second = snapshot(ws, BRANCH, ME)
    parents = store_git(ws.store, "rev-list", "--parents", "-n1", second.commit or "").split()[1:]
    assert parents == [first.commit, git(repo, "rev-parse", "HEAD").strip()]
    assert [c["commit"] for c in autosave_commits(ws, BRANCH)] == [second.commit, first.commit]


def test_repository_without_commits_and_restore_branch(home: Path, tmp_path: Path) -> None:
    fresh = home / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", "-b", "main")
    (fresh / "x.py").write_text("x = 1\n")
    assert read_head(fresh / ".git") is None
    ws = locate(home, "fresh", tmp_path / "stores")
    result = snapshot(ws, BRANCH, ME)
    assert result.commit and tree_of(ws.store, result.commit) == {"x.py"}
    create_branch(ws, "restore/alice/1", result.commit)
    assert store_git(ws.store, "rev-parse", "refs/heads/restore/alice/1").strip() == result.commit
    with pytest.raises(WorkspaceError):
        create_branch(ws, "restore/alice/2", "0" * 40)


@pytest.mark.parametrize("path", ["../outside", "/etc", "escape", "notarepo", ""])
def test_paths_that_leave_the_home_or_are_not_repositories_are_refused(home: Path, tmp_path: Path,
                                                                       path: str) -> None:
    (tmp_path / "outside").mkdir()
    subprocess.run(["git", "init", "-q", str(tmp_path / "outside")], check=True)
    (home / "escape").symlink_to(tmp_path / "outside")
    (home / "notarepo").mkdir()
    with pytest.raises(WorkspaceError):
        locate(home, path, tmp_path / "stores")


def test_users_repository_config_is_never_executed(home: Path, tmp_path: Path) -> None:
    """The service runs git as root: hooks, fsmonitor and filters from the user's config must not run."""
    repo = home / "project"
    marker = tmp_path / "pwned"
    git(repo, "config", "core.fsmonitor", f"touch {marker}; false")
    git(repo, "config", "filter.evil.clean", f"touch {marker}; cat")
    (repo / ".gitattributes").write_text("*.txt filter=evil\n")
    hook = repo / ".git" / "hooks" / "reference-transaction"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    (repo / "file.txt").write_text("content\n")
    ws = locate(home, "project", tmp_path / "stores")
    result = snapshot(ws, BRANCH, ME)
    assert result.commit
    assert store_git(ws.store, "show", f"{result.commit}:file.txt") == "content\n"
    assert not marker.exists()


def _notebook(outputs: bool) -> str:
    """A notebook as Jupyter writes it (nbformat 4.5 layout; nbformat itself takes seconds to import)."""
    import json

    cell: dict[str, Any] = {"cell_type": "code", "execution_count": 3 if outputs else None, "id": "c2", "metadata": {},
            "outputs": [{"name": "stdout", "output_type": "stream", "text": ["42\n"]}] if outputs else [],
            "source": ["print(42)"]}
    notebook = {"cells": [{"cell_type": "markdown", "id": "c1", "metadata": {}, "source": ["# Title"]}, cell],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_notebook_outputs_are_stripped_in_the_snapshot_only(home: Path, tmp_path: Path) -> None:
    import json

    from service.autosave.strip import strip_notebook

    repo = home / "project"
    (repo / "analysis.ipynb").write_text(_notebook(outputs=True))
    (repo / "broken.ipynb").write_text("{not json")
    before = (repo / "analysis.ipynb").read_bytes()
    ws = locate(home, "project", tmp_path / "stores")

    kept = snapshot(ws, BRANCH, ME)  # the setting is off: committed as it is
    assert kept.commit and store_git(ws.store, "show", f"{kept.commit}:analysis.ipynb").encode() == before

    stripped = snapshot(ws, BRANCH, ME, strip_outputs=True)
    assert stripped.commit
    committed = json.loads(store_git(ws.store, "show", f"{stripped.commit}:analysis.ipynb"))
    code = [c for c in committed["cells"] if c["cell_type"] == "code"]
    assert code[0]["outputs"] == [] and code[0]["execution_count"] is None and "".join(code[0]["source"]) == "print(42)"
    assert store_git(ws.store, "show", f"{stripped.commit}:broken.ipynb") == "{not json"  # not a notebook: as is
    assert (repo / "analysis.ipynb").read_bytes() == before  # the user's notebook keeps its outputs
    assert snapshot(ws, BRANCH, ME, strip_outputs=True).commit is None  # unchanged: no commit

    (repo / "analysis.ipynb").write_text(_notebook(outputs=True).replace("print(42)", "print(43)"))
    again = snapshot(ws, BRANCH, ME, strip_outputs=True)
    assert again.commit and '"outputs": []' in store_git(ws.store, "show", f"{again.commit}:analysis.ipynb")
    assert strip_notebook(b"plain text") == b"plain text"
    assert strip_notebook(_notebook(True).encode()) == _notebook(False).encode()  # exactly as Jupyter writes it


def test_a_150_mb_file_is_left_out_without_being_read(home: Path, tmp_path: Path) -> None:
    huge = home / "project" / "huge.bin"
    subprocess.run(["truncate", "-s", "150M", str(huge)], check=True)  # sparse: no disk used
    (home / "project" / "token.txt").write_text(f"GITHUB_TOKEN={TOKEN}\n")
    ws = locate(home, "project", tmp_path / "stores")
    result = snapshot(ws, BRANCH, ME)  # the default cap, 10 MB
    reasons = {item.path: item.reason for item in result.left_out}
    assert reasons["huge.bin"] == "larger than 10 MB (150 MB)"
    assert "GitHub token" in reasons["token.txt"]
    assert result.commit is None or not {"huge.bin", "token.txt"} & tree_of(ws.store, result.commit)
