"""``python -m bench.dask_swarm``: Dask create-to-ready on a Swarm against the single-host engine,
same image, same run (issue #16: the swarm at most 1.3x the single-host backend).

- **docker**: a real Titan hub with its gateway (bench.dask's ``titan_side``: the shipped profile data,
  a user's server with the ``minimal`` image); the client runs inside the server with ``Gateway()``.
- **swarm**: a three-node test bed (tests/swarm/testbed.py; the manager drained, the image on the two
  workers), the real dask-gateway-server with Titan's backend on it (tests/swarm/gateway.py), a service
  standing in for the user's server with the same image on the user's overlay network; the client runs
  inside it.

Each side: W uncounted rounds, then N rounds of ``new_cluster()`` until it returns (the scheduler's
first heartbeat reached the gateway: create-to-ready), shut down, then a wait until the cluster's
containers are gone from every engine and a pause: each round starts as a user's first cluster does,
with none of theirs running (a scheduler still stopping holds its node's room for seconds on Swarm).
Prints medians and p95 and the ratio swarm/docker; writes bench/results/dask-swarm-<timestamp>.json.
Exits 0 whatever the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.dask import titan_side
from bench.spawn import ratio, summary
from core.images import image_tag
from core.labels import LABEL_CLUSTER, LABEL_DEPLOYMENT
from tests.helpers import wait_for
from tests.integration.hub import REPO
from tests.swarm.gateway import gateway_on, load_image, stand_in_servers
from tests.swarm.host import can_run
from tests.swarm.testbed import Testbed

IMAGE = "minimal"
DEPLOYMENT = "bsw"
USER = "benchuser"
PASSWORD = "bench-password"
RESULTS = REPO / "bench" / "results"
# The shipped profile data's Dask section, as the docker side's hub has it: the same scheduler size
# on both sides (a scheduler given half a core starts its Python half as fast).
DASK = yaml.safe_load((REPO / "profiles" / "profiles.yaml").read_text())["dask"]

CREATE = """
import gc, json, sys, time
from dask_gateway import BasicAuth, Gateway

args = json.loads(sys.argv[1])
if args["address"]:
    gateway = Gateway(args["address"], proxy_address=args["proxy"], auth=BasicAuth(args["user"], args["password"]))
else:
    gateway = Gateway()  # the server's environment, as in a notebook
t0 = time.perf_counter()
cluster = gateway.new_cluster()
took = time.perf_counter() - t0
cluster.shutdown()
print(json.dumps(took))
"""
GONE_WITHIN_S = 60


def rounds(docker: list[str], container: str, engines: list[list[str]], deployment: str, count: int,
           pause: float, **gateway: str) -> list[float]:
    """``count`` create-to-ready times from inside ``container`` (``docker``: the CLI to reach its
    engine), each once no Dask container of ``deployment`` is left on ``engines`` (their CLIs), then
    a ``pause``."""
    arguments = {"address": "", **gateway}
    listing = ["ps", "-q", "--filter", f"label={LABEL_CLUSTER}", "--filter", f"label={LABEL_DEPLOYMENT}={deployment}"]
    times: list[float] = []
    for _ in range(count):
        output = subprocess.run([*docker, "exec", container, "python", "-c", CREATE, json.dumps(arguments)],
                                capture_output=True, text=True, timeout=120, check=True).stdout
        times.append(float(json.loads(output.strip().splitlines()[-1])))
        wait_for(lambda: not any(subprocess.run([*engine, *listing], capture_output=True, text=True, timeout=30,
                                                check=True).stdout.strip() for engine in engines),
                 GONE_WITHIN_S, "the last cluster's containers to go", interval=0.1)
        time.sleep(pause)
    return times


def docker_side(root: Path, logs: Path, warmup: int, repeat: int, pause: float) -> list[float]:
    with titan_side(root, logs) as (hub, container):
        rounds(["docker"], container, [["docker"]], hub.deployment, warmup, pause)
        return rounds(["docker"], container, [["docker"]], hub.deployment, repeat, pause)


def swarm_side(root: Path, warmup: int, repeat: int, pause: float) -> tuple[list[float], dict[str, float]]:
    bed = Testbed(nodes=3, firewall=True)
    bed.up()
    try:
        bed.docker(1, "node", "update", "--availability", "drain", bed.node_id(1))
        load = load_image(bed, image_tag(IMAGE), (2, 3))
        node, container = stand_in_servers(bed, DEPLOYMENT, (USER,), image_tag(IMAGE))[USER]
        with gateway_on(bed, root, DEPLOYMENT, PASSWORD, DASK) as gateway:
            client = ["docker", "-H", bed.socket(node)]
            nodes = [["docker", "-H", bed.socket(i)] for i in (2, 3)]
            where = {"address": gateway["http"], "proxy": gateway["proxy"], "user": USER, "password": PASSWORD}
            rounds(client, container, nodes, DEPLOYMENT, warmup, pause, **where)
            return rounds(client, container, nodes, DEPLOYMENT, repeat, pause, **where), {"image_load_s": load}
    finally:
        bed.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dask_swarm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds per side (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds per side first (default 1)")
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds between rounds, once the last cluster's containers are gone (default 1)")
    args = parser.parse_args(argv)
    why = can_run()
    if why:
        parser.error(f"no test bed here: {why}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / f"dask-swarm-{stamp}-logs"
    logs.mkdir()
    with tempfile.TemporaryDirectory(prefix="titan-bench-dask-swarm-") as directory:
        root = Path(directory)
        (root / "docker").mkdir()
        (root / "swarm").mkdir()
        docker = docker_side(root / "docker", logs, args.warmup, args.repeat, args.pause)
        swarm, extra = swarm_side(root / "swarm", args.warmup, args.repeat, args.pause)
    result: dict[str, Any] = {
        "image": image_tag(IMAGE), "repeat": args.repeat, "warmup": args.warmup,
        "docker": {"create_s": docker, **summary(docker)}, "swarm": {"create_s": swarm, **summary(swarm), **extra},
    }
    result["ratio_p50"] = ratio(result["swarm"]["p50"], result["docker"]["p50"])
    result["ratio_p95"] = ratio(result["swarm"]["p95"], result["docker"]["p95"])
    (RESULTS / f"dask-swarm-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(f"create-to-ready, {args.repeat} rounds, image {IMAGE}:")
    for side in ("docker", "swarm"):
        print(f"  {side:6}  p50 {result[side]['p50']:.3f} s  p95 {result[side]['p95']:.3f} s  "
              f"({', '.join(f'{t:.2f}' for t in result[side]['create_s'])})")
    print(f"  swarm/docker: p50 {result['ratio_p50']}, p95 {result['ratio_p95']} (target <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
