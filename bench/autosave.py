"""Git autosave: a pass with nothing changed, a 1 MB change committed and pushed, and the
service's CPU use with 20 servers' repositories on a 1-minute interval.

Run from the repository root::

    .venv/bin/python -m bench.autosave [--servers N] [--files F] [--duration S]

The service's own engine (``service.engine.Autosave``: snapshot into the store, push through
``GIT_ASKPASS``) drives N repositories in a temporary directory, standing in for N servers' home
volumes (no containers: the engine reaches files through the volume's host path anyway, so a
container adds nothing to what is measured). The remote is the fake GitHub's git smart HTTP
(``git http-backend``, token auth) on 127.0.0.1; the hub is an in-process double answering
"which servers run" and "the user's token" (the real hub answers these over loopback HTTP).

1. **Nothing changed**: each repository (F files, ~2 MB, one commit, snapshotted and pushed once
   before) gets one pass (``Autosave.run_repo``: the author lookup, the snapshot that finds nothing
   new, the push check) in 5 rounds; milliseconds per server.
2. **1 MB change**: 1 MB of new random content in one file, then one pass: snapshot, commit and
   push to the fake GitHub; 5 times, seconds.
3. **CPU**: the engine's scheduler (``Autosave.servers_changed`` on the hub watcher's pass every
   10 s, as the service runs it) in a child process for ``--duration`` seconds with every
   repository on a 60 s interval, while this
   process edits a small file in half of the repositories every 60 s (so each minute brings ten
   commits and pushes, and ten passes with nothing to save). CPU = user + system seconds of that
   process and its git children, over wall time (100 % = one core). The fake GitHub's CPU (and its
   ``git http-backend`` processes) is not counted: it runs in this process.

Prints the numbers and writes them to bench/results/autosave-<timestamp>.json. Exits 0 whatever
the numbers are against the targets (≤ 50 ms per server, ≤ 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from service.autosave.push import write_askpass
from service.db import AutosaveRepo, AutosaveUser, Database
from service.engine import Autosave
from service.hub import GitHubCredentials
from service.watcher import HubWatcher
from tests.fakegithub import FakeGitHub
from tests.fakegithub.git import GitHosting, hosted
from tests.integration.hub import REPO

RESULTS = REPO / "bench" / "results"
ROUNDS = 5
CHANGES = 5
INTERVAL_S = 60
CHECK_S = 10.0
MIB = 1024 * 1024


class HubDouble:
    """The two questions the service asks the hub, answered from memory: every user's default server runs."""

    def __init__(self, token: str, users: list[str]) -> None:
        self.token = token
        self.users = users

    async def active_servers(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {name: {"": {"ready": True, "started": "2026-01-01T00:00:00Z"}} for name in self.users}

    async def github_credentials(self, name: str) -> GitHubCredentials:
        return GitHubCredentials(self.token, name, None, name, None)


def user_name(index: int) -> str:
    return f"user{index:02d}"


def make_repo(home: Path, url: str, files: int) -> None:
    """A repository like a small project: ``files`` files of ~2 KB and a notebook-sized one, one commit."""
    repo = home / "project"
    (repo / "src").mkdir(parents=True)
    for number in range(files):
        (repo / "src" / f"module{number:03d}.py").write_text(f"# module {number}\n" + "x = 1\n" * 350)
    (repo / "data.csv").write_bytes(os.urandom(1 * MIB).hex().encode()[: 1 * MIB])
    git = ["git", "-C", str(repo), "-c", "user.name=B", "-c", "user.email=b@x"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "start"],
                 ["remote", "add", "origin", url]):
        subprocess.run([*git, *args], check=True, capture_output=True)


def setup(root: Path, fake: FakeGitHub, hosting: GitHosting, servers: int, files: int,
          interval: int) -> tuple[str, Database]:
    """N homes with a repository each, N hosted remotes, and the service database listing them."""
    db = Database(f"sqlite:///{root / 'service.sqlite'}")
    for index in range(servers):
        name = user_name(index)
        fake.add_user(name)
        hosting.create_repo(name, "project")
        make_repo(root / "homes" / name, hosting.clone_url(name, "project"), files)
        with db.session() as session:
            session.add(AutosaveUser(name=name, enabled=True, interval=interval,
                                     repos=[AutosaveRepo(path="project", left_out=[])]))
    return fake.url or "", db


def make_engine(root: Path, github_url: str, db: Database, token: str) -> Autosave:
    homes = root / "homes"
    with db.session() as session:
        users = [user.name for user in session.query(AutosaveUser)]
    return Autosave(db, HubDouble(token, users), lambda user: homes / user, write_askpass(root),
                    state_dir=root / "state", github_url=github_url)


def repo_ids(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {repo.user_name: repo.id for repo in session.query(AutosaveRepo)}


async def measure_passes(engine: Autosave, ids: dict[str, int]) -> dict[str, Any]:
    for name, repo_id in ids.items():  # first snapshot and push: not measured
        status = await engine.run_repo(name, repo_id, "", "scheduled")
        assert status["state"] == "ok", status
    unchanged: list[float] = []
    for _ in range(ROUNDS):
        for name, repo_id in ids.items():
            start = time.perf_counter()
            status = await engine.run_repo(name, repo_id, "", "scheduled")
            unchanged.append(1000 * (time.perf_counter() - start))
            assert status["state"] == "ok" and status["last_commit"] == status["last_pushed_commit"], status
    first, repo_id = next(iter(ids.items()))
    data = Path(engine.volume_path(first)) / "project" / "data.csv"
    changed: list[float] = []
    for _ in range(CHANGES):
        before = (await engine.run_repo(first, repo_id, "", "scheduled"))["last_commit"]
        data.write_bytes(os.urandom(MIB // 2).hex().encode())  # 1 MB of new, incompressible-ish text
        start = time.perf_counter()
        status = await engine.run_repo(first, repo_id, "", "scheduled")
        changed.append(time.perf_counter() - start)
        assert status["state"] == "ok" and status["last_commit"] != before, status
        assert status["last_pushed_commit"] == status["last_commit"], status
    return {"unchanged_ms": unchanged, "change_1mb_s": changed}


def scheduler_child(root: str, github_url: str, token: str, duration: float, queue: Any) -> None:
    """The engine's scheduler as the service runs it, in its own process; reports its CPU."""
    base = Path(root)
    engine = make_engine(base, github_url, Database(f"sqlite:///{base / 'service.sqlite'}"), token)
    assert isinstance(engine.hub, HubDouble)
    watcher = HubWatcher(engine.hub)
    watcher.watch("Autosave", engine.servers_changed)

    async def loop() -> tuple[int, float]:
        ticks, slowest = 0, 0.0
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            start = time.monotonic()
            await watcher.run_pass()
            ticks += 1
            slowest = max(slowest, time.monotonic() - start)
            await asyncio.sleep(max(0.0, CHECK_S - (time.monotonic() - start)))
        return ticks, slowest

    before_self, before_children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    wall = time.monotonic()
    ticks, slowest = asyncio.run(loop())
    wall = time.monotonic() - wall
    after_self, after_children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    cpu_self = (after_self.ru_utime - before_self.ru_utime) + (after_self.ru_stime - before_self.ru_stime)
    cpu_git = (after_children.ru_utime - before_children.ru_utime) + (
        after_children.ru_stime - before_children.ru_stime)
    queue.put({"wall_s": wall, "cpu_service_s": cpu_self, "cpu_git_s": cpu_git, "ticks": ticks,
               "slowest_tick_s": slowest, "max_rss_mib": after_self.ru_maxrss / 1024})


def measure_cpu(root: Path, github_url: str, token: str, servers: int, duration: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=scheduler_child, args=(str(root), github_url, token, duration, queue))
    child.start()
    edits = 0
    start = time.monotonic()
    try:
        minute = 0
        while child.is_alive() and time.monotonic() - start < duration + 60:
            if time.monotonic() - start >= minute * INTERVAL_S:
                for index in range(0, servers, 2):  # half of the repositories change each minute
                    notes = root / "homes" / user_name(index) / "project" / "notes.md"
                    notes.write_text(f"edit {minute}\n" + "text " * 2000)
                    edits += 1
                minute += 1
            time.sleep(0.5)
        result: dict[str, Any] = queue.get(timeout=120)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    busy = result["cpu_service_s"] + result["cpu_git_s"]
    result.update({"servers": servers, "interval_s": INTERVAL_S, "check_interval_s": CHECK_S, "edits": edits,
                   "cpu_percent_of_one_core": 100 * busy / result["wall_s"]})
    return result


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "median": statistics.median(values), "p95": p95, "max": ordered[-1],
            "mean": statistics.fmean(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autosave", description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=20, help="repositories / servers (default 20)")
    parser.add_argument("--files", type=int, default=200, help="files per repository (default 200)")
    parser.add_argument("--duration", type=float, default=180.0,
                        help="seconds the scheduler runs for the CPU measurement (default 180: three intervals)")
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        print("git is needed", file=sys.stderr)
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    fake = FakeGitHub()
    fake.register_app("titan-bench", "secret", "http://127.0.0.1:9/hub/oauth_callback")
    with tempfile.TemporaryDirectory(prefix="titan-bench-autosave-") as tmp, fake:
        root = Path(tmp)
        hosting = hosted(fake, root / "remote")
        github_url, db = setup(root, fake, hosting, args.servers, args.files, interval=INTERVAL_S)
        # one token the fake accepts for every user's pushes: a collaborator on every repository
        fake.add_user("titan-bench")
        for repo in hosting.repos.values():
            repo.collaborators.add("titan-bench")
        token = fake.issue_token("titan-bench", "titan-bench", ["repo"])
        print(f"{args.servers} repositories of {args.files} files + 1 MB, remote: fake GitHub {github_url}", flush=True)
        engine = make_engine(root, github_url, db, token)
        passes = asyncio.run(measure_passes(engine, repo_ids(db)))
        if engine._pool is not None:
            engine._pool.shutdown()
        print(f"CPU: the scheduler for {args.duration:.0f} s ...", flush=True)
        cpu = measure_cpu(root, github_url, token, args.servers, args.duration)
    unchanged, changed = summary(passes["unchanged_ms"]), summary(passes["change_1mb_s"])
    data = {
        "meta": {"timestamp": stamp, "servers": args.servers, "files_per_repo": args.files, "rounds": ROUNDS,
                 "changes": CHANGES, "host_cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0],
                 "host_memory_bytes": psutil.virtual_memory().total,
                 "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
                 "note": "the engine on repositories in tmp dirs standing in for home volumes; no containers"},
        "unchanged_pass_ms": {**unchanged, "target": 50, "samples": passes["unchanged_ms"]},
        "change_1mb_commit_push_s": {**changed, "target": 2.0, "samples": passes["change_1mb_s"]},
        "cpu": cpu,
    }
    print(f"\n{'':40} {'median':>9} {'p95':>9} {'max':>9} target")
    print(f"{'pass, nothing changed (ms per server)':40} {unchanged['median']:9.1f} {unchanged['p95']:9.1f} "
          f"{unchanged['max']:9.1f}  <= 50")
    print(f"{'1 MB change, commit + push (s)':40} {changed['median']:9.3f} {changed['p95']:9.3f} "
          f"{changed['max']:9.3f}  <= 2")
    print(f"\nCPU, {args.servers} servers on a {INTERVAL_S} s interval, {cpu['wall_s']:.0f} s, {cpu['edits']} edits: "
          f"{cpu['cpu_percent_of_one_core']:.2f} % of one core (service {cpu['cpu_service_s']:.1f} s, "
          f"git {cpu['cpu_git_s']:.1f} s; slowest tick {cpu['slowest_tick_s']:.2f} s, "
          f"max RSS {cpu['max_rss_mib']:.0f} MiB)")
    out = RESULTS / f"autosave-{stamp}.json"
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
