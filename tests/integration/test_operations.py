"""Operations end to end on one real hub: idle culling per profile, metrics, usage accounting and
the admin overview.

Profiles: ``quick`` (idle_timeout 5 s: the server stops itself at jupyter_server's first 60 s
shutdown check) and ``slow`` (no idle_timeout: culling.timeout, 100 s). jupyterhub-idle-culler runs
with the longest, 100 s, every 5 s: it culls the ``slow`` server at about 100-105 s, before that
server's own check at 120 s would. The hub polls servers every 2 s; the Titan service passes every 1 s.

- q: a ``quick`` server with a Dask cluster and an autosaved repository: it stops itself, and with
  it its cluster (the spawner's stop) and the final snapshot is taken;
- s: a ``slow`` server culled by the culler (its log says so), with a final snapshot too;
- r: a ``slow`` server running while the Titan service is killed and restarted: counted once;
- a: a ``slow`` server and a cluster an admin stops from the admin page.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from core.images import image_tag
from core.labels import LABEL_CLUSTER
from service.usage.recorder import parse_time
from tests.helpers import free_port, wait_for
from tests.integration.hub import Hub, containers, exec_in, remove_deployment, start_hub, stop_hub
from tests.integration.test_gateway import run_in_server

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

TIMEOUT = 60
BACKSTOP = 100
ADMIN = "opsadmin"
PROFILES = {
    "profiles": [
        {"display_name": "Quick", "slug": "quick", "default": True, "image": "minimal",
         "resources": {"cpu": 1, "memory": "1G"}, "idle_timeout": "5s"},
        {"display_name": "Slow", "slug": "slow", "image": "minimal", "resources": {"cpu": 1, "memory": "1G"}},
    ],
    "dask": {
        "worker_cores": {"choices": [0.5, 1], "default": 0.5},
        "worker_memory": {"choices": ["512M", "768M"], "default": "512M"},
        "scheduler": {"cores": 0.5, "memory": "512M"},
        "limits": {"max_clusters": 2, "max_cores": 4, "max_memory": "4G", "max_workers": 4},
    },
}

NEW_CLUSTER = """
import gc
from dask_gateway import Gateway
cluster = Gateway().new_cluster(shutdown_on_close=False)
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
print(json.dumps({"name": cluster.name}))
client.close()
cluster.close()
gc.collect()
"""


# ---- helpers --------------------------------------------------------------------------

class Ops:
    """The hub, its tokens, and the users' servers this module made."""

    q = s = r = a = other = ""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.metrics_token = (hub.root / "state" / "metrics-token").read_text().strip()
        self.tokens: dict[str, str] = {}
        self.started: dict[str, datetime] = {}
        self.spawned_at: dict[str, float] = {}
        self.clusters: dict[str, str] = {}
        self.first_commit: dict[str, str] = {}

    def user(self, prefix: str) -> str:
        name = prefix + secrets.token_hex(2)
        self.hub.admin.create_user(name)
        self.tokens[name] = self.hub.admin.user_token(name)
        return name

    def as_user(self, name: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"token {self.tokens[name]}"
        return session

    def service(self, path: str) -> str:
        return f"{self.hub.url}/services/titan/{path}"

    def spawn(self, user: str, profile: str) -> str:
        self.spawned_at[user] = time.monotonic()
        model = self.hub.admin.spawn(user, "", {"profile": profile})
        started = parse_time(model["started"])
        assert started is not None
        self.started[user] = started
        return container_of(self.hub, user)

    def scrape(self, url: str, token: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = requests.get(url, headers={"Authorization": f"token {token or self.metrics_token}"},
                                timeout=TIMEOUT)
        assert response.status_code == 200, response.text[:300]
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.text) for s in family.samples}

    def hub_metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return self.scrape(f"{self.hub.url}/hub/metrics")

    def service_metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return self.scrape(self.service("metrics"))

    def usage(self, user: str, **query: str) -> dict[str, Any]:
        response = self.as_user(user).get(self.service(f"api/users/{user}/usage"), params=query, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def server_seconds(self, user: str) -> float:
        rows = [r for r in self.usage(user)["rows"] if r["kind"] == "server"]
        return sum(r["server_hours"] for r in rows) * 3600


def container_of(hub: Hub, user: str) -> str:
    found = [c for c in containers(hub.deployment, all_states=False)
             if c["Config"]["Labels"].get("titan.owner") == user and "titan.server" in c["Config"]["Labels"]]
    assert len(found) == 1, f"expected one server container for {user}"
    return str(found[0]["Name"]).lstrip("/")


def dask_containers(hub: Hub, user: str) -> list[dict[str, Any]]:
    return [c for c in containers(hub.deployment) if LABEL_CLUSTER in c["Config"]["Labels"]
            and c["Config"]["Labels"]["titan.owner"] == user]


def make_repo(container: str) -> None:
    result = exec_in(container, "bash", "-c", """set -e; cd ~ && git init -q -b main project && cd project
        git config user.name Q && git config user.email q@example.org
        echo one > notes.txt && git add . && git commit -qm first && echo draft > draft.txt""", user="jovyan")
    assert result.returncode == 0, result.stderr


def enable_autosave(ops: Ops, user: str) -> None:
    response = ops.as_user(user).put(ops.service(f"api/users/{user}/autosave"), timeout=TIMEOUT,
                                     json={"enabled": True, "interval": 600, "repositories": ["project"]})
    assert response.status_code == 200, response.text


def autosave_repo(ops: Ops, user: str) -> dict[str, Any]:
    response = ops.as_user(user).get(ops.service(f"api/users/{user}/autosave"), timeout=TIMEOUT)
    repo: dict[str, Any] = response.json()["repositories"][0]
    return repo


def first_snapshot(ops: Ops, user: str) -> str:
    def taken() -> str | None:
        repo = autosave_repo(ops, user)
        return str(repo["last_commit"]) if repo["last_snapshot"] else None

    return wait_for(taken, 30, f"{user}'s first snapshot")


def service_process(hub: Hub) -> psutil.Process:
    found = []
    for child in psutil.Process(hub.process.pid).children(recursive=True):  # under core.supervise
        try:
            if child.cmdline()[1:3] == ["-m", "service"]:
                found.append(child)
        except psutil.Error:
            continue
    assert len(found) == 1, "the hub runs one Titan service"
    return found[0]


def gone(hub: Hub, user: str) -> bool:
    return not hub.admin.server(user)


def usage_rows(hub: Hub, user: str) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(hub.root / "state" / "service" / "titan-service.sqlite") as db:
        return db.execute("SELECT profile, started, stopped FROM usage_server_sessions WHERE user_name = ?",
                          (user,)).fetchall()


# ---- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minimal_image() -> str:
    """Only the minimal image is used here (built_images wants every image)."""
    tag = image_tag("minimal")
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode != 0:
        pytest.fail(f"Image not built: {tag}. `make test` builds it (make images).")
    return tag


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, minimal_image: str) -> Iterator[Hub]:
    root: Path = tmp_path_factory.mktemp("ops-hub")
    profiles = root / "ops-profiles"
    profiles.mkdir()
    (profiles / "ops.yaml").write_text(yaml.safe_dump(PROFILES))
    overrides = {
        "hub": {"admin_users": [ADMIN]},
        "spawner": {"profiles_dir": str(profiles), "poll_interval": 2},
        "culling": {"timeout": BACKSTOP, "every": 5},
        "service": {"port": free_port(), "check_interval": 1, "min_interval": 1},
    }
    running = start_hub(root, settings_overrides=overrides)
    try:
        wait_for(lambda: requests.get(f"{running.url}/services/titan/metrics", timeout=5).status_code == 403,
                 60, "the Titan service to answer")
        yield running
    finally:
        stop_hub(running)
        remove_deployment(running.deployment)


def prepare_autosave(ops: Ops, user: str, container: str) -> None:
    """A repository with a draft the first (scheduled) snapshot takes, then a change left for the final one."""
    make_repo(container)
    enable_autosave(ops, user)
    ops.first_commit[user] = first_snapshot(ops, user)
    result = exec_in(container, "bash", "-c", "echo two >> ~/project/notes.txt", user="jovyan")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def ops(hub: Hub) -> Ops:
    """s (slow: autosave), r (slow), a (slow: a cluster), started now; q (quick) starts in its own test,
    after the service restart, so that no stop falls while the service is down."""
    world = Ops(hub)
    world.q, world.s, world.r, world.a, world.other = (world.user(p) for p in "qsrao")
    hub.admin.create_user(ADMIN)
    world.tokens[ADMIN] = hub.admin.user_token(ADMIN)
    prepare_autosave(world, world.s, world.spawn(world.s, "slow"))
    world.spawn(world.r, "slow")
    world.clusters[world.a] = run_in_server(world.spawn(world.a, "slow"), NEW_CLUSTER)["name"]
    return world


# ---- tests ----------------------------------------------------------------------------

def server_cmd(hub: Hub, user: str) -> str:
    found = [c for c in containers(hub.deployment, all_states=False)
             if c["Config"]["Labels"].get("titan.owner") == user and "titan.server" in c["Config"]["Labels"]]
    assert len(found) == 1
    return " ".join(found[0]["Config"]["Cmd"]) + " "


def test_a_profile_without_idle_timeout_gets_the_default_and_the_culler_the_longest(hub: Hub, ops: Ops) -> None:
    slow = server_cmd(hub, ops.s)
    assert f"--ServerApp.shutdown_no_activity_timeout={BACKSTOP} " in slow  # culling.timeout, the default
    assert f"--MappingKernelManager.cull_idle_timeout={BACKSTOP} " in slow
    assert "--MappingKernelManager.cull_connected=True" in slow
    culler = [p for p in psutil.Process(hub.process.pid).children() if "jupyterhub_idle_culler" in p.cmdline()]
    assert len(culler) == 1 and f"--timeout={BACKSTOP}" in culler[0].cmdline()


def test_metrics_after_real_activity(hub: Hub, ops: Ops) -> None:
    found = ops.hub_metrics()
    spawns = found[("titan_spawn_duration_seconds_count", (("profile", "slow"), ("status", "success")))]
    assert spawns == 3
    total = found[("titan_spawn_duration_seconds_sum", (("profile", "slow"), ("status", "success")))]
    assert 0 < total < 3 * 120
    assert found[("titan_running_servers", (("profile", "slow"),))] == 3
    assert found[("titan_running_servers", (("profile", "quick"),))] == 0
    assert ("jupyterhub_running_servers", ()) in found  # JupyterHub's own, on the same page
    service = ops.service_metrics()
    assert service[("titan_dask_clusters", (("user", ops.a),))] == 1
    assert service[("titan_dask_workers", (("user", ops.a),))] == 1
    assert ("titan_dask_clusters", (("user", ops.s),)) not in service
    assert service[("titan_autosave_snapshots_total", (("outcome", "committed"), ("reason", "scheduled")))] == 1
    # who may read: the metrics token or an admin; not a user, not anonymous
    assert requests.get(ops.service("metrics"), timeout=TIMEOUT).status_code == 403
    assert ops.as_user(ops.s).get(ops.service("metrics"), timeout=TIMEOUT).status_code == 403
    assert ops.scrape(ops.service("metrics"), token=ops.tokens[ADMIN])
    assert requests.get(f"{hub.url}/hub/metrics", timeout=TIMEOUT,
                        headers={"Authorization": f"token {ops.tokens[ops.s]}"}).status_code == 403


def test_the_admin_overview_shows_who_runs_what_and_stops_a_cluster_and_a_server(hub: Hub, ops: Ops) -> None:
    a: str = ops.a
    other: str = ops.other
    # a user is refused every admin page and API; so is a metrics-only token
    for path in ("admin", "admin/usage", "api/admin/overview"):
        assert ops.as_user(other).get(ops.service(path), timeout=TIMEOUT).status_code == 403, path
    assert ops.as_user(other).post(ops.service("admin/servers/stop"), data={"user": a},
                                   timeout=TIMEOUT).status_code == 403
    overview = ops.as_user(ADMIN).get(ops.service("api/admin/overview"), timeout=TIMEOUT).json()
    servers = {(s["user"], s["server"]): s for s in overview["servers"]}
    assert servers[(ops.s, "")]["profile"] == "slow"
    assert servers[(a, "")]["profile"] == "slow" and servers[(a, "")]["ready"]
    clusters = {c["name"]: c for c in overview["clusters"]}
    cluster = clusters[ops.clusters[a]]
    assert (cluster["user"], cluster["workers"], cluster["cores"]) == (a, 1, 1.0)  # scheduler 0.5 + worker 0.5
    assert overview["gpus"] == []  # no GPU on this host

    browser = hub.login(ADMIN)
    page = browser.get(ops.service("admin"), timeout=TIMEOUT)
    assert page.status_code == 200 and "/hub/static/css/style.min.css" in page.text
    assert f'data-cluster="{ops.clusters[a]}"' in page.text and f'data-user="{a}"' in page.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert xsrf
    # without the XSRF token: refused, the cluster stays
    assert browser.post(ops.service("admin/clusters/stop"), data={"cluster": ops.clusters[a]},
                        timeout=TIMEOUT).status_code == 403
    assert dask_containers(hub, a)
    done = browser.post(ops.service("admin/clusters/stop"), timeout=TIMEOUT,
                        data={"cluster": ops.clusters[a], "_xsrf": xsrf.group(1)})
    assert done.status_code == 200 and f"cluster {ops.clusters[a]} of {a} stopped" in done.text
    wait_for(lambda: not dask_containers(hub, a), 30, "a's cluster containers to go")
    assert hub.admin.server(a), "stopping the cluster left the server running"
    unknown = browser.post(ops.service("admin/clusters/stop"), data={"cluster": "nope", "_xsrf": xsrf.group(1)},
                           timeout=TIMEOUT)
    assert unknown.status_code == 404 and "no active cluster nope" in unknown.text
    done = browser.post(ops.service("admin/servers/stop"), data={"user": a, "server": "", "_xsrf": xsrf.group(1)},
                        timeout=TIMEOUT)
    assert done.status_code == 200 and f"Stopping {a}/default" in done.text
    wait_for(lambda: gone(hub, a), 60, "a's server to stop")


def test_a_server_running_across_a_service_restart_is_counted_once(hub: Hub, ops: Ops) -> None:
    r: str = ops.r
    wait_for(lambda: usage_rows(hub, r), 30, "r's run to be recorded")
    before = service_process(hub)
    before.send_signal(signal.SIGKILL)
    wait_for(lambda: service_process(hub).pid != before.pid, 60, "the hub to restart the Titan service")
    wait_for(lambda: ops.as_user(r).get(ops.service(f"api/users/{r}/usage"), timeout=5).status_code == 200, 60,
             "the restarted service to answer")
    time.sleep(2)  # a pass or two of the new process
    hub.admin.stop(r)
    stopped_at = datetime.now(UTC)
    wait_for(lambda: all(row[2] for row in usage_rows(hub, r)), 30, "r's stop to be recorded")
    rows = usage_rows(hub, r)
    assert len(rows) == 1 and rows[0][0] == "slow"
    expected = (stopped_at - ops.started[r]).total_seconds()
    assert abs(ops.server_seconds(r) - expected) < 4, (ops.server_seconds(r), expected)


def run_seconds(hub: Hub, user: str) -> float:
    """How long the user's one recorded run lasted (the service saw it stop)."""
    def stopped_run() -> tuple[str, str, str] | None:
        rows = usage_rows(hub, user)
        assert len(rows) <= 1, rows
        return (rows[0][0], rows[0][1], rows[0][2]) if rows and rows[0][2] else None

    _, started, stopped = wait_for(stopped_run, 30, f"{user}'s stop to be recorded")
    return (datetime.fromisoformat(stopped) - datetime.fromisoformat(started)).total_seconds()


def test_a_quick_server_stops_itself_with_its_cluster_and_final_snapshot(hub: Hub, ops: Ops) -> None:
    q = ops.q
    container = ops.spawn(q, "quick")
    quick = server_cmd(hub, q)
    assert "--ServerApp.shutdown_no_activity_timeout=5 " in quick  # the profile's own idle_timeout
    assert "--MappingKernelManager.cull_idle_timeout=5 " in quick
    prepare_autosave(ops, q, container)
    ops.clusters[q] = run_in_server(container, NEW_CLUSTER)["name"]
    found = ops.hub_metrics()
    assert found[("titan_spawn_duration_seconds_count", (("profile", "quick"), ("status", "success")))] == 1
    assert found[("titan_running_servers", (("profile", "quick"),))] == 1
    service = ops.service_metrics()
    assert service[("titan_dask_clusters", (("user", q),))] == 1
    assert service[("titan_dask_workers", (("user", q),))] == 1

    wait_for(lambda: gone(hub, q), 150, "q's server to stop itself")
    # its own 5 s timeout, at jupyter_server's shutdown check (every 60 s), noticed by the hub's poll:
    # well before the culler's 100 s
    assert 5 < run_seconds(hub, q) < BACKSTOP - 10, run_seconds(hub, q)
    log = hub.log_path.read_text(errors="replace")
    # exit code 0: DockerSpawner says "0" when the container is already gone at the hub's poll, and
    # "ExitCode=0, Error='', FinishedAt=..." when it finds it exited
    assert re.search(rf"User {q} server stopped, with exit code: (0$|ExitCode=0,)", log, re.MULTILINE)
    assert not re.search(rf"Culling server {q}\b", log), "the culler, not the server, stopped it"
    # Whichever comes first stops the cluster: the spawner's stop (at the hub's poll) or the gateway's
    # check for clusters whose server is gone (its server_check_period); the other then finds none.
    assert re.search(rf"Stopped the Dask clusters of {q}/", log) or \
        re.search(rf"The server of cluster \w+ \({q}\) is gone: stopping the cluster", log), \
        "neither the spawner nor the gateway stopped the cluster"
    wait_for(lambda: not dask_containers(hub, q), 30, "q's cluster containers to go")
    assert ops.hub_metrics()[("titan_running_servers", (("profile", "quick"),))] == 0
    # the final snapshot, from the home volume after the stop
    repo = wait_for(lambda: (repo := autosave_repo(ops, q))["last_commit"] != ops.first_commit[q] and repo, 30,
                    "q's final snapshot")
    commits = ops.as_user(q).get(ops.service(f"api/users/{q}/autosave/repos/{repo['id']}"), timeout=TIMEOUT)
    assert commits.json()["commits"][0]["subject"].startswith("Autosave (final snapshot)")
    # usage: the run from its true start to the stop, and the cluster's cores and memory
    expected = run_seconds(hub, q)
    assert abs(ops.server_seconds(q) - expected) < 0.1, (ops.server_seconds(q), expected)
    dask = [row for row in ops.usage(q)["rows"] if row["kind"] == "dask"]
    assert len(dask) == 1
    core_hours = dask[0]["dask_core_hours"]
    assert 0 < core_hours < 1.0 * expected / 3600  # 1 core (scheduler + worker) for less than the server ran
    assert dask[0]["dask_memory_gib_hours"] == pytest.approx(core_hours, abs=1e-5)  # 0.5 GiB per 0.5 core each
    assert ("titan_dask_clusters", (("user", q),)) not in ops.service_metrics()


def test_the_culler_stopped_a_server_idle_past_the_longest_timeout(hub: Hub, ops: Ops) -> None:
    s = ops.s
    wait_for(lambda: gone(hub, s), 150, "the culler to stop s's server")
    assert BACKSTOP - 5 < run_seconds(hub, s) < 120, run_seconds(hub, s)  # before its own check at 120 s
    assert re.search(rf"Culling server {s}\b", hub.log_path.read_text(errors="replace"))
    repo = wait_for(lambda: (repo := autosave_repo(ops, s))["last_commit"] != ops.first_commit[s] and repo, 30,
                    "s's final snapshot")
    commits = ops.as_user(s).get(ops.service(f"api/users/{s}/autosave/repos/{repo['id']}"), timeout=TIMEOUT)
    assert commits.json()["commits"][0]["subject"].startswith("Autosave (final snapshot)")
    finals = ops.service_metrics()[("titan_autosave_snapshots_total", (("outcome", "committed"),
                                                                         ("reason", "final snapshot")))]
    assert finals == 2  # q's and s's
    assert ops.hub_metrics()[("titan_running_servers", (("profile", "slow"),))] == 0


def test_usage_pages_and_csv_for_a_date_range(hub: Hub, ops: Ops) -> None:
    q: str = ops.q
    s: str = ops.s
    today = datetime.now(UTC).date().isoformat()
    # a user sees their own usage only
    assert ops.as_user(s).get(ops.service(f"api/users/{q}/usage"), timeout=TIMEOUT).status_code == 403
    mine = ops.usage(q, start=today, end=today)
    assert {r["user"] for r in mine["rows"]} == {q}
    bad = ops.as_user(q).get(ops.service(f"api/users/{q}/usage"), params={"start": "2026-02-30"}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "start: '2026-02-30' is not a date" in bad.json()["message"]
    backwards = ops.as_user(ADMIN).get(ops.service("admin/usage"), params={"start": today, "end": "2000-01-01"},
                                       timeout=TIMEOUT)
    assert backwards.status_code == 400 and "must be before end" in backwards.text
    # the admin's CSV: every user's rows, matching each user's own figures
    response = ops.as_user(ADMIN).get(ops.service("admin/usage"), timeout=TIMEOUT,
                                      params={"format": "csv", "start": today, "end": today})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert f"titan-usage-all-{today}" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_key = {(r["user"], r["kind"], r["profile"]): r for r in rows}
    for user in (q, s, ops.r, ops.a):
        own = {(r["user"], r["kind"], r["profile"]): r for r in ops.usage(user, start=today, end=today)["rows"]}
        for key, row in own.items():
            assert float(by_key[key]["server_hours"]) == pytest.approx(row["server_hours"], abs=1e-5)
            assert float(by_key[key]["dask_core_hours"]) == pytest.approx(row["dask_core_hours"], abs=1e-5)
    assert (q, "server", "quick") in by_key and (q, "dask", "") in by_key and (s, "server", "slow") in by_key
    # a range before anything ran is empty
    empty = ops.as_user(ADMIN).get(ops.service("admin/usage"), params={"format": "csv", "start": "2001-01-01",
                                                                        "end": "2001-01-31"}, timeout=TIMEOUT)
    assert empty.text.strip().splitlines() == ["user,kind,profile,server_hours,dask_core_hours,dask_memory_gib_hours"]
    # the pages, in the hub's look
    browser = hub.login(q)
    page = browser.get(ops.service("usage"), timeout=TIMEOUT)
    assert page.status_code == 200 and "/hub/static/css/style.min.css" in page.text
    assert "<td>quick</td>" in page.text and 'href="?start=' in page.text
    assert browser.get(ops.service("admin/usage"), timeout=TIMEOUT).status_code == 403
    admin_page = hub.login(ADMIN).get(ops.service("admin/usage"), timeout=TIMEOUT)
    assert admin_page.status_code == 200 and f"<td>{s}</td>" in admin_page.text


def test_no_cluster_container_is_left(hub: Hub, ops: Ops) -> None:
    leftovers = [c for c in containers(hub.deployment) if LABEL_CLUSTER in c["Config"]["Labels"]]
    assert leftovers == []
