"""Spawn time and memory: Titan's hub and spawner against a stock DockerSpawner, same image.

Run from the repository root::

    .venv/bin/python -m bench.spawn [--spawns N] [--rounds R]

Both sides run the same loop against a real hub behind the real configurable-http-proxy:
POST /hub/api/users/<u>/servers/ with {"profile": "small"}, then poll
GET <public url>/user/<u>/api/status with the user's token every 50 ms; the spawn time is
from the POST to the first 200 with the server's status JSON (the server answers through the
proxy). Then DELETE and wait until the hub reports it stopped and its container is gone.

Only one hub runs at a time (small hosts). The N measured spawns per side are split over R
rounds in ABBA order (Titan, baseline, baseline, Titan, ...), each block on a fresh hub with one
uncounted warm-up spawn. Memory (hub + proxy RSS, one idle container) is read in each side's
first block, after the server has been idle for 5 s.

Prints a table and writes the numbers to bench/results/spawn-<timestamp>.json, with the hub logs
next to it. Exits 0 whatever the ratios are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import docker
import psutil
import requests
import yaml

from core.engine.docker import DockerEngine
from core.images import image_tag
from core.network import NetworkPlan, ensure_network, gateway_address
from tests.helpers import free_port, wait_for
from tests.integration.hub import REPO, Hub, HubClient, remove_deployment, start_hub, stop_hub

IMAGE = "minimal"
OPTIONS = {"profile": "small"}
USER = "benchuser"
POLL_S = 0.05
SPAWN_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
IDLE_S = 5.0
MIN_SPAWNS = 10
RESULTS = REPO / "bench" / "results"
MIB = 1024 * 1024
READY = "POST /hub/api/users/<u>/servers/ -> first 200 from GET /user/<u>/api/status through the proxy"


@dataclass
class Running:
    """A hub under test and how to find and remove what it started."""

    side: str
    hub: Hub
    label: str  # docker label filter (key=value) matching this hub's containers only
    remove_all: Callable[[], None]


@dataclass
class SideResult:
    spawn_s: list[float] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    warmup_s: list[float] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)


# ---- hubs -------------------------------------------------------------------------------


def _kill_from_pid_file(pid_file: Path) -> None:
    """A hub that never answered: stop its process group (it runs in its own session)."""
    try:
        pid = int(pid_file.read_text().strip())
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def start_titan(root: Path) -> Running:
    try:
        hub = start_hub(root)
    except BaseException:
        _kill_from_pid_file(root / "state" / "jupyterhub.pid")
        settings_file = root / "titan.yaml"
        if settings_file.exists():
            remove_deployment(yaml.safe_load(settings_file.read_text())["deployment"])
        raise
    return Running("titan", hub, f"titan.deployment={hub.deployment}", lambda: remove_deployment(hub.deployment))


def remove_baseline(bench_id: str) -> None:
    client = docker.from_env()
    try:
        for container in client.containers.list(all=True, filters={"label": f"titan.bench={bench_id}"}):
            container.remove(force=True)
        for volume in client.volumes.list(filters={"name": f"{bench_id}-"}):
            if volume.name.startswith(f"{bench_id}-"):
                volume.remove(force=True)
        for network in client.networks.list(names=[f"{bench_id}-net"]):
            network.remove()
    finally:
        client.close()


def baseline_network(bench_id: str) -> str:
    """The baseline's user-defined bridge network (jupyterhub-deploy-docker's set-up), on a free subnet
    of Titan's default pool; returns the host's address on it, where the baseline hub listens."""
    plan = NetworkPlan.of(bench_id, "10.213.0.0/16", 24)

    async def make() -> str:
        engine = DockerEngine(threads=1)
        try:
            return gateway_address(await ensure_network(engine, plan, f"{bench_id}-net", {"titan.bench": bench_id}))
        finally:
            await engine.close()

    return asyncio.run(make())


def start_baseline(root: Path, image: str) -> Running:
    bench_id = "titanbench-" + secrets.token_hex(3)
    public_port, hub_port, api_port = free_port(), free_port(), free_port()
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "JUPYTERHUB_", "TITAN_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
        "BENCH_PUBLIC_PORT": str(public_port), "BENCH_HUB_PORT": str(hub_port),
        "BENCH_PROXY_API_PORT": str(api_port), "BENCH_STATE_DIR": str(root / "state"),
        "BENCH_IMAGE": image, "BENCH_ID": bench_id, "BENCH_ADMIN_TOKEN": token,
        "BENCH_NETWORK": f"{bench_id}-net", "BENCH_HUB_IP": baseline_network(bench_id),
    })
    log_path = root / "jupyterhub.log"
    url = f"http://127.0.0.1:{public_port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(REPO / "bench" / "baseline_config.py")],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    hub = Hub(root=root, deployment=bench_id, url=url, process=process, admin=HubClient(url, token),
              log_path=log_path, profiles_dir=root)

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError("the baseline hub exited:\n" + log_path.read_text(errors="replace")[-3000:])
        return requests.get(f"{url}/hub/api", timeout=5).status_code == 200

    try:
        wait_for(answering, 60, "the baseline hub to answer")
    except BaseException:
        stop_hub(hub)
        remove_baseline(bench_id)
        raise
    return Running("baseline", hub, f"titan.bench={bench_id}", lambda: remove_baseline(bench_id))


@contextmanager
def running_hub(side: str, image: str) -> Iterator[Running]:
    """One hub in a temporary directory; stopped, its containers and volumes removed, on any exit."""
    root = Path(tempfile.mkdtemp(prefix=f"titan-bench-{side}-"))
    running: Running | None = None
    try:
        running = start_titan(root) if side == "titan" else start_baseline(root, image)
        yield running
    finally:
        try:
            if running is not None:
                try:
                    stop_hub(running.hub)
                finally:
                    running.remove_all()
        finally:
            shutil.rmtree(root, ignore_errors=True)


# ---- one spawn, one stop ----------------------------------------------------------------


def own_containers(client: docker.DockerClient, label: str) -> list[Any]:
    found: list[Any] = client.containers.list(all=True, filters={"label": label})
    return found


def spawn_until_ready(running: Running, user: str, user_session: requests.Session) -> float:
    admin = running.hub.admin
    status_url = f"{running.hub.url}/user/{user}/api/status"
    started = time.perf_counter()
    response = admin.api("POST", f"/users/{user}/servers/", json=OPTIONS)
    if response.status_code not in (201, 202):
        raise RuntimeError(f"{running.side}: spawn refused: {response.status_code} {response.text}")
    polls = 0
    while True:
        try:
            answer = user_session.get(status_url, timeout=10, allow_redirects=False)
            if answer.status_code == 200 and "started" in answer.json():
                return time.perf_counter() - started
        except (requests.RequestException, ValueError):
            pass
        polls += 1
        if polls % 20 == 0 and not admin.server(user):  # the spawn failed: the hub dropped the server
            raise RuntimeError(f"{running.side}: spawn failed:\n{running.hub.log_tail(30)}")
        if time.perf_counter() - started > SPAWN_TIMEOUT_S:
            raise TimeoutError(f"{running.side}: not ready after {SPAWN_TIMEOUT_S:.0f} s:\n"
                               f"{running.hub.log_tail(30)}")
        time.sleep(POLL_S)


def stop_until_gone(running: Running, user: str, client: docker.DockerClient) -> float:
    """DELETE; the time until the hub reports it stopped. Then wait (uncounted) for the container."""
    admin = running.hub.admin
    started = time.perf_counter()
    response = admin.api("DELETE", f"/users/{user}/servers/")
    if response.status_code not in (202, 204):
        raise RuntimeError(f"{running.side}: stop refused: {response.status_code} {response.text}")
    while admin.server(user):
        if time.perf_counter() - started > STOP_TIMEOUT_S:
            raise TimeoutError(f"{running.side}: server not stopped after {STOP_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    wait_for(lambda: not own_containers(client, running.label), STOP_TIMEOUT_S,
             f"{running.side}'s container to be removed", interval=POLL_S)
    return elapsed


# ---- memory -----------------------------------------------------------------------------


def process_tree_rss(pid: int) -> dict[str, Any]:
    """RSS of the hub process, its configurable-http-proxy, and any other hub-managed services
    (the Dask gateway on Titan's side), kept apart so hub + proxy compare like with like.
    Containers are not children of the hub, so they are not counted."""
    hub = psutil.Process(pid)
    hub_rss = hub.memory_info().rss
    children: dict[str, int] = {}
    proxy = services = 0
    for child in hub.children(recursive=True):
        try:
            rss = child.memory_info().rss
            is_proxy = any("configurable-http-proxy" in part for part in child.cmdline())
        except psutil.NoSuchProcess:
            continue
        children[f"{child.name()}[{child.pid}]"] = rss
        if is_proxy:
            proxy += rss
        else:
            services += rss
    return {"hub_bytes": hub_rss, "children_bytes": proxy, "services_bytes": services, "children": children,
            "total_bytes": hub_rss + proxy}


def cgroup_v1_memory(container_id: str) -> dict[str, Any]:
    """The same reading straight from the cgroup v1 files, for when the engine's stats come back
    empty (seen here after a systemd container added cgroup mounts to the host)."""
    base = Path("/sys/fs/cgroup/memory/docker") / container_id
    if not base.exists():
        raise RuntimeError(f"no memory reading for container {container_id[:12]}")
    detail = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
    return {"usage": int((base / "memory.usage_in_bytes").read_text()),
            "limit": int((base / "memory.limit_in_bytes").read_text()),
            "stats": {k: int(v) for k, v in detail.items()}}


def container_memory(client: docker.DockerClient, label: str) -> dict[str, Any]:
    """The cgroup memory of the one running container: raw usage (page cache included) and the
    figure ``docker stats`` shows (usage less inactive file pages)."""
    found = client.containers.list(filters={"label": label})
    if len(found) != 1:
        raise RuntimeError(f"expected one running container for {label}, found {len(found)}")
    stats: dict[str, Any] = {}
    for _ in range(5):  # the engine can answer an empty reading right after a container event
        stats = found[0].stats(stream=False).get("memory_stats") or {}
        if "usage" in stats:
            break
        time.sleep(1)
    else:
        stats = cgroup_v1_memory(found[0].id)
    usage = int(stats["usage"])
    detail = stats.get("stats", {})
    inactive = int(detail.get("total_inactive_file", detail.get("inactive_file", 0)))
    return {"usage_bytes": usage, "inactive_file_bytes": inactive, "docker_stats_bytes": usage - inactive,
            "limit_bytes": int(stats.get("limit", 0))}


# ---- hub log: where the time goes -------------------------------------------------------

_STAMP = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")
_TOOK = re.compile(r" ([\d.]+)ms$")
# Milestones of one spawn in the hub's INFO log, in the order they happen.
_MARKERS = [
    ("titan_spawner_start", re.compile(r"Starting \S+: profile \S+, image")),  # Titan's own line
    ("container_created", re.compile(r"Created container ")),
    ("container_start_called", re.compile(r"Starting container ")),
    ("singleuser_called_hub", re.compile(r"GET /hub/api \(@")),  # jupyterhub-singleuser's version check
    ("hub_saw_server_up", re.compile(r"User \S+ took [\d.]+ seconds to start")),
    ("proxy_route_added", re.compile(r"Adding user \S+ to proxy")),
]


def _log_time(line: str) -> float | None:
    stamp = _STAMP.match(line)
    if not stamp:
        return None
    return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()


def spawn_phases(log_path: Path, user: str, first: int, count: int) -> dict[str, list[float]]:
    """Seconds from the spawn POST's arrival to each milestone, for spawns ``first`` to
    ``first + count - 1`` of the block, read from the hub's INFO log. The POST's access-log line
    is written when it answers (after the server is up), with its duration: that gives its start."""
    posts: list[tuple[float, float]] = []
    events: list[tuple[float, str]] = []
    for line in log_path.read_text(errors="replace").splitlines():
        moment = _log_time(line)
        if moment is None:
            continue
        took = _TOOK.search(line)
        if f"POST /hub/api/users/{user}/servers/ " in line and took:
            posts.append((moment - float(took.group(1)) / 1000, moment))
            continue
        for name, pattern in _MARKERS:
            if pattern.search(line):
                events.append((moment, name))
                break
    phases: dict[str, list[float]] = {}
    for begin, end in posts[first:first + count]:
        seen: set[str] = set()
        for moment, name in events:
            # log stamps are whole milliseconds: allow 5 ms of rounding around the request
            if begin - 0.005 <= moment <= end + 0.005 and name not in seen:
                seen.add(name)
                phases.setdefault(name, []).append(round(moment - begin, 3))
    return phases


# ---- the benchmark ----------------------------------------------------------------------


def run_block(running: Running, spawns: int, measure_memory: bool, result: SideResult) -> None:
    client = docker.from_env()
    try:
        admin = running.hub.admin
        created = admin.api("POST", f"/titan/users/{USER}")  # Titan: the automation token's route
        if created.status_code == 404:  # the baseline's stock hub: JupyterHub's own route
            created = admin.api("POST", f"/users/{USER}")
        assert created.status_code in (201, 409), created.text
        user_session = requests.Session()
        user_session.headers["Authorization"] = f"token {admin.user_token(USER)}"
        if measure_memory:
            time.sleep(IDLE_S)
            result.memory["hub_at_start"] = process_tree_rss(running.hub.process.pid)
        result.warmup_s.append(spawn_until_ready(running, USER, user_session))
        stop_until_gone(running, USER, client)
        for _ in range(spawns):
            result.spawn_s.append(spawn_until_ready(running, USER, user_session))
            result.stop_s.append(stop_until_gone(running, USER, client))
            print(f"  {running.side:8} spawn {len(result.spawn_s):2}: {result.spawn_s[-1]:6.3f} s"
                  f"   stop {result.stop_s[-1]:6.3f} s", flush=True)
        for name, values in spawn_phases(running.hub.log_path, USER, first=1, count=spawns).items():
            result.phases.setdefault(name, []).extend(values)
        if measure_memory:
            spawn_until_ready(running, USER, user_session)
            time.sleep(IDLE_S)
            result.memory["hub_with_idle_server"] = process_tree_rss(running.hub.process.pid)
            result.memory["container"] = container_memory(client, running.label)
            stop_until_gone(running, USER, client)
    finally:
        client.close()


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 4), "p95": round(percentile(values, 0.95), 4),
            "min": round(min(values), 4), "max": round(max(values), 4), "mean": round(statistics.fmean(values), 4)}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def schedule(spawns: int, rounds: int) -> list[tuple[str, int]]:
    """ABBA: (side, measured spawns) blocks, Titan first in odd rounds and baseline first in even."""
    sizes = [spawns // rounds + (1 if i < spawns % rounds else 0) for i in range(rounds)]
    blocks: list[tuple[str, int]] = []
    for i, size in enumerate(sizes):
        order = ("titan", "baseline") if i % 2 == 0 else ("baseline", "titan")
        blocks.extend((side, size) for side in order)
    return blocks


def report(results: dict[str, SideResult], spawns: int) -> dict[str, Any]:
    titan, base = results["titan"], results["baseline"]
    out: dict[str, Any] = {}
    for side, res in results.items():
        out[side] = {
            "spawn_s": [round(v, 4) for v in res.spawn_s], "spawn": summary(res.spawn_s),
            "stop_s": [round(v, 4) for v in res.stop_s], "stop": summary(res.stop_s),
            "warmup_spawn_s": [round(v, 4) for v in res.warmup_s],
            "phases_from_post_s": {k: summary(v) for k, v in res.phases.items() if v},
            "memory": res.memory, "hub_logs": res.logs,
        }
    tm, bm = titan.memory, base.memory
    out["ratios_titan_over_baseline"] = {
        "spawn_p50": ratio(out["titan"]["spawn"]["p50"], out["baseline"]["spawn"]["p50"]),
        "spawn_p95": ratio(out["titan"]["spawn"]["p95"], out["baseline"]["spawn"]["p95"]),
        "stop_p50": ratio(out["titan"]["stop"]["p50"], out["baseline"]["stop"]["p50"]),
        "hub_proxy_rss_at_start": ratio(tm["hub_at_start"]["total_bytes"], bm["hub_at_start"]["total_bytes"]),
        "hub_proxy_rss_with_idle_server": ratio(tm["hub_with_idle_server"]["total_bytes"],
                                                bm["hub_with_idle_server"]["total_bytes"]),
        "container_memory": ratio(tm["container"]["docker_stats_bytes"], bm["container"]["docker_stats_bytes"]),
    }
    return out


def print_table(data: dict[str, Any], meta: dict[str, Any]) -> None:
    t, b, r = data["titan"], data["baseline"], data["ratios_titan_over_baseline"]

    def row(name: str, tv: float, bv: float, rv: float | None, unit: str, fmt: str = "{:.3f}") -> None:
        rs = f"{rv:.3f}" if rv is not None else "n/a"
        print(f"{name:40} {fmt.format(tv):>10} {fmt.format(bv):>10} {rs:>8}  {unit}")

    def mib(side: dict[str, Any], *keys: str) -> float:
        value: Any = side["memory"]
        for key in keys:
            value = value[key]
        return float(value) / MIB

    print()
    print(f"image {meta['image']}, {meta['spawns']} measured spawns per side in {meta['rounds']} rounds (ABBA), "
          f"1 warm-up per block, poll {POLL_S * 1000:.0f} ms")
    print(f"ready = {READY}")
    print(f"{'':40} {'titan':>10} {'baseline':>10} {'ratio':>8}")
    row("spawn to ready p50", t["spawn"]["p50"], b["spawn"]["p50"], r["spawn_p50"], "s")
    row("spawn to ready p95", t["spawn"]["p95"], b["spawn"]["p95"], r["spawn_p95"], "s")
    first_t, first_b = t["warmup_spawn_s"][0], b["warmup_spawn_s"][0]
    row("a user's first spawn (home volume made)", first_t, first_b, ratio(first_t, first_b), "s")
    row("spawn to ready min / max", t["spawn"]["min"], b["spawn"]["min"], None, "s (min)")
    row("", t["spawn"]["max"], b["spawn"]["max"], None, "s (max)")
    row("stop (DELETE to stopped) p50", t["stop"]["p50"], b["stop"]["p50"], r["stop_p50"], "s")
    row("hub + proxy RSS, at start", mib(t, "hub_at_start", "total_bytes"), mib(b, "hub_at_start", "total_bytes"),
        r["hub_proxy_rss_at_start"], "MiB", "{:.1f}")
    row("hub + proxy RSS, one idle server", mib(t, "hub_with_idle_server", "total_bytes"),
        mib(b, "hub_with_idle_server", "total_bytes"), r["hub_proxy_rss_with_idle_server"], "MiB", "{:.1f}")
    row("  of which hub", mib(t, "hub_with_idle_server", "hub_bytes"), mib(b, "hub_with_idle_server", "hub_bytes"),
        None, "MiB", "{:.1f}")
    row("  of which proxy", mib(t, "hub_with_idle_server", "children_bytes"),
        mib(b, "hub_with_idle_server", "children_bytes"), None, "MiB", "{:.1f}")
    row("hub-managed services (not in the ratio)", mib(t, "hub_with_idle_server", "services_bytes"),
        mib(b, "hub_with_idle_server", "services_bytes"), None, "MiB", "{:.1f}")
    row("idle container (docker stats)", mib(t, "container", "docker_stats_bytes"),
        mib(b, "container", "docker_stats_bytes"), r["container_memory"], "MiB", "{:.1f}")
    row("idle container (cgroup usage incl. cache)", mib(t, "container", "usage_bytes"),
        mib(b, "container", "usage_bytes"), None, "MiB", "{:.1f}")
    phases = sorted(set(t["phases_from_post_s"]) | set(b["phases_from_post_s"]),
                    key=lambda n: [m for m, _ in _MARKERS].index(n))
    if phases:
        print("hub log, median seconds from POST to:")
        for name in phases:
            tv = t["phases_from_post_s"].get(name, {}).get("p50", float("nan"))
            bv = b["phases_from_post_s"].get(name, {}).get("p50", float("nan"))
            print(f"  {name:38} {tv:>10.3f} {bv:>10.3f}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spawn",
                                     description="Spawn time and memory: Titan against a stock DockerSpawner.")
    parser.add_argument("--spawns", type=int, default=MIN_SPAWNS,
                        help=f"measured spawns per side (default and minimum {MIN_SPAWNS})")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds the spawns are split over (default 2)")
    args = parser.parse_args(argv)
    if args.spawns < MIN_SPAWNS:
        parser.error(f"--spawns must be at least {MIN_SPAWNS}")
    if not 1 <= args.rounds <= args.spawns:
        parser.error("--rounds must be between 1 and --spawns")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)

    image = image_tag(IMAGE)
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        print(f"The image {image} is not built: run `python -m images.build` first.", file=sys.stderr)
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {"titan": SideResult(), "baseline": SideResult()}
    blocks = schedule(args.spawns, args.rounds)
    try:
        for number, (side, size) in enumerate(blocks, 1):
            print(f"block {number}/{len(blocks)}: {side}, 1 warm-up + {size} measured", flush=True)
            with running_hub(side, image) as running:
                try:
                    run_block(running, size, measure_memory=not results[side].memory, result=results[side])
                finally:
                    kept = RESULTS / f"spawn-{stamp}-{number}-{side}.log"
                    shutil.copy(running.hub.log_path, kept)
                    results[side].logs.append(str(kept.relative_to(REPO)))
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was cleaned up", file=sys.stderr)
        return 130
    meta = {"timestamp": stamp, "image": image, "spawns": args.spawns, "rounds": args.rounds,
            "ready": READY, "poll_s": POLL_S, "idle_s": IDLE_S, "options": OPTIONS,
            "host_cpus": os.cpu_count(), "host_memory_bytes": psutil.virtual_memory().total}
    data = report(results, args.spawns)
    print_table(data, meta)
    out = RESULTS / f"spawn-{stamp}.json"
    out.write_text(json.dumps({"meta": meta, **data}, indent=2) + "\n")
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
