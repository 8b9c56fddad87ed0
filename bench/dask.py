"""Dask clusters: Titan's Docker backend against dask-gateway's local-process backend, and a
groupby-mean on 10 million rows, pandas in one process against a 2-worker gateway cluster.

Run from the repository root::

    .venv/bin/python -m bench.dask [--repeat N] [--warmup W] [--rows R] [--worker-cores C]

One run measures both sides with the same client code (a small driver process that reads one
command per line and answers with the seconds it measured):

- **docker**: a real Titan hub (``tests.integration.hub.start_hub``, the gateway as its managed
  service), a user server (profile ``small``, the default ``minimal`` image), and the driver running
  in that server with ``docker exec`` and the server's own environment: ``Gateway()`` with no
  arguments, as in a notebook.
- **local**: ``dask-gateway-server`` with ``UnsafeLocalBackend`` (schedulers and workers are local
  processes; the stock ``LocalBackend`` must not run as root), started here on free 127.0.0.1
  ports with simple auth; the driver runs in the host venv with ``Gateway(address, auth=BasicAuth())``.

Each round, on each side (ABBA order): ``new_cluster()`` until it returns (the scheduler is up:
create-to-ready); ``cluster.scale(2)`` until ``client.wait_for_workers(2)`` returns; scale to 0 and
wait until the workers are gone (containers removed, processes exited); ``cluster.scale(4)`` until
4 workers are connected; shut the cluster down and wait until everything is gone. Workers are the
smallest size the profile data offers (same ``--nthreads`` and ``--memory-limit`` on both sides;
the containers also get a CPU quota, the processes none).

Then, on the docker side only, the groupby-mean (mean trip_distance by PULocationID) from a second
server with the ``datascience`` image (pandas): pandas in one process inside that server's
container, and a cluster created from it with the default options, scaled to 2 workers, which
generate the same partitions themselves (``dd.from_map``); results compared.

Prints a table and writes bench/results/dask-<timestamp>.json, with the logs in
bench/results/dask-<timestamp>-logs/. Exits 0 whatever the ratios are.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psutil
import requests
import yaml

from bench.spawn import ratio, start_titan, summary
from core.images import image_tag
from core.labels import LABEL_CLUSTER, LABEL_DEPLOYMENT, LABEL_OWNER, LABEL_ROLE, LABEL_SERVER, WORKER
from core.profiles import profiles_in
from core.units import format_memory, parse_memory
from gateway.limits import Shape, workers_allowed
from gateway.options import DaskSettings, dask_settings
from tests.helpers import free_port, wait_for
from tests.integration.hub import REPO, Hub, containers, remove_deployment, stop_hub

# The rounds run from a server with the default profile's image (minimal: Python, Dask and the
# gateway client, close to the host venv the local side uses); the groupby needs pandas, so it
# runs from a second (named) server with the datascience image.
ROUNDS_IMAGE = "minimal"
GROUPBY_IMAGE = "datascience"
SERVER_OPTIONS = {"profile": "small", "image": ROUNDS_IMAGE}
GROUPBY_SERVER = "groupby"
GROUPBY_OPTIONS = {"profile": "small", "image": GROUPBY_IMAGE}
USER = "benchuser"
RESULTS = REPO / "bench" / "results"
PARTITIONS = 10  # of 1,000,000 rows by default
SEED = 2026
STEP_TIMEOUT_S = 180.0
GONE_TIMEOUT_S = 120.0
SIDES = ("docker", "local")
METRICS = ("create_s", "scale_0_to_2_s", "scale_0_to_4_s")
CREATE_TARGET = 1.2

# ---- the code that runs in the client's Python (the server container, or the host venv) ----

# One partition of taxi-like data; partition i is the same wherever it is generated.
PARTITION = """
def make_partition(i, rows, seed):
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng([seed, i])
    return pd.DataFrame({"PULocationID": rng.integers(1, 266, rows),
                         "trip_distance": rng.gamma(2.0, 1.6, rows).round(2)})
"""

DRIVER = """
import functools, gc, json, sys, time, traceback, warnings
from dask_gateway import Gateway
from dask_gateway.auth import BasicAuth

ARGS = json.loads(sys.argv[1])


def answer(**values):
    sys.stdout.write("@@" + json.dumps(values) + "\\n")
    sys.stdout.flush()


where = ARGS["gateway"]
if where:
    gateway = Gateway(where["address"], proxy_address=where["proxy_address"],
                      auth=BasicAuth(where["username"], where["password"]))
else:
    gateway = Gateway()  # the server's DASK_GATEWAY__* environment, as in a notebook
cluster = client = None


def workers():
    def sizes(dask_scheduler):
        return sorted([w.nthreads, w.memory_limit] for w in dask_scheduler.workers.values())
    return client.run_on_scheduler(sizes)


def until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def create(options):
    global cluster, client
    started = time.perf_counter()
    cluster = gateway.new_cluster(**options)
    ready = time.perf_counter()
    client = cluster.get_client()  # the default: compute() runs on the cluster
    return {"name": cluster.name, "seconds": ready - started, "connect_s": time.perf_counter() - ready}


def scale(n, timeout=150):
    before = len(workers())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        cluster.scale(n)
        if n:
            client.wait_for_workers(n, timeout=timeout)
        else:
            until(lambda: not workers(), timeout, "the workers to leave")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "workers_before": before, "workers": workers(),
            "warnings": [str(w.message) for w in caught]}


def shutdown():
    global cluster, client
    started = time.perf_counter()
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.shutdown()
        cluster.close()
    cluster = client = None
    gc.collect()  # clusters made and shut down in a loop can hang the client without it
    return {"seconds": time.perf_counter() - started}


def groupby(rows, partitions, seed, repeat, warmup_rows):
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd
    from distributed import wait

    meta = pd.DataFrame({"PULocationID": np.array([], dtype="int64"),
                         "trip_distance": np.array([], dtype="float64")})

    def frame(total):
        part = functools.partial(make_partition, rows=total // partitions, seed=seed)
        return dd.from_map(part, range(partitions), meta=meta, enforce_metadata=False)

    def mean(data):
        # split_out=1: one output partition (a tree reduction), right for 265 keys. Left to dask, more
        # than 15 partitions get split_out > 1 and a P2P shuffle, 2-3 times slower here.
        return data.groupby("PULocationID").trip_distance.mean(split_out=1).compute().sort_index()

    started = time.perf_counter()
    mean(frame(warmup_rows))  # uncounted: imports pandas on the workers, ships the function
    warmup = time.perf_counter() - started
    end_to_end = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = mean(frame(rows))
        end_to_end.append(time.perf_counter() - started)
    started = time.perf_counter()
    data = frame(rows).persist()
    wait(data)
    generate = time.perf_counter() - started
    in_memory = []
    for _ in range(repeat):
        started = time.perf_counter()
        again = mean(data)
        in_memory.append(time.perf_counter() - started)
    rows_seen = int(data.map_partitions(len).compute().sum())
    del data
    return {"warmup_s": warmup, "end_to_end_s": end_to_end, "generate_s": generate, "groupby_s": in_memory,
            "rows": rows_seen, "workers": workers(),
            "result": [[int(k), float(v)] for k, v in result.items()],
            "persisted_same": bool(result.index.equals(again.index) and np.allclose(result.values, again.values))}


OPS = {"create": create, "scale": scale, "shutdown": shutdown, "groupby": groupby}
answer(ready=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    request = json.loads(line)
    op = request.pop("op")
    if op == "quit":
        break
    try:
        answer(**OPS[op](**request))
    except Exception:
        answer(error=traceback.format_exc())
try:
    shutdown()
finally:
    gateway.close()
"""

PANDAS = """
import gc, json, sys, time
import pandas as pd

ARGS = json.loads(sys.argv[1])
rows, partitions, seed = ARGS["rows"], ARGS["partitions"], ARGS["seed"]
generate, groupby = [], []
for _ in range(ARGS["repeat"]):
    started = time.perf_counter()
    data = pd.concat([make_partition(i, rows // partitions, seed) for i in range(partitions)], ignore_index=True)
    generated = time.perf_counter()
    result = data.groupby("PULocationID").trip_distance.mean().sort_index()
    done = time.perf_counter()
    generate.append(generated - started)
    groupby.append(done - generated)
    count = len(data)
    del data
    gc.collect()
print(json.dumps({"generate_s": generate, "groupby_s": groupby, "rows": count,
                  "pandas": pd.__version__, "result": [[int(k), float(v)] for k, v in result.items()]}))
"""


# ---- the driver, from here ----------------------------------------------------------------


class Driver:
    """The client process: one JSON command per line on stdin; answers are lines "@@{json}"."""

    def __init__(self, side: str, command: list[str], log_path: Path) -> None:
        self.side = side
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                        text=True, bufsize=1, start_new_session=True)
        self._answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        self._next(STEP_TIMEOUT_S)  # {"ready": true}: imported and connected to nothing yet

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            if line.startswith("@@"):
                self._answers.put(line[2:])
        self._answers.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.side}: no answer from the client after {timeout:.0f} s\n"
                               f"{self.log_tail()}") from None
        if line is None:
            raise RuntimeError(f"{self.side}: the client exited ({self.process.wait(10)})\n{self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.side}: {answer['error']}")
        return answer

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def call(self, op: str, timeout: float = STEP_TIMEOUT_S, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._next(timeout)

    def close(self) -> None:
        """Shut its cluster down and quit; kill it if it does not. (A killed ``docker exec`` leaves
        its process in the container: the container is removed with the deployment.)"""
        try:
            if self.process.poll() is None and self.process.stdin is not None:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(60)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            self._log.close()


def driver_args(gateway: dict[str, str] | None) -> str:
    return json.dumps({"gateway": gateway})


@dataclass
class Side:
    name: str
    driver: Driver
    options: dict[str, Any]  # cluster options sent with new_cluster()
    leftovers: Callable[[bool], list[str]]  # (workers only?) -> what of its clusters still exists
    gateway_log: Path
    rounds: list[dict[str, Any]] = field(default_factory=list)
    warmups: list[dict[str, Any]] = field(default_factory=list)


def wait_gone(side: Side, workers_only: bool) -> float:
    started = time.perf_counter()
    what = "workers" if workers_only else "cluster"
    wait_for(lambda: not side.leftovers(workers_only), GONE_TIMEOUT_S, f"{side.name}: the {what} to be gone",
             interval=0.1)
    return time.perf_counter() - started


def one_round(side: Side) -> dict[str, Any]:
    """create → scale 0→2 → back to 0 → scale 0→4 → shutdown; everything gone at the end."""
    created = side.driver.call("create", options=side.options)
    try:
        two = side.driver.call("scale", n=2)
        down = side.driver.call("scale", n=0)
        down_gone = wait_gone(side, workers_only=True)
        four = side.driver.call("scale", n=4)
    finally:
        stopped = side.driver.call("shutdown")
        stop_gone = wait_gone(side, workers_only=False)
    for step in (two, four):
        if step["warnings"] or step["workers_before"]:
            raise RuntimeError(f"{side.name}: scale was clipped or did not start from 0: {step}")
    return {
        "cluster": created["name"], "create_s": created["seconds"], "scale_0_to_2_s": two["seconds"],
        "scale_0_to_4_s": four["seconds"], "client_connect_s": created["connect_s"], "scale_2_to_0_s": down["seconds"],
        "workers_gone_after_scale_0_s": down_gone, "shutdown_call_s": stopped["seconds"],
        "all_gone_after_shutdown_s": stop_gone, "workers_2": two["workers"], "workers_4": four["workers"],
    }


# ---- the docker side: a Titan hub and a user server ----------------------------------------


def smallest_worker(settings: DaskSettings) -> tuple[float, str]:
    return min(settings.worker_cores), min(settings.worker_memory, key=parse_memory)


def shipped_dask_settings() -> DaskSettings:
    return dask_settings(profiles_in(REPO / "profiles").dask)


def limits_override(settings: DaskSettings, cores: float, memory: str) -> dict[str, Any] | None:
    """Profile data to add when the shipped per-user limits would not allow 4 workers of the
    rounds' size (or 2 of the default size); None when they do."""
    small = Shape(settings.scheduler_cores, settings.scheduler_memory, cores, parse_memory(memory))
    default = Shape(settings.scheduler_cores, settings.scheduler_memory, settings.default_cores,
                    parse_memory(settings.default_memory))
    limits = settings.limits
    if workers_allowed(limits, [], small)[0] >= 4 and workers_allowed(limits, [], default)[0] >= 2:
        return None
    need_cores = settings.scheduler_cores + max(4 * cores, 2 * settings.default_cores)
    need_memory = settings.scheduler_memory + max(4 * parse_memory(memory), 2 * parse_memory(settings.default_memory))
    return {"dask": {"limits": {"max_workers": max(limits.max_workers, 4),
                                "max_cores": max(limits.max_cores, math.ceil(need_cores)),
                                "max_memory": format_memory(max(limits.max_memory, need_memory))}}}


def dask_containers(deployment: str, workers_only: bool) -> list[str]:
    args = ["docker", "ps", "-a", "-q", "--filter", f"label={LABEL_DEPLOYMENT}={deployment}",
            "--filter", f"label={LABEL_CLUSTER}"]
    if workers_only:
        args += ["--filter", f"label={LABEL_ROLE}={WORKER}"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


def server_container(hub: Hub, user: str, server: str = "") -> str:
    found = [c for c in containers(hub.deployment, all_states=False)
             if c["Config"]["Labels"].get(LABEL_OWNER) == user
             and c["Config"]["Labels"].get(LABEL_SERVER) == server
             and LABEL_ROLE not in c["Config"]["Labels"]]
    if len(found) != 1:
        raise RuntimeError(f"expected one server container for {user}, found {len(found)}")
    return str(found[0]["Name"]).lstrip("/")


@contextmanager
def titan_side(root: Path, logs: Path) -> Iterator[tuple[Hub, str]]:
    """A hub, the user's server; yields (hub, server container). Everything removed on exit."""
    hub: Hub | None = None
    try:
        running = start_titan(root)
        hub = running.hub
        hub.admin.create_user(USER)
        hub.admin.spawn(USER, "", SERVER_OPTIONS, timeout=STEP_TIMEOUT_S)
        yield hub, server_container(hub, USER)
    finally:
        if hub is not None:
            try:
                stop_hub(hub)
            finally:
                remove_deployment(hub.deployment)
                if hub.log_path.exists():
                    shutil.copy(hub.log_path, logs / "hub.log")


# ---- the local side: dask-gateway-server with UnsafeLocalBackend --------------------------

LOCAL_CONFIG = """
c.DaskGateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{proxy}"
c.Proxy.tcp_address = "127.0.0.1:{tcp}"
c.DaskGateway.log_level = "INFO"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.LocalBackend.clusters_directory = {clusters!r}
# As Titan's gateway (gateway/configure.py):
c.LocalBackend.cluster_status_period = 5.0
c.LocalBackend.worker_status_period = 5.0
c.LocalBackend.cluster_start_timeout = 120.0
c.LocalBackend.worker_start_timeout = 120.0
c.ClusterConfig.idle_timeout = {idle_timeout}
c.ClusterConfig.scheduler_cmd = [{dask!r}, "scheduler"]
c.ClusterConfig.worker_cmd = [{dask!r}, "worker", "--host", "127.0.0.1"]
c.ClusterConfig.worker_cores = {worker_cores}
c.ClusterConfig.worker_memory = {worker_memory}
c.ClusterConfig.scheduler_cores = {scheduler_cores}
c.ClusterConfig.scheduler_memory = {scheduler_memory}
"""


def local_processes(gateway: psutil.Process, workers_only: bool) -> list[str]:
    roles = {"worker"} if workers_only else {"worker", "scheduler"}
    found = []
    for child in gateway.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and roles & set(child.cmdline()[1:3]):
                found.append(str(child.pid))
        except psutil.Error:
            continue
    return found


@contextmanager
def local_side(root: Path, settings: DaskSettings, worker_cores: float, worker_memory: int,
               logs: Path) -> Iterator[dict[str, Any]]:
    """dask-gateway-server with UnsafeLocalBackend; yields how to reach it. Its scheduler and worker
    processes run in their own sessions: they are found as its children and killed by pid on exit."""
    api, proxy, tcp = free_port(), free_port(), free_port()
    password = secrets.token_hex(16)
    config = root / "local_gateway_config.py"
    config.write_text(LOCAL_CONFIG.format(
        api=api, proxy=proxy, tcp=tcp, password=password, clusters=str(root / "clusters"), idle_timeout=1800.0,
        dask=str(Path(sys.executable).parent / "dask"), worker_memory=worker_memory,
        worker_cores=max(1, int(worker_cores)),  # what sets --nthreads; the docker side's is the same
        scheduler_cores=max(1, math.ceil(settings.scheduler_cores)), scheduler_memory=settings.scheduler_memory))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASK_GATEWAY", "JUPYTERHUB_", "TITAN_", "OAUTH_"))}
    log_path = root / "local-gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "dask_gateway_server", "-f", str(config)], cwd=root,
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    gateway = psutil.Process(process.pid)
    address = f"http://127.0.0.1:{proxy}"

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError("the local gateway exited:\n" + log_path.read_text(errors="replace")[-3000:])
        return requests.get(f"{address}/api/health", timeout=5).status_code == 200

    try:
        wait_for(answering, 60, "the local gateway to answer")
        yield {"process": gateway, "log_path": log_path, "gateway": {"address": address, "proxy_address": f"gateway://127.0.0.1:{tcp}",
                                               "username": USER, "password": password}}
    finally:
        children = []
        try:
            children = gateway.children(recursive=True)
        except psutil.Error:
            pass
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # stops its clusters (stop_clusters_on_shutdown)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        shutil.copy(log_path, logs / "local-gateway.log")


# ---- the groupby ----------------------------------------------------------------------------


def pandas_in_server(container: str, rows: int, repeat: int) -> dict[str, Any]:
    script = PARTITION + textwrap.dedent(PANDAS)
    arguments = json.dumps({"rows": rows, "partitions": PARTITIONS, "seed": SEED, "repeat": repeat})
    result = subprocess.run(["docker", "exec", container, "python", "-c", script, arguments],
                            capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"pandas in the server: exit {result.returncode}\n{result.stderr[-3000:]}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def same_result(a: list[list[float]], b: list[list[float]]) -> bool:
    return len(a) == len(b) and all(ka == kb and math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12)
                                    for (ka, va), (kb, vb) in zip(a, b, strict=True))


def cluster_groupby(driver: Driver, rows: int, repeat: int) -> dict[str, Any]:
    created = driver.call("create", options={})  # the profile's default worker size, as a notebook gets
    try:
        scaled = driver.call("scale", n=2)
        result = driver.call("groupby", timeout=900, rows=rows, partitions=PARTITIONS, seed=SEED, repeat=repeat,
                             warmup_rows=PARTITIONS * 1000)
    finally:
        driver.call("shutdown")
    return {**result, "create_s": created["seconds"], "scale_0_to_2_s": scaled["seconds"],
            "scale_warnings": scaled["warnings"]}


# ---- the gateway logs: where the time goes --------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STAMP = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) DaskGateway\] (.*)$")
_EVENTS = [
    ("cluster_submitting", re.compile(r"^Submitting cluster (\w+)\.\.\.")),
    ("cluster_submitted", re.compile(r"^Cluster (\w+) submitted")),
    ("cluster_running", re.compile(r"^Cluster (\w+) is running")),
    ("worker_submitting", re.compile(r"^Submitting worker (\w+)\.\.\.")),
    ("worker_submitted", re.compile(r"^Worker (\w+) submitted")),
]
_WORKER_OF = re.compile(r"^Created worker (\w+) for cluster (\w+)")
PHASES = {
    "backend_start_scheduler_s": ("cluster_submitting", "cluster_submitted"),  # do_start_cluster
    "scheduler_started_to_first_heartbeat_s": ("cluster_submitted", "cluster_running"),
    "backend_start_worker_s": ("worker_submitting", "worker_submitted"),  # do_start_worker
}


def gateway_phases(log_path: Path, clusters: set[str]) -> dict[str, list[float]]:
    """Seconds between the gateway's own log lines, for the measured rounds' clusters and workers:
    the backend's start call (docker create + TLS archive + start, or a fork and exec) and, for the
    scheduler, from that call's end to its first heartbeat (the process starting up)."""
    seen: dict[tuple[str, str], float] = {}
    owner: dict[str, str] = {}
    for raw in log_path.read_text(errors="replace").splitlines():
        line = _STAMP.match(_ANSI.sub("", raw))
        if not line:
            continue
        moment = datetime.strptime(line.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        message = line.group(2)
        if worker := _WORKER_OF.match(message):
            owner[worker.group(1)] = worker.group(2)
            continue
        for event, pattern in _EVENTS:
            if found := pattern.match(message):
                seen.setdefault((event, found.group(1)), moment)
                break
    phases: dict[str, list[float]] = {}
    for phase, (begin, end) in PHASES.items():
        for (event, name), moment in seen.items():
            if event != begin or (owner.get(name, name) not in clusters) or (end, name) not in seen:
                continue
            phases.setdefault(phase, []).append(round(seen[(end, name)] - moment, 3))
    return phases


# ---- the report -----------------------------------------------------------------------------


def side_report(side: Side) -> dict[str, Any]:
    phases = gateway_phases(side.gateway_log, {r["cluster"] for r in side.rounds})
    out: dict[str, Any] = {"rounds": side.rounds, "warmup_rounds": side.warmups,
                           "gateway_log_phases": {k: summary(v) for k, v in phases.items() if v}}
    for metric in (*METRICS, "scale_2_to_0_s", "all_gone_after_shutdown_s"):
        out[metric.removesuffix("_s")] = summary([r[metric] for r in side.rounds])
    return out


def report(sides: dict[str, Side], groupby: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {name: side_report(side) for name, side in sides.items()}
    d, lo = out["docker"], out["local"]
    out["ratios_docker_over_local"] = {
        f"{m.removesuffix('_s')}_{stat}": ratio(d[m.removesuffix("_s")][stat], lo[m.removesuffix("_s")][stat])
        for m in METRICS for stat in ("p50", "mean")}
    create = out["ratios_docker_over_local"]["create_p50"]
    out["create_to_ready_target"] = {"target": CREATE_TARGET, "met": create is not None and create <= CREATE_TARGET}
    if groupby:
        pandas, cluster = groupby["pandas"], groupby["cluster"]
        pandas_e2e = [g + b for g, b in zip(pandas["generate_s"], pandas["groupby_s"], strict=True)]
        groupby["summary"] = {
            "pandas_generate_and_groupby": summary(pandas_e2e), "cluster_generate_and_groupby":
                summary(cluster["end_to_end_s"]),
            "pandas_groupby_in_memory": summary(pandas["groupby_s"]),
            "cluster_groupby_in_memory": summary(cluster["groupby_s"]),
        }
        s = groupby["summary"]
        groupby["ratios_cluster_over_pandas"] = {
            "generate_and_groupby_p50": ratio(s["cluster_generate_and_groupby"]["p50"],
                                              s["pandas_generate_and_groupby"]["p50"]),
            "groupby_in_memory_p50": ratio(s["cluster_groupby_in_memory"]["p50"], s["pandas_groupby_in_memory"]["p50"]),
        }
        out["groupby"] = groupby
    return out


def print_table(data: dict[str, Any], meta: dict[str, Any]) -> None:
    d, lo, r = data["docker"], data["local"], data["ratios_docker_over_local"]

    def fmt(value: float | None) -> str:
        return f"{value:.3f}" if value is not None else "n/a"

    print()
    print(f"{meta['repeat']} rounds per side (ABBA), {meta['warmup']} warm-up; workers "
          f"--nthreads {max(1, int(meta['docker_worker_cores']))}, "
          f"--memory-limit {meta['worker_memory']} (docker: {meta['docker_worker_cores']:g}-core quota; local: none)")
    print(f"{'seconds, p50 (min-max)':34} {'docker':>20} {'local':>20} {'docker/local':>13}")
    labels = {"create_s": "cluster create-to-ready", "scale_0_to_2_s": "scale 0->2 workers ready",
              "scale_0_to_4_s": "scale 0->4 workers ready"}
    for metric in METRICS:
        key = metric.removesuffix("_s")
        cells = [f"{s[key]['p50']:.3f} ({s[key]['min']:.2f}-{s[key]['max']:.2f})" for s in (d, lo)]
        note = f"  target <= {CREATE_TARGET}" if metric == "create_s" else ""
        print(f"{labels[metric]:34} {cells[0]:>20} {cells[1]:>20} {fmt(r[key + '_p50']):>13}{note}")
    print("gateway log, median seconds:")
    for phase in PHASES:
        cells = [f"{s['gateway_log_phases'][phase]['p50']:.3f}" if phase in s["gateway_log_phases"] else "n/a"
                 for s in (d, lo)]
        print(f"  {phase.removesuffix('_s').replace('_', ' '):32} {cells[0]:>20} {cells[1]:>20}")
    groupby = data.get("groupby")
    if not groupby:
        return
    s, gr = groupby["summary"], groupby["ratios_cluster_over_pandas"]
    print()
    cluster = groupby["cluster"]
    print(f"groupby-mean, {meta['rows']:,} rows ({PARTITIONS} partitions), from a {GROUPBY_IMAGE} server "
          f"({meta['server_profile']}): pandas = one process in that server's container;\ncluster = 2 workers x "
          f"{meta['groupby_worker']} (that cluster: create {cluster['create_s']:.2f} s, "
          f"scale 0->2 {cluster['scale_0_to_2_s']:.2f} s)")
    print(f"{'seconds, p50 (min-max)':34} {'pandas':>20} {'cluster':>20} {'cluster/pandas':>13}")
    for label, key, ratio_key in (("generate + groupby-mean", "generate_and_groupby", "generate_and_groupby_p50"),
                                  ("groupby-mean on data in memory", "groupby_in_memory", "groupby_in_memory_p50")):
        cells = [f"{x['p50']:.3f} ({x['min']:.2f}-{x['max']:.2f})"
                 for x in (s[f"pandas_{key}"], s[f"cluster_{key}"])]
        print(f"{label:34} {cells[0]:>20} {cells[1]:>20} {fmt(gr[ratio_key]):>13}")
    print(f"results agree: {groupby['results_agree']} ({groupby['pandas']['zones']} zones; "
          f"pandas {groupby['pandas']['rows']:,} rows, cluster {groupby['cluster']['rows']:,} rows)")


# ---- main -----------------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, root: Path, logs: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = shipped_dask_settings()
    cores, memory = smallest_worker(settings)
    if args.worker_cores is not None:
        if args.worker_cores not in settings.worker_cores:
            raise SystemExit(f"--worker-cores must be one of the profile data's choices: "
                             f"{', '.join(f'{c:g}' for c in settings.worker_cores)}")
        cores = args.worker_cores
    override = limits_override(settings, cores, memory)
    if override:
        (root / "profiles").mkdir(parents=True, exist_ok=True)
        (root / "profiles" / "30-bench.yaml").write_text(yaml.safe_dump(override))
    meta: dict[str, Any] = {
        "repeat": args.repeat, "warmup": args.warmup, "rows": args.rows, "partitions": PARTITIONS,
        "rounds_image": image_tag(ROUNDS_IMAGE), "groupby_image": image_tag(GROUPBY_IMAGE),
        "server_profile": "small: 1 CPU, 2G", "docker_worker_cores": cores,
        "worker_memory": memory, "scheduler": {"cores": settings.scheduler_cores,
                                               "memory": format_memory(settings.scheduler_memory)},
        "groupby_worker": f"{settings.default_cores:g} core, {settings.default_memory} (profile default)",
        "limits_override": override, "host_cpus": os.cpu_count(), "host_memory_bytes": psutil.virtual_memory().total,
    }
    with titan_side(root / "titan", logs) as (hub, container), \
            local_side(root, settings, cores, parse_memory(memory), logs) as local:
        return meta, measure(args, hub, container, local, logs, {"worker_cores": cores, "worker_memory": memory})


def run_groupby(args: argparse.Namespace, hub: Hub, logs: Path) -> dict[str, Any]:
    """pandas in one process in the groupby server's container, then a cluster made from that server."""
    hub.admin.spawn(USER, GROUPBY_SERVER, GROUPBY_OPTIONS, timeout=STEP_TIMEOUT_S)
    container = server_container(hub, USER, GROUPBY_SERVER)
    groupby: dict[str, Any] = {}
    print(f"  pandas in the {GROUPBY_IMAGE} server's container: {args.rows:,} rows, {args.repeat} runs", flush=True)
    groupby["pandas"] = pandas_in_server(container, args.rows, args.repeat)
    print("  the gateway cluster, 2 workers", flush=True)
    driver = Driver("docker", ["docker", "exec", "-i", container, "python", "-u", "-c",
                               PARTITION + textwrap.dedent(DRIVER), driver_args(None)], logs / "client-groupby.log")
    try:
        groupby["cluster"] = cluster_groupby(driver, args.rows, args.repeat)
    finally:
        driver.close()
    groupby["results_agree"] = same_result(groupby["pandas"]["result"], groupby["cluster"]["result"])
    for part in ("pandas", "cluster"):
        groupby[part]["zones"] = len(groupby[part].pop("result"))
    return groupby


def measure(args: argparse.Namespace, hub: Hub, container: str, local: dict[str, Any], logs: Path,
            docker_options: dict[str, Any]) -> dict[str, Any]:
    """The rounds, with one client process per side (closed before the sides go), then the groupby."""
    script = PARTITION + textwrap.dedent(DRIVER)
    drivers: list[Driver] = []
    try:
        docker_driver = Driver("docker", ["docker", "exec", "-i", container, "python", "-u", "-c", script,
                                          driver_args(None)], logs / "client-docker.log")
        drivers.append(docker_driver)
        drivers.append(Driver("local", [sys.executable, "-u", "-c", script, driver_args(local["gateway"])],
                              logs / "client-local.log"))
        gateway_process: psutil.Process = local["process"]
        sides = {
            "docker": Side("docker", docker_driver, docker_options,
                           lambda workers_only: dask_containers(hub.deployment, workers_only), hub.log_path),
            "local": Side("local", drivers[1], {}, lambda workers_only: local_processes(gateway_process, workers_only),
                          local["log_path"]),
        }
        for number in range(args.warmup + args.repeat):
            for name in SIDES if number % 2 == 0 else SIDES[::-1]:  # ABBA
                side = sides[name]
                result = one_round(side)
                warm = number < args.warmup
                (side.warmups if warm else side.rounds).append(result)
                print(f"  {name:6} {'warm-up' if warm else f'round {number - args.warmup + 1}':8}"
                      f" create {result['create_s']:6.3f} s   0->2 {result['scale_0_to_2_s']:6.3f} s"
                      f"   0->4 {result['scale_0_to_4_s']:6.3f} s", flush=True)
                gc.collect()
    finally:
        for driver in drivers:
            driver.close()
    return report(sides, run_groupby(args, hub, logs) if args.rows else {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dask",
                                     description="Dask clusters: Titan's Docker backend against UnsafeLocalBackend, "
                                                 "and a 10M-row groupby-mean, pandas against a 2-worker cluster.")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds per side and groupby runs (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds per side first (default 1)")
    parser.add_argument("--worker-cores", type=float, default=None,
                        help="CPU quota of the docker side's workers in the rounds, one of the profile data's "
                             "choices (default: the smallest); both sides run them with --nthreads 1")
    parser.add_argument("--rows", type=int, default=10_000_000,
                        help="rows for the groupby-mean (default 10,000,000; 0 skips it)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.rows < 0 or (args.rows and args.rows < PARTITIONS):
        parser.error("--repeat must be >= 1, --warmup >= 0, --rows 0 or >= the partition count")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)

    for image in (image_tag(ROUNDS_IMAGE), image_tag(GROUPBY_IMAGE)):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
            print(f"The image {image} is not built: run `python -m images.build` first.", file=sys.stderr)
            return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"dask-{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="titan-bench-dask-"))
    try:
        meta, data = run(args, root, logs)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was cleaned up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    meta["timestamp"] = stamp
    meta["logs"] = str(logs.relative_to(REPO))
    out = RESULTS / f"dask-{stamp}.json"
    out.write_text(json.dumps({"meta": meta, **data}, indent=2) + "\n")
    print_table(data, meta)
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
