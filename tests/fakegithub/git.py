"""Git smart HTTP for the fake GitHub: ``/{owner}/{repo}.git/...`` through ``git http-backend``.

Repositories are bare repositories under ``root/{owner}/{repo}.git`` with
``receive.denyNonFastForwards`` (like a protected GitHub branch: a push that is not a fast-forward
is rejected). Every request needs a token the fake accepts (``Authorization: Basic`` with the
token as password, which is what git sends; ``token``/``Bearer`` too); a missing or revoked token
gets GitHub's 401 with ``WWW-Authenticate: Basic``. Reading needs ``repo`` scope unless the
repository is public; pushing needs ``repo`` and write access (the owner, or a listed collaborator).

Wire it in with ``GitHosting(fake, root).install()``; it registers its rules through
``FakeGitHub.add_handlers``.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakegithub.server import FakeGitHub, FakeGitHubHandler

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_SERVICES = ("git-upload-pack", "git-receive-pack")


@dataclass
class HostedRepo:
    owner: str
    name: str
    path: Path
    public: bool = False
    collaborators: set[str] = field(default_factory=set)

    def can_write(self, login: str) -> bool:
        return login.lower() == self.owner.lower() or login.lower() in self.collaborators


class GitHosting:
    """Bare repositories served over smart HTTP by the fake GitHub."""

    def __init__(self, fake: FakeGitHub, root: Path) -> None:
        self.fake = fake
        self.root = root
        self.repos: dict[str, HostedRepo] = {}
        #: (method, owner/repo, service, login) of every authenticated git request.
        self.log: list[tuple[str, str, str, str]] = []

    def install(self) -> GitHosting:
        self.fake.add_handlers([(r"/([^/]+)/([^/]+?)(?:\.git)?/(info/refs|git-upload-pack|git-receive-pack)",
                                 GitHTTPHandler, {"hosting": self})])
        return self

    def create_repo(self, owner: str, name: str, public: bool = False, collaborators: set[str] | None = None,
                    default_branch: str = "main") -> HostedRepo:
        if not (_NAME.match(owner) and _NAME.match(name)):
            raise ValueError(f"invalid repository name {owner}/{name}")
        path = self.root / owner.lower() / f"{name.lower()}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", f"--initial-branch={default_branch}", str(path)], check=True)
        subprocess.run(["git", "--git-dir", str(path), "config", "receive.denyNonFastForwards", "true"], check=True)
        subprocess.run(["git", "--git-dir", str(path), "config", "receive.denyDeletes", "true"], check=True)
        subprocess.run(["git", "--git-dir", str(path), "config", "http.receivepack", "true"], check=True)
        repo = HostedRepo(owner, name, path, public, {c.lower() for c in collaborators or set()})
        self.repos[f"{owner.lower()}/{name.lower()}"] = repo
        return repo

    def get(self, owner: str, name: str) -> HostedRepo | None:
        return self.repos.get(f"{owner.lower()}/{name.lower()}")

    def clone_url(self, owner: str, name: str) -> str:
        assert self.fake.url
        return f"{self.fake.url}/{owner}/{name}.git"

    def branches(self, owner: str, name: str) -> dict[str, str]:
        """``refs/heads/*`` of a hosted repository: branch name -> commit."""
        repo = self.get(owner, name)
        assert repo is not None
        out = subprocess.run(["git", "--git-dir", str(repo.path), "for-each-ref", "--format=%(refname) %(objectname)",
                              "refs/heads"], check=True, capture_output=True, text=True).stdout
        return {ref.removeprefix("refs/heads/"): sha for ref, sha in (line.split() for line in out.splitlines())}

    def pushes(self) -> int:
        return sum(1 for method, _, service, _ in self.log if method == "POST" and service == "git-receive-pack")


class GitHTTPHandler(FakeGitHubHandler):
    """One smart-HTTP request, answered by ``git http-backend`` as CGI."""

    hosting: GitHosting

    def initialize(self, fake: FakeGitHub, hosting: GitHosting | None = None) -> None:
        super().initialize(fake)
        assert hosting is not None
        self.hosting = hosting

    def _unauthorized(self) -> None:
        self.set_status(401)
        self.set_header("WWW-Authenticate", 'Basic realm="GitHub"')
        self.set_header("Content-Type", "text/plain")
        self.finish("Invalid username or token. Password authentication is not supported for Git operations.\n")

    def _fail(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain")
        self.finish(text + "\n")

    async def get(self, owner: str, name: str, action: str) -> None:
        await self._serve(owner, name, action)

    async def post(self, owner: str, name: str, action: str) -> None:
        await self._serve(owner, name, action)

    async def _serve(self, owner: str, name: str, action: str) -> None:
        service = self.get_query_argument("service", "") if action == "info/refs" else action
        if service not in _SERVICES:
            self._fail(403, "Smart HTTP only")
            return
        with self.fake.lock:
            repo = self.hosting.get(owner, name)
            token = self.fake.token_for_authorization(self.request.headers.get("Authorization"))
            login = token.login if token else ""
            scoped = bool(token and token.has_any_scope("repo"))
        writing = service == "git-receive-pack"
        if token is None and (writing or repo is None or not repo.public):
            self._unauthorized()
            return
        if repo is None or (not repo.public and not (scoped and (repo.can_write(login) or not writing))):
            # GitHub answers 404 for a private repository the token may not see.
            self._fail(404, "Repository not found.")
            return
        if writing and not (scoped and repo.can_write(login)):
            self._fail(403, f"Permission to {repo.owner}/{repo.name}.git denied to {login}.")
            return
        self.hosting.log.append((self.request.method or "", f"{repo.owner}/{repo.name}", service, login))
        await self._cgi(repo, action, login)

    async def _cgi(self, repo: HostedRepo, action: str, login: str) -> None:
        request = self.request
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(repo.path.parent),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repo.path.name}/{action}",
            "REQUEST_METHOD": request.method or "GET",
            "QUERY_STRING": request.query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(request.body)),
            "REMOTE_USER": login,
            "REMOTE_ADDR": request.remote_ip or "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(repo.path),
        }
        for header in ("Content-Encoding", "Git-Protocol"):
            if header in request.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
        process = await asyncio.create_subprocess_exec(
            HTTP_BACKEND, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        stdout, _stderr = await process.communicate(request.body)
        head, found, body = stdout.partition(b"\r\n\r\n")
        if not found:
            head, _, body = stdout.partition(b"\n\n")
        status = 200
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                self.set_header(key.strip(), value.strip())
        self.set_status(status)
        self.finish(body)


def hosted(fake: FakeGitHub, root: Path) -> GitHosting:
    """``GitHosting(fake, root).install()``."""
    return GitHosting(fake, root).install()
