"""A real Docker Swarm of N nodes on this one machine, each node its own ``dockerd`` in its own
network namespace (facts: ../shared/environment.md, "Swarm in network namespaces").

Layout of one test bed (``prefix`` is ``tsw`` + 6 random hex digits, so runs never collide)::

    <prefix>-sw      a "switch" namespace holding the bridge br0
    <prefix>-nI      node I: eth0 = 10.X.0.(10+I)/24, no default route, its own dockerd
    <prefix>-h       a veth in the root namespace, 10.X.0.254/24, so the hub host reaches the nodes

``10.X.0.0/16`` is the first of 10.232.0.0/16 .. 10.239.0.0/16 that no route, no address of the root
namespace and no other test bed uses (read from ``ip -4 route`` / ``ip -4 addr``; nothing is probed).
Node I's engine keeps everything in ``<root>/<prefix>/nI`` (data and exec roots, socket, pid file,
daemon.json, log) and puts its containers under the cgroup parent ``/<prefix>-nI``. Its
daemon.json advertises the node's generic resources and turns ``no-new-privileges`` on for every
container (Swarm services cannot ask for it per service on engine API 1.41). ``registry=True``: a
registry on the manager (``bed.registry``, tests/swarm/registry.py) that every node trusts.

``homes=True``: the directory ``<prefix>/homes`` of the hub host is every node's too, over the network
(tests/swarm/homes.py: sshd on the hub host, sshfs in each engine's mount namespace).

Use: ``with Testbed(nodes=3, labels={2: {"titan.pool": "big"}}) as bed: ...`` or from a shell
``python -m tests.swarm.testbed up|down|status``. ``down`` leaves nothing (:meth:`Testbed.leftovers`).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.swarm.homes import SharedHomes
from tests.swarm.host import (
    TestbedError,
    alive,
    can_run,
    choose_subnet,
    cmdline,
    pids_mentioning,
    rmdir,
    send,
    sh,
)
from tests.swarm.registry import start_registry, stop_registry

REGISTRY_PORT = 5000  # the registry's port on the manager's address (registry=True)
BASE = Path(os.environ.get("TITAN_SWARM_TESTBED_ROOT") or Path(tempfile.gettempdir()) / "titan-swarm-testbed")
CGROUPS = Path("/sys/fs/cgroup")


class Testbed:
    """N dockerds in N network namespaces forming one swarm (node 1 the manager)."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, nodes: int = 3, labels: Mapping[int, Mapping[str, str]] | None = None,
                 resources: Mapping[int, Sequence[str]] | None = None, managers: int = 1,
                 base: Path = BASE, prefix: str = "", firewall: bool = False, owner: int | None = None,
                 registry: bool = False, homes: bool = False) -> None:
        self.count = nodes
        # The process the test bed dies with: a later up() removes it once that process is gone (a
        # killed test run). 0: kept until someone brings it down (the command line's).
        self.owner = os.getpid() if owner is None else owner
        # firewall: each engine keeps its own iptables rules, forwarding and masquerade inside its node's
        # namespace (as on a real host: docker_gwbridge's icc=false is enforced, containers reach the
        # host side). Off: no rule anywhere, as the reference recipe.
        self.firewall = firewall
        self.labels = dict(labels or {})
        self.resources = dict(resources or {})  # node -> ["gpu=fake-a", ...] (named values: no bare numbers)
        self.managers = managers
        # registry: Debian's docker-registry runs in the manager's namespace on REGISTRY_PORT, its storage
        # in the bed's directory, and every node's engine trusts it over plain HTTP (insecure-registries).
        self.with_registry = registry
        self.prefix = prefix or "tsw" + secrets.token_hex(3)
        self.dir = base / self.prefix
        self.base = base
        self.subnet: ipaddress.IPv4Network | None = None
        self.timings: dict[str, float] = {}
        self._engines: dict[int, subprocess.Popen[bytes]] = {}
        self._registry: subprocess.Popen[bytes] | None = None
        self.homes = homes  # serve homes_root to every node (tests/swarm/homes.py)
        self._homes: SharedHomes | None = None

    # ---- names -------------------------------------------------------------------------------

    def namespace(self, i: int) -> str:
        return f"{self.prefix}-n{i}"

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def host_link(self) -> str:
        return f"{self.prefix}-h"

    def _octets(self) -> str:
        assert self.subnet is not None, "the test bed is not up"
        return ".".join(str(self.subnet.network_address).split(".")[:2])

    def address(self, i: int) -> str:
        """Node I's address (on eth0 of its namespace)."""
        return f"{self._octets()}.0.{10 + i}"

    @property
    def host_address(self) -> str:
        """The root namespace's address on the test network."""
        return f"{self._octets()}.0.254"

    @property
    def homes_root(self) -> Path:
        """With ``homes=True``: the homes directory, the same path on the hub host and on every node."""
        return self.dir / "homes"

    def local_homes(self, i: int) -> Path:
        """What node I has at :attr:`homes_root` when the shared homes are not mounted there (its own disk)."""
        return self.node_dir(i) / "local-homes"

    def node_dir(self, i: int) -> Path:
        return self.dir / f"n{i}"

    def socket(self, i: int) -> str:
        """``unix://...`` of node I's engine (a DOCKER_HOST / docker-py base_url)."""
        return f"unix://{self.node_dir(i)}/docker.sock"

    @property
    def registry(self) -> str:
        """``host:port`` of the bed's registry (on the manager's address), as image names spell it."""
        return f"{self.address(1)}:{REGISTRY_PORT}"

    @property
    def manager(self) -> str:
        return self.socket(1)

    def docker(self, i: int, *args: str, timeout: float = 30, stdin: Any = None) -> str:
        return sh("docker", "-H", self.socket(i), *args, timeout=timeout, stdin=stdin)

    # ---- state ---------------------------------------------------------------------------------

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"prefix": self.prefix, "subnet": str(self.subnet), "nodes": self.count, "owner": self.owner,
                 "registry": self.with_registry}
        (self.dir / "state.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> Testbed:
        """The test bed recorded in ``directory`` (to bring it down from another process)."""
        state = json.loads((directory / "state.json").read_text())
        bed = cls(nodes=int(state["nodes"]), base=directory.parent, prefix=str(state["prefix"]),
                  registry=bool(state.get("registry")))
        bed.subnet = ipaddress.IPv4Network(state["subnet"])
        return bed

    def _reap_orphans(self) -> None:
        """Bring down the test beds whose owner process has ended without doing so."""
        for directory in self.recorded(self.base):
            owner = int(json.loads((directory / "state.json").read_text()).get("owner", 0))
            if owner and not alive(owner):
                Testbed.load(directory).down()

    @staticmethod
    def recorded(base: Path = BASE) -> list[Path]:
        return sorted(p.parent for p in base.glob("tsw*/state.json"))

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # ---- up ------------------------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Testbed:
        """Network, engines, swarm; on any failure everything made so far is removed."""
        why = can_run()
        if why:
            raise TestbedError(why)
        start = time.monotonic()
        try:
            with self._lock():  # two test beds must not pick the same subnet
                self._reap_orphans()
                others = [json.loads((d / "state.json").read_text())["subnet"] for d in self.recorded(self.base)]
                self.subnet = choose_subnet(others)
                self._save()
                self._network()
            if self.homes:
                self._homes = SharedHomes(self.homes_root, self.dir / "ssh", self.host_address)
                self._homes.serve(self.count)
            self._start_engines()
            self._swarm()
            if self.with_registry:
                self._registry = start_registry(self.dir / "registry", self.namespace(1), self.registry)
        except BaseException:
            self.down()
            raise
        self.timings["up"] = time.monotonic() - start
        return self

    def _network(self) -> None:
        sw, br = self.switch, "br0"
        sh("ip", "netns", "add", sw)
        sh("ip", "-n", sw, "link", "set", "lo", "up")
        sh("ip", "-n", sw, "link", "add", br, "type", "bridge")
        sh("ip", "-n", sw, "link", "set", br, "up")
        sh("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", self.host_link + "p")
        sh("ip", "link", "set", self.host_link + "p", "netns", sw)
        sh("ip", "-n", sw, "link", "set", self.host_link + "p", "master", br, "up")
        sh("ip", "addr", "add", f"{self.host_address}/24", "dev", self.host_link)
        sh("ip", "link", "set", self.host_link, "up")
        for i in range(1, self.count + 1):
            ns, outer = self.namespace(i), f"{self.prefix}-v{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", outer + "n")
            sh("ip", "link", "set", outer + "n", "netns", ns)
            sh("ip", "-n", ns, "link", "set", outer + "n", "name", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "link", "set", outer, "netns", sw)
            sh("ip", "-n", sw, "link", "set", outer, "master", br, "up")

    def _start_engines(self) -> None:
        for i in range(1, self.count + 1):
            self._start_engine(i)
        for i in range(1, self.count + 1):
            self._wait_engine(i)

    def _start_engine(self, i: int) -> None:
        d = self.node_dir(i)
        (d / "data").mkdir(parents=True, exist_ok=True)
        (d / "exec").mkdir(exist_ok=True)
        config: dict[str, Any] = {"no-new-privileges": True}
        if self.resources.get(i):
            config["node-generic-resources"] = list(self.resources[i])
        if self.with_registry:
            config["insecure-registries"] = [self.registry]
        (d / "daemon.json").write_text(json.dumps(config))
        ns = self.namespace(i)
        mounts = self._homes.mount_script(i, self.local_homes(i)) + " && " if self._homes else ""
        # --net only (not `ip netns exec`, which remounts /sys and hides the cgroups from dockerd); its
        # own mount namespace keeps the engine's mounts out of ours, its own UTS namespace its hostname.
        command = [
            "nsenter", f"--net=/run/netns/{ns}", "--", "unshare", "--mount", "--uts", "--propagation", "slave",
            "--", "sh", "-c", f'hostname "$0" && {mounts}exec dockerd "$@"', ns,
            "--config-file", str(d / "daemon.json"), "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
            "--pidfile", str(d / "docker.pid"), "-H", self.socket(i),
            *([] if self.firewall else ["--iptables=false", "--ip-forward=false", "--ip-masq=false"]), "--bridge=none",
            "--cgroup-parent", f"/{ns}", "--storage-driver", "overlay2", "--shutdown-timeout", "2",
            "--default-address-pool", f"base={self._octets()}.{64 + i}.0/24,size=24",
            "--swarm-default-advertise-addr", self.address(i),
        ]
        with open(d / "dockerd.log", "wb") as log:
            self._engines[i] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_engine(self, i: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._engines[i].poll() is not None:
                raise TestbedError(f"node {i}: dockerd exited: {self._log_tail(i)}")
            try:
                if sh("docker", "-H", self.socket(i), "version", "--format", "{{.Server.Version}}",
                      timeout=10, check=False).strip():
                    return
            except subprocess.TimeoutExpired:
                pass  # an engine still starting (restarting after a kill: its containerd first) may not answer yet
            time.sleep(0.2)
        raise TestbedError(f"node {i}: dockerd did not answer in {timeout:.0f} s: {self._log_tail(i)}")

    def _log_tail(self, i: int) -> str:
        try:
            return " | ".join((self.node_dir(i) / "dockerd.log").read_text().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def _swarm(self) -> None:
        a1 = self.address(1)
        self.docker(1, "swarm", "init", "--advertise-addr", a1, "--listen-addr", f"{a1}:2377",
                    "--data-path-addr", a1, "--default-addr-pool", f"{self._octets()}.128.0/18",
                    "--default-addr-pool-mask-length", "24")
        tokens = {role: self.docker(1, "swarm", "join-token", "-q", role).strip() for role in ("worker", "manager")}
        for i in range(2, self.count + 1):
            token = tokens["manager" if i <= self.managers else "worker"]
            self.docker(i, "swarm", "join", "--token", token, "--advertise-addr", self.address(i),
                        "--listen-addr", f"{self.address(i)}:2377", "--data-path-addr", self.address(i),
                        f"{a1}:2377", timeout=60)
        for i, labels in self.labels.items():
            node = self.node_id(i)
            for key, value in labels.items():
                self.docker(1, "node", "update", "--label-add", f"{key}={value}", node)

    def node_id(self, i: int) -> str:
        return self.docker(i, "info", "--format", "{{.Swarm.NodeID}}").strip()

    def drain(self, i: int) -> None:
        """Node I runs no task (a manager kept for managing only, as in production)."""
        self.docker(1, "node", "update", "--availability", "drain", self.node_id(i))

    def kill_engine(self, i: int) -> None:
        """Node I's engine dies (SIGKILL, as in a crash); its containers run on (containerd and the
        shims outlive it), unknown to the swarm."""
        pid = self._engine_pid(i)
        assert pid, f"node {i}'s engine is not running"
        send(pid, signal.SIGKILL)
        if i in self._engines:
            self._engines[i].wait(timeout=10)

    def restart_engine(self, i: int) -> None:
        """Node I's engine starts again (after :meth:`kill_engine`) and rejoins the swarm by itself."""
        (self.node_dir(i) / "docker.pid").unlink(missing_ok=True)  # a killed engine's pid file blocks a start
        self._start_engine(i)
        self._wait_engine(i, timeout=120)

    def cut_link(self, i: int, up: bool = False) -> None:
        """Node I's network link goes down (``up``: comes back): it and its containers run on, cut off."""
        sh("ip", "-n", self.switch, "link", "set", f"{self.prefix}-v{i}", "up" if up else "down")

    def admit_only(self, host: str, low: int, high: int) -> None:
        """Each node's firewall admits only ``host`` to the servers' published ports ``low``-``high``,
        both ways a connection takes (docs/swarm-network.md, section 3; the Ansible role writes the same)."""
        ports = f"{low}:{high}"
        for i in range(1, self.count + 1):
            inside = ("ip", "netns", "exec", self.namespace(i), "iptables")
            sh(*inside, "-I", "DOCKER-USER", "-p", "tcp", "-m", "conntrack", "--ctstate", "NEW",
               "--ctorigdstport", ports, "!", "--ctorigsrc", host, "-j", "DROP")
            sh(*inside, "-I", "INPUT", "-p", "tcp", "--dport", ports, "!", "-s", host, "-j", "DROP")

    # ---- images --------------------------------------------------------------------------------

    def load_images(self, images: Sequence[str], main: str = "") -> dict[str, float]:
        """``docker save`` each image from the main engine (``main``, else DOCKER_HOST, else the local
        socket) once, ``docker load`` it into every node (in parallel); the seconds each step took."""
        main = main or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        tars = self.dir / "images"
        tars.mkdir(exist_ok=True)
        spent: dict[str, float] = {}
        for n, image in enumerate(images):
            tar = tars / f"{n}.tar"
            start = time.monotonic()
            sh("docker", "-H", main, "save", "-o", str(tar), image, timeout=300)
            spent[f"save {image}"] = time.monotonic() - start

            def load(i: int, tar: Path = tar, image: str = image) -> None:
                begin = time.monotonic()
                with open(tar, "rb") as stream:
                    self.docker(i, "load", "-q", timeout=300, stdin=stream)
                spent[f"load {image} node {i}"] = time.monotonic() - begin

            start = time.monotonic()
            with ThreadPoolExecutor(self.count) as pool:
                list(pool.map(load, range(1, self.count + 1)))
            spent[f"load {image} all nodes"] = time.monotonic() - start
            tar.unlink()
        self.timings.update(spent)
        return spent

    # ---- down ----------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop every engine of this test bed and remove every trace of it (bounded: ~20 s at worst)."""
        start = time.monotonic()
        stop_registry(self.dir / "registry", self._registry)
        with ThreadPoolExecutor(max(self.count, 1)) as pool:
            list(pool.map(self._stop_engine, range(1, self.count + 1)))
        self.timings["down engines"] = time.monotonic() - start
        self._stop_homes()
        self.timings["down homes"] = time.monotonic() - start - self.timings["down engines"]
        for ns in [self.namespace(i) for i in range(1, self.count + 1)] + [self.switch]:
            if Path("/run/netns", ns).exists():
                sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", self.host_link, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.timings["down"] = time.monotonic() - start

    def _stop_engine(self, i: int) -> None:
        d = self.node_dir(i)
        pid = self._engine_pid(i)
        if pid:
            send(pid, signal.SIGTERM)
            deadline = time.monotonic() + 3  # a clean stop unmounts; the rest is killed below anyway
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            send(pid, signal.SIGKILL)
        if i in self._engines:
            try:
                self._engines[i].wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # Containers outlive a killed engine: end them with runc, then the shims and containerd of
        # this node (their command lines name its exec root), each by pid.
        runc_root = d / "exec" / "runtime-runc" / "moby"
        if runc_root.is_dir():
            for cid in sh("runc", "--root", str(runc_root), "list", "-q", check=False, timeout=10).split():
                sh("runc", "--root", str(runc_root), "kill", cid, "KILL", check=False, timeout=10)
                sh("runc", "--root", str(runc_root), "delete", "-f", cid, check=False, timeout=10)
        for p in pids_mentioning(str(d / "exec")):
            send(p, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pids_mentioning(str(d / "exec")) and time.monotonic() < deadline:
            time.sleep(0.1)
        for controller in CGROUPS.glob(f"*/{self.namespace(i)}"):
            for sub in sorted((p for p in controller.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                rmdir(sub)
            rmdir(controller)
        shutil.rmtree(d, ignore_errors=True)  # its image layers: seconds, so one thread per node

    def _stop_homes(self) -> None:
        """sshd, then whatever else names this bed (the nodes' sshfs and ssh, outliving their engines)."""
        if self._homes is not None:
            self._homes.stop()
        for p in pids_mentioning(str(self.dir)):
            send(p, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pids_mentioning(str(self.dir)) and time.monotonic() < deadline:
            time.sleep(0.1)

    def cut_homes(self, i: int, kill: bool = False) -> None:
        """Node I loses the shared homes: unmounted in its engine's namespace (it then sees its own
        empty directory), or with ``kill`` its sshfs killed (the mount stays, dead: every access fails)."""
        assert self._homes is not None, "the test bed serves no homes"
        if kill:
            for p in self._homes.client_pids(i):
                send(p, signal.SIGKILL)
            return
        sh("nsenter", f"--mount=/proc/{self._engine_pid(i)}/ns/mnt", "--", "fusermount", "-u", str(self.homes_root))

    def _engine_pid(self, i: int) -> int:
        if i in self._engines and self._engines[i].poll() is None:
            return self._engines[i].pid
        try:
            pid = int((self.node_dir(i) / "docker.pid").read_text())
        except (OSError, ValueError):
            return 0
        return pid if str(self.node_dir(i)) in cmdline(pid) else 0

    def leftovers(self) -> list[str]:
        """What of this test bed still exists (empty after :meth:`down`)."""
        found = [f"namespace {ns}" for ns in sorted(os.listdir("/run/netns")) if ns.startswith(self.prefix + "-")] \
            if Path("/run/netns").is_dir() else []
        found += [f"link {name}" for name in os.listdir("/sys/class/net") if name.startswith(self.prefix)]
        found += [f"cgroup {p}" for p in CGROUPS.glob(f"*/{self.prefix}-n*")]
        found += [f"process {p}" for p in pids_mentioning(str(self.dir))]
        found += [f"directory {self.dir}"] if self.dir.exists() else []
        return found

    def status(self) -> str:
        lines = [f"{self.prefix}: subnet {self.subnet}, directory {self.dir}"]
        for i in range(1, self.count + 1):
            state = sh("docker", "-H", self.socket(i), "info", "--format",
                       "{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}} manager={{.Swarm.ControlAvailable}}",
                       check=False, timeout=10).strip()
            lines.append(f"  node {i} ({self.namespace(i)}, {self.socket(i)}): {state or 'engine down'}")
        return "\n".join(lines)


if __name__ == "__main__":
    from tests.swarm.cli import main  # the command line lives there; this module stays the test bed

    sys.exit(main())
