"""Git autosave end to end: the real hub and proxy, the Titan service as a hub-managed service,
a really spawned server, and the fake GitHub serving git over smart HTTP with token auth.

alice and bob sign in through the GitHub OAuth flow (their tokens land in auth_state). alice's
repository lives in her home volume; the service snapshots it onto autosave/alice/default and
pushes it with her token, fetched from the hub at push time. The tests run in order and share
one hub: autosave and push, nothing changed, final snapshot at stop, a moved remote, a revoked
token, and at the end no token anywhere it must not be. bob can neither read nor change alice's
autosave.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakegithub import FakeGitHub
from tests.fakegithub.git import GitHosting, hosted
from tests.helpers import free_port, wait_for
from tests.integration.hub import Hub, containers, exec_in, remove_deployment, start_hub, stop_hub

pytestmark = [pytest.mark.docker, pytest.mark.hub]

CLIENT_ID = "titan-autosave-test"
TIMEOUT = 30
BRANCH = "autosave/alice/default"
FAKE_TOKEN = "ghp_" + "Zq9" * 12  # a GitHub-token-shaped string in a user's file


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeGitHub, GitHosting]]:
    fake = FakeGitHub()
    fake.add_user("alice", name="Alice", email="alice@private.example", email_private=True, id=4242)
    fake.add_user("bob", name="Bob", email="bob@example.org")
    fake.add_org("titan-org")
    fake.add_member("titan-org", "alice")
    fake.add_member("titan-org", "bob")
    with fake:
        hosting = hosted(fake, tmp_path_factory.mktemp("git-remote"))
        hosting.create_repo("alice", "project")
        hosting.create_repo("alice", "course")  # cloned into alice's home when her server starts (empty)
        yield fake, hosting


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str],
        github: tuple[FakeGitHub, GitHosting]) -> Iterator[Hub]:
    fake, _ = github
    secret = secrets.token_hex(16)
    root: Path = tmp_path_factory.mktemp("autosave-hub")
    overrides = {
        "auth": {"github": {"client_id": CLIENT_ID, "client_secret": secret, "url": fake.url,
                            "allowed_organizations": ["titan-org"], "autosave_push": True, "refresh_age": 3600}},
        "gateway": {"enabled": False},
        "service": {"port": free_port(), "check_interval": 1, "min_interval": 1, "max_file_size_mb": 1},
    }
    running = start_hub(root, settings_overrides=overrides)
    try:
        fake.register_app(CLIENT_ID, secret, f"{running.url}/hub/oauth_callback")
        wait_for(lambda: requests.get(f"{running.url}/services/titan/api/openapi.json", timeout=5).status_code == 403,
                 60, "the Titan service to answer")
        yield running
    finally:
        stop_hub(running)
        remove_deployment(running.deployment)


# --------------------------------------------------------------------------- helpers


def github_login(hub: Hub, fake: FakeGitHub, login: str) -> requests.Session:
    """A browser that walked the GitHub OAuth flow into the hub."""
    session = requests.Session()
    assert session.get(f"{fake.url}/fake/login-as/{login}", timeout=TIMEOUT).status_code == 200
    response = session.get(f"{hub.url}/hub/oauth_login", timeout=TIMEOUT)
    assert response.status_code == 200, response.text[-500:]
    assert any(c.name.startswith("jupyterhub-session") for c in session.cookies)
    return session


class Users:
    def __init__(self, hub: Hub, fake: FakeGitHub) -> None:
        self.browser = {name: github_login(hub, fake, name) for name in ("alice", "bob")}
        self.api = {name: requests.Session() for name in ("alice", "bob")}
        for name, session in self.api.items():
            session.headers["Authorization"] = f"token {hub.admin.user_token(name)}"


@pytest.fixture(scope="module")
def users(hub: Hub, github: tuple[FakeGitHub, GitHosting]) -> Users:
    return Users(hub, github[0])


def api(hub: Hub, path: str) -> str:
    return f"{hub.url}/services/titan/api{path}"


def alice_status(hub: Hub, users: Users) -> dict[str, Any]:
    response = users.api["alice"].get(api(hub, "/users/alice/autosave"), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    repos: list[dict[str, Any]] = response.json()["repositories"]
    return repos[0]


def container_of(hub: Hub, user: str) -> str:
    found = [c for c in containers(hub.deployment, all_states=False)
             if c["Config"]["Labels"].get("titan.owner") == user]
    assert found, f"no running container for {user}"
    return str(found[0]["Id"])


def sh(container: str, script: str) -> str:
    result = exec_in(container, "bash", "-c", script, user="jovyan")
    assert result.returncode == 0, result.stderr
    return result.stdout


def user_repo_state(container: str) -> str:
    return sh(container, "cd ~/project && git status --porcelain --untracked-files=all && git rev-parse HEAD "
                         "&& git branch --list && sha256sum .git/index")


def volume_path(hub: Hub, user: str) -> Path:
    name = f"{hub.deployment}-home-{user}"
    found = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name={name}"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert len(found) == 1, found
    out = subprocess.run(["docker", "volume", "inspect", found[0]], capture_output=True, text=True, check=True)
    return Path(json.loads(out.stdout)[0]["Mountpoint"])


def clone_branch(hosting: GitHosting, fake: FakeGitHub, branch: str, target: Path) -> Path:
    token = fake.issue_token("alice", CLIENT_ID, ["repo"])  # the test's own token, not the user's
    subprocess.run(["git", "-c", f"http.extraHeader=Authorization: token {token}", "clone", "-q", "-b", branch,
                    hosting.clone_url("alice", "project"), str(target)], check=True, capture_output=True)
    return target


def files_of(repo: Path) -> set[str]:
    return set(subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True,
                              check=True).stdout.split())


def alice_tokens(fake: FakeGitHub) -> list[str]:
    with fake.lock:
        return [t.token for t in fake.tokens.values() if t.login == "alice" and t.client_id == CLIENT_ID]


# --------------------------------------------------------------------------- tests


def test_another_user_cannot_read_or_change_alices_autosave(
        hub: Hub, users: Users, github: tuple[FakeGitHub, GitHosting]) -> None:
    assert requests.get(api(hub, "/users/alice/autosave"), timeout=TIMEOUT).status_code == 403
    assert users.api["alice"].get(api(hub, "/openapi.json"), timeout=TIMEOUT).json()["openapi"].startswith("3.")
    settings = {"enabled": True, "interval": 600, "repositories": ["project"],
                "clone": [github[1].clone_url("alice", "course")]}
    assert users.api["alice"].put(api(hub, "/users/alice/autosave"), json=settings, timeout=TIMEOUT).status_code == 200
    bob = users.api["bob"]
    assert bob.get(api(hub, "/users/alice/autosave"), timeout=TIMEOUT).status_code == 403
    assert bob.put(api(hub, "/users/alice/autosave"), json={"enabled": False}, timeout=TIMEOUT).status_code == 403
    assert bob.get(api(hub, "/users/alice/autosave/repos/1"), timeout=TIMEOUT).status_code == 403
    assert bob.post(api(hub, "/users/alice/autosave/repos/1/snapshot"), timeout=TIMEOUT).status_code == 403
    # bob's browser, through the service's OAuth: still 403 on alice's, and his own page is empty
    browser = users.browser["bob"]
    assert browser.get(api(hub, "/users/alice/autosave"), timeout=TIMEOUT).status_code == 403
    page = browser.get(f"{hub.url}/services/titan/autosave", timeout=TIMEOUT)
    assert page.status_code == 200 and "/hub/static/css/style.min.css" in page.text
    assert "project" not in page.text
    assert alice_status(hub, users)["path"] == "project"
    # a form post without the XSRF token is refused; with it, it works
    form = {"enabled": "on", "interval_minutes": "10", "repositories": "mine"}
    assert browser.post(f"{hub.url}/services/titan/autosave", data=form, timeout=TIMEOUT).status_code == 403
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert xsrf
    saved = browser.post(f"{hub.url}/services/titan/autosave", data={**form, "_xsrf": xsrf.group(1)}, timeout=TIMEOUT)
    assert saved.status_code == 200 and "mine" in saved.text
    assert bob.get(api(hub, "/users/bob/autosave"), timeout=TIMEOUT).json()["repositories"][0]["path"] == "mine"


def test_autosave_commits_and_pushes_exactly_the_allowed_files(
        hub: Hub, users: Users, github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, hosting = github
    hub.admin.spawn("alice")
    container = container_of(hub, "alice")
    sh(container, f"""set -e; cd ~ && git init -q -b main project && cd project
        git config user.name Alice && git config user.email alice@private.example
        echo '# project' > README.md && printf '*.log\\n' > .gitignore && git add . && git commit -qm first
        git remote add origin {hosting.clone_url('alice', 'project')}
        echo 'a,b' > data.csv && echo noise > debug.log && echo 'API_KEY=1' > .env
        echo 'token = "{FAKE_TOKEN}"' > leak.py && head -c 1500000 /dev/urandom > big.bin
        truncate -s 150M huge.bin
        echo staged > staged.txt && git add staged.txt""")
    before = user_repo_state(container)
    settings = {"enabled": True, "interval": 2, "repositories": ["project"]}
    assert users.api["alice"].put(api(hub, "/users/alice/autosave"), json=settings, timeout=TIMEOUT).ok

    wait_for(lambda: BRANCH in hosting.branches("alice", "project"), 60, "the autosave branch on the remote")
    status = wait_for(lambda: (s := alice_status(hub, users))["last_pushed_commit"] and s, 30, "the push status")
    assert status["state"] == "ok" and status["last_push"]
    copy = clone_branch(hosting, fake, BRANCH, tmp_path / "copy")
    assert files_of(copy) == {".gitignore", "README.md", "data.csv", "staged.txt"}
    log = subprocess.run(["git", "-C", str(copy), "log", "-1", "--format=%an <%ae>"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert log == "Alice <4242+alice@users.noreply.github.com>"  # private email: the noreply address
    left_out = {item["path"]: item["reason"] for item in status["left_out"]}
    assert set(left_out) == {".env", "leak.py", "big.bin", "huge.bin"}
    assert "GitHub token" in left_out["leak.py"] and left_out["big.bin"].startswith("larger than 1 MB")
    assert left_out["huge.bin"] == "larger than 1 MB (150 MB)"
    assert user_repo_state(container) == before  # HEAD, branch, index and working tree untouched

    # the repository to clone at server start is in the home, alice's (jovyan's) own, with a clean remote
    clones = wait_for(lambda: [c for c in users.api["alice"].get(api(hub, "/users/alice/autosave"), timeout=TIMEOUT)
                               .json()["clone"] if c["state"] != "waiting"], 60, "the clone at server start")
    assert clones[0]["state"] == "cloned", clones
    assert sh(container, "stat -c %u:%g ~/course ~/course/.git/config | sort -u && touch ~/course/mine && "
                         "git -C ~/course remote get-url origin").split() == [
        "1000:1000", hosting.clone_url("alice", "course")]

    # nothing changed: no new commit, no push, through several scheduled passes
    pushes, tip = hosting.pushes(), hosting.branches("alice", "project")[BRANCH]
    snap = users.api["alice"].post(api(hub, f"/users/alice/autosave/repos/{status['id']}/snapshot"), timeout=TIMEOUT)
    assert snap.status_code == 200 and snap.json()["last_commit"] == tip
    wait_for(lambda: alice_status(hub, users)["last_pass"] != snap.json()["last_pass"], 20, "another scheduled pass")
    assert hosting.pushes() == pushes and hosting.branches("alice", "project")[BRANCH] == tip

    # the page shows the status, escaped, on the hub's look
    page = users.browser["alice"].get(f"{hub.url}/services/titan/autosave", timeout=TIMEOUT)
    assert page.status_code == 200 and "leak.py" in page.text and BRANCH in page.text
    inspect = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    assert not [t for t in alice_tokens(fake) if t in inspect]


def test_stopping_the_server_pushes_a_final_snapshot(
        hub: Hub, users: Users, github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, hosting = github
    settings = {"enabled": True, "interval": 3600, "repositories": ["project"]}
    assert users.api["alice"].put(api(hub, "/users/alice/autosave"), json=settings, timeout=TIMEOUT).ok
    container = container_of(hub, "alice")
    before = hosting.branches("alice", "project")[BRANCH]
    sh(container, "cd ~/project && echo 'last minute,work' >> data.csv")
    hub.admin.stop("alice")
    wait_for(lambda: hosting.branches("alice", "project")[BRANCH] != before, 60, "the final snapshot push")
    copy = clone_branch(hosting, fake, BRANCH, tmp_path / "final")
    assert "last minute,work" in (copy / "data.csv").read_text()
    subject = subprocess.run(["git", "-C", str(copy), "log", "-1", "--format=%s"], capture_output=True, text=True,
                             check=True).stdout
    assert "final snapshot" in subject


def test_a_moved_remote_branch_goes_to_a_timestamped_branch(
        hub: Hub, users: Users, github: tuple[FakeGitHub, GitHosting], tmp_path: Path) -> None:
    fake, hosting = github
    copy = clone_branch(hosting, fake, BRANCH, tmp_path / "elsewhere")
    (copy / "theirs.txt").write_text("pushed from elsewhere\n")
    token = fake.issue_token("alice", CLIENT_ID, ["repo"])
    for args in (["add", "theirs.txt"], ["-c", "user.name=X", "-c", "user.email=x@x", "commit", "-qm", "elsewhere"],
                 ["-c", f"http.extraHeader=Authorization: token {token}", "push", "-q", "origin", BRANCH]):
        subprocess.run(["git", "-C", str(copy), *args], check=True, capture_output=True)
    theirs = hosting.branches("alice", "project")[BRANCH]
    data = volume_path(hub, "alice") / "project" / "data.csv"
    data.write_text(data.read_text() + "offline edit\n")  # the server is stopped; the volume remains
    status = alice_status(hub, users)
    moved = users.api["alice"].post(api(hub, f"/users/alice/autosave/repos/{status['id']}/snapshot"), timeout=60)
    assert moved.status_code == 200
    result = moved.json()
    assert result["state"] == "pushed to a new branch", result
    branches = hosting.branches("alice", "project")
    assert branches[BRANCH] == theirs  # never forced
    assert branches[result["push_branch"]] == result["last_commit"]
    assert result["push_branch"] in result["message"]
    # restore: a new branch at an autosave commit
    restore = users.api["alice"].post(api(hub, f"/users/alice/autosave/repos/{status['id']}/restore"),
                                      json={"commit": result["last_commit"]}, timeout=60)
    assert restore.status_code == 200 and restore.json()["pushed"], restore.text
    assert hosting.branches("alice", "project")[restore.json()["branch"]] == result["last_commit"]


def test_a_revoked_token_means_sign_in_again_and_no_token_leaks(
        hub: Hub, users: Users, github: tuple[FakeGitHub, GitHosting]) -> None:
    fake, hosting = github
    for token in alice_tokens(fake):
        fake.revoke_token(token)
    data = volume_path(hub, "alice") / "project" / "data.csv"
    data.write_text(data.read_text() + "after revoke\n")
    repo_id = alice_status(hub, users)["id"]
    snap = users.api["alice"].post(api(hub, f"/users/alice/autosave/repos/{repo_id}/snapshot"), timeout=60)
    assert snap.status_code == 200 and snap.json()["state"] == "sign in again", snap.text
    attempts = len(hosting.log)
    data.write_text(data.read_text() + "more\n")
    again = users.api["alice"].post(api(hub, f"/users/alice/autosave/repos/{repo_id}/snapshot"), timeout=60)
    assert again.json()["state"] == "sign in again"
    assert len(hosting.log) == attempts  # no retry loop with the refused token
    page = users.browser["alice"].get(f"{hub.url}/services/titan/autosave", timeout=TIMEOUT)
    assert "sign in again" in page.text.lower()

    tokens = [t.encode() for t in alice_tokens(fake)]
    assert tokens
    state = hub.root / "state"
    places = [hub.log_path, *state.rglob("*"), *volume_path(hub, "alice").rglob("*")]
    for path in places:
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            assert not [t for t in tokens if t in content], f"a GitHub token in {path}"
    config = (volume_path(hub, "alice") / "project" / ".git" / "config").read_text()
    assert "url = http://127.0.0.1:" in config and "@127.0.0.1" not in config  # no credentials in the remote URL
    ids = [c["Id"] for c in containers(hub.deployment)] or ["none"]
    inspect = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=False).stdout
    assert not [t for t in tokens if t in inspect.encode()]
