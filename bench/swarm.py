"""Titan on a Docker Swarm against Titan on one host: spawn-to-ready, and how soon a dead node's
servers show stopped.

Run from the repository root (as root: it builds a test swarm of network namespaces)::

    .venv/bin/python -m bench.swarm [--spawns N] [--rounds R]

Both sides are the same hub code, image (minimal) and profile (small), spawned through the real hub
and proxy exactly as bench/spawn.py does (POST, then the first 200 from /user/<u>/api/status through
the proxy). The single-host side runs on this host's Docker engine; the swarm side on a three-node
swarm (tests/swarm/testbed.py: the manager drained, two workers, the images pulled from the
registry on the manager, the homes mounted over the network), in ABBA rounds on fresh hubs with
one uncounted warm-up spawn each. Then one server on the swarm, its node's engine killed: the time
until the hub shows the server stopped (the hub polls every 2 s here; Swarm marks a node down after
missing its heartbeats).

Prints the table (target: swarm/single-host p50 and p95 <= 1.3) and writes
bench/results/swarm-<timestamp>.json. Exits 0 whatever the ratios are.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import requests

from bench.spawn import OPTIONS, RESULTS, Running, ratio, schedule, spawn_until_ready, summary
from tests.integration.hub import Hub, remove_deployment, start_hub, stop_hub
from tests.swarm.registry import push_to_bed
from tests.swarm.testbed import Testbed

USER = "benchuser"
PORTS = "30000-30999"
STOP_TIMEOUT_S = 90.0


def swarm_settings(bed: Testbed) -> dict[str, Any]:
    return {"engine": "swarm", "spawner": {"poll_interval": 2},
            "swarm": {"manager": bed.manager, "hub_address": bed.host_address, "published_ports": PORTS,
                      "registry": bed.registry, "homes_root": str(bed.homes_root)}}


@contextmanager
def hub_on(side: str, bed: Testbed) -> Iterator[Running]:
    root = Path(tempfile.mkdtemp(prefix=f"titan-bench-{side}-"))
    overrides = swarm_settings(bed) if side == "swarm" else {"spawner": {"poll_interval": 2}}
    hub = start_hub(root, {**overrides, "gateway": {"enabled": False}, "service": {"enabled": False}})
    try:
        hub.admin.create_user(USER)
        yield Running(side, hub, f"titan.deployment={hub.deployment}", lambda: None)
    finally:
        stop_hub(hub)
        if side == "docker":
            remove_deployment(hub.deployment)
        shutil.rmtree(root, ignore_errors=True)


def leftovers(running: Running, bed: Testbed) -> list[str]:
    """The containers (one host) or services (swarm) of this hub still there."""
    if running.side == "swarm":
        api = docker.APIClient(base_url=bed.manager, timeout=30)
        return [s["ID"] for s in api.services(filters={"label": running.label})]
    client = docker.from_env()
    return [c.id for c in client.containers.list(all=True, filters={"label": running.label})]


def stop(running: Running, bed: Testbed) -> None:
    admin = running.hub.admin
    response = admin.api("DELETE", f"/users/{USER}/servers/")
    if response.status_code not in (202, 204):
        raise RuntimeError(f"{running.side}: stop refused: {response.status_code} {response.text}")
    began = time.monotonic()
    while admin.server(USER) or leftovers(running, bed):
        if time.monotonic() - began > STOP_TIMEOUT_S:
            raise TimeoutError(f"{running.side}: not stopped and removed after {STOP_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def spawn_block(running: Running, bed: Testbed, spawns: int, times: list[float]) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"token {running.hub.admin.user_token(USER)}"
    for n in range(spawns + 1):  # the first one warms up (image pull on a node, the user's network)
        seconds = spawn_until_ready(running, USER, session)
        if n:
            times.append(seconds)
        stop(running, bed)


def node_death(hub: Hub, bed: Testbed) -> float:
    """Seconds from a node's engine killed to its server shown stopped by the hub."""
    hub.admin.spawn(USER, "doomed", options=OPTIONS)
    api = docker.APIClient(base_url=bed.manager, timeout=30)
    service = next(s for s in api.services(filters={"label": "titan.server=doomed"}))
    task = next(t for t in api.tasks(filters={"service": service["ID"]}) if t["DesiredState"] == "running")
    hostname = api.inspect_node(task["NodeID"])["Description"]["Hostname"]
    node = next(i for i in range(1, bed.count + 1) if bed.namespace(i) == hostname)
    began = time.monotonic()
    bed.kill_engine(node)
    try:
        while hub.admin.server(USER, "doomed"):
            if time.monotonic() - began > STOP_TIMEOUT_S:
                raise TimeoutError("the server of the dead node still shows running")
            time.sleep(0.2)
        return time.monotonic() - began
    finally:
        bed.restart_engine(node)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawns", type=int, default=10, help="measured spawns per side (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds (default 2)")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"docker": [], "swarm": []}
    meta: dict[str, Any] = {"spawns": args.spawns, "rounds": args.rounds, "profile": OPTIONS}
    with Testbed(nodes=3, firewall=True, registry=True, homes=True) as bed:
        bed.drain(1)
        low, high = (int(p) for p in PORTS.split("-"))
        bed.admit_only(bed.host_address, low, high)
        push_to_bed(bed.registry, ["minimal"], manager=bed.manager)  # as scripts/titan.sh images: every node pulls
        for side, size in schedule(args.spawns, args.rounds):
            side = {"titan": "docker", "baseline": "swarm"}[side]
            with hub_on(side, bed) as running:
                spawn_block(running, bed, size, times[side])
                print(f"{side}: {size} spawns, last {times[side][-1]:.2f} s", flush=True)
        with hub_on("swarm", bed) as running:
            meta["node_death_to_stopped_s"] = round(node_death(running.hub, bed), 2)
    data: dict[str, dict[str, float | None]] = {side: dict(summary(values)) for side, values in times.items()}
    data["ratio"] = {q: ratio(data["swarm"][q] or 0.0, data["docker"][q] or 0.0) for q in ("p50", "p95")}
    print(f"{'spawn-to-ready (s)':<22}{'one host':>10}{'swarm':>10}{'ratio':>8}")
    for q in ("p50", "p95"):
        print(f"{q:<22}{data['docker'][q]:>10.3f}{data['swarm'][q]:>10.3f}{data['ratio'][q] or 0:>8.3f}")
    print(f"node engine killed -> server shown stopped: {meta['node_death_to_stopped_s']:.1f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"swarm-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}.json"
    out.write_text(json.dumps({"meta": meta, "summary": data, "spawn_s": times}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
