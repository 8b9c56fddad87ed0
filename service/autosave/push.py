"""Pushes: one ``git push`` with the user's token handed to that process only, never forced.

The token reaches git through ``GIT_ASKPASS``: a fixed script (no secret in it) that prints the
token from ``TITAN_GIT_TOKEN``, a variable set only in the environment of that one git process
(and so of its helpers). It is never written to a file, a repository config or the remote URL,
and credential helpers are switched off so git cannot store it either.
"""

from __future__ import annotations

import enum
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from service.autosave.snapshot import GIT_OPTIONS, git_env

ASKPASS_SCRIPT = """#!/bin/sh
# Titan autosave: answers git's prompts for one push. The token comes from the environment of
# the git process that runs this script; nothing secret is stored here.
case "$1" in
  Username*) echo x-access-token ;;
  *) printf '%s\\n' "$TITAN_GIT_TOKEN" ;;
esac
"""

_AUTH = re.compile(r"Authentication failed|could not read (Username|Password)|returned error: 401|"
                   r"Invalid username or (password|token)", re.I)
_FORBIDDEN = re.compile(r"returned error: 403|Permission to .* denied|Write access to repository not granted", re.I)
_NETWORK = re.compile(r"Could not resolve host|Failed to connect|Couldn't connect|Connection refused|"
                      r"Connection reset|timed out|returned error: 5\d\d|RPC failed|early EOF|"
                      r"unexpected disconnect|Empty reply from server|SSL", re.I)
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")


class PushOutcome(enum.StrEnum):
    PUSHED = "pushed"
    UP_TO_DATE = "up to date"
    REJECTED = "rejected"  # the remote branch moved (non-fast-forward)
    AUTH = "sign in again"  # the token was refused (401)
    FORBIDDEN = "no permission"  # the token works but may not push there (403)
    NETWORK = "network error"
    ERROR = "error"


@dataclass(frozen=True)
class PushResult:
    outcome: PushOutcome
    message: str


def write_askpass(directory: Path) -> Path:
    """Install the askpass script (mode 0700) in the service's state directory."""
    path = directory / "git-askpass.sh"
    if not path.exists() or path.read_text() != ASKPASS_SCRIPT:
        path.write_text(ASKPASS_SCRIPT)
    path.chmod(0o700)
    return path


def remote_url(url: str, github_url: str) -> str | None:
    """``url`` (a remote of the user's repository) as a credential-free URL on ``github_url``'s
    host, or None when it points anywhere else (the token must only ever go to GitHub).

    ``git@github.com:owner/repo.git`` becomes ``https://github.com/owner/repo.git``; user info in
    an http(s) URL (a token pasted into it, say) is dropped, never used.
    """
    github = urlsplit(github_url)
    url = url.strip()
    match = _SCP_LIKE.match(url) if "://" not in url else None
    if match:
        host, path = match.groups()
        parts = urlsplit(f"ssh://git@{host}/{path.lstrip('/')}")
    else:
        parts = urlsplit(url)
    if parts.hostname is None or github.hostname is None or parts.hostname.lower() != github.hostname.lower():
        return None
    path = parts.path
    if not re.match(r"^/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+/?$", path) or ".." in path:
        return None
    if parts.scheme in ("ssh", "git") or (parts.scheme == github.scheme and parts.port == github.port):
        return urlunsplit((github.scheme, github.netloc.rpartition("@")[2], path.rstrip("/"), "", ""))
    return None


def classify(returncode: int, porcelain: str, stderr: str) -> PushResult:
    """The outcome of ``git push --porcelain`` from its exit status and output (never the token)."""
    for line in porcelain.splitlines():
        flag, _, rest = line.partition("\t")
        if flag == "!":
            summary = rest.partition("\t")[2]
            why = re.search(r"\(([^)]*)\)", summary)
            return PushResult(PushOutcome.REJECTED, f"the remote branch moved ({why.group(1) if why else summary})")
        if flag == "=":
            return PushResult(PushOutcome.UP_TO_DATE, "already up to date")
        if flag in (" ", "*") and returncode == 0:
            return PushResult(PushOutcome.PUSHED, "pushed")
    if returncode == 0:
        return PushResult(PushOutcome.PUSHED, "pushed")
    text = stderr.strip().splitlines()
    last = next((line for line in reversed(text) if line.strip()), "git push failed")
    if _AUTH.search(stderr):
        return PushResult(PushOutcome.AUTH, "GitHub refused the token: sign in to Titan again")
    if _FORBIDDEN.search(stderr):
        return PushResult(PushOutcome.FORBIDDEN, "GitHub refused the push: no write access to this repository")
    if _NETWORK.search(stderr):
        return PushResult(PushOutcome.NETWORK, last[:300])
    return PushResult(PushOutcome.ERROR, last[:300])


def push(store: Path, url: str, local_ref: str, remote_branch: str, token: str, askpass: Path,
         timeout: float = 300) -> PushResult:
    """Push ``local_ref`` of ``store`` to ``refs/heads/<remote_branch>`` at ``url`` (no force)."""
    env = git_env(store)
    env.update({"GIT_ASKPASS": str(askpass), "TITAN_GIT_TOKEN": token})
    args = ["git", *GIT_OPTIONS, "-c", "credential.helper=", "-c", "http.followRedirects=false",
            "-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=60", "-c", "push.followTags=false",
            "push", "--porcelain", "--no-verify", url, f"{local_ref}:refs/heads/{remote_branch}"]
    try:
        result = subprocess.run(args, env=env, capture_output=True, check=False, timeout=timeout, cwd=store)
    except subprocess.TimeoutExpired:
        return PushResult(PushOutcome.NETWORK, f"git push took longer than {timeout:.0f} s")
    stderr = result.stderr.decode(errors="replace")
    stdout = result.stdout.decode(errors="replace")
    if token:  # belt and braces: git does not print it, and it never reaches a message
        stderr, stdout = stderr.replace(token, "***"), stdout.replace(token, "***")
    return classify(result.returncode, stdout, stderr)


__all__ = ["ASKPASS_SCRIPT", "PushOutcome", "PushResult", "classify", "push", "remote_url", "write_askpass"]
