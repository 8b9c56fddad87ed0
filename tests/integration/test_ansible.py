"""The Ansible playbooks end to end: `molecule test` in ansible/ on a systemd Debian 12 container.

The scenario (ansible/molecule/default) first installs an older release of Titan, taken from git
history (OLD_REVISION), with that release's own site.yml, and puts data in it: a user in a group,
her autosave settings in the Titan service's database, a file in her home volume. Converge then runs
this tree's site.yml over it (an upgrade: the databases are copied and migrated before the hub
restarts), runs it again and fails if anything changed (idempotence), and verify checks that the data
is all there, that the hub spawns a server in the test host's own Docker engine and routes to it, and
that a backup, a wipe of the state directory and every home volume, and a restore give back the
users, groups, tokens, autosave settings, every row of every table of the service's database (share
links included, whatever their schema), the service's files (rendered reports) and the home files.

The container's image is made here from Debian's packages with mmdebstrap (no registry) and
removed afterwards; the single-user images are loaded from this machine's engine rather than built
again inside (vfs storage there makes building slow). The container has a cgroup namespace of its
own, so that nothing it does to cgroups outlives it on this machine: the test checks that
`docker stats` still reports memory afterwards.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.images import image_tag
from core.network import host_routes
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
VENV_BIN = Path(sys.executable).parent
IMAGE = "titan-molecule-debian12:latest"
#: The swarm scenario's hosts: Docker (and what the apt module needs) preinstalled, package lists kept
#: and marked fresh, so nothing is fetched inside (the hosts sit on a Docker network of their own).
SWARM_IMAGE = "titan-molecule-swarm-debian12:latest"
SWARM_PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,docker.io,iptables"
MIRROR = os.environ.get("TITAN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: The release the upgrade starts from: the first commit with ansible/ (its service database lacks
#: the autosave_users.strip_outputs column and the clone_repos table that later releases migrate in).
OLD_REVISION = "8969d88"
CGROUP_ROOT = Path("/sys/fs/cgroup")
MOLECULE_TIMEOUT = 2400  # seconds; a run takes about 10-20 minutes on 2 busy cores

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


# ---- cgroups on this machine ------------------------------------------------------------------
# A cgroup v1 hierarchy that the processes here belong to (/proc/self/cgroup) but that is mounted
# nowhere on this machine makes containerd fail to load every container's cgroups ("cannot find
# cgroup mount destination"), and `docker stats` then reports 0 B. A systemd container given this
# machine's /sys/fs/cgroup and cgroup namespace left such hierarchies behind (net_cls,net_prio,
# perf_event, hugetlb): it mounted them in its own mount namespace, which died with it.


def _v1_hierarchies() -> list[set[str]]:
    """The cgroup v1 hierarchies this process is in, each as its set of controllers."""
    hierarchies = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, _ = line.split(":", 2)
        if number != "0" and controllers:
            hierarchies.append(set(controllers.split(",")))
    return hierarchies


def _mounted_v1() -> list[set[str]]:
    """Super options of every cgroup v1 mount of this machine."""
    mounted = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        _, after = line.split(" - ", 1)
        fstype, _, options = after.split(" ", 2)
        if fstype == "cgroup":
            mounted.append(set(options.split(",")))
    return mounted


def _unmounted_hierarchies() -> list[str]:
    mounted = _mounted_v1()
    return [",".join(sorted(h)) for h in _v1_hierarchies() if not any(h <= options for options in mounted)]


def _mount_hierarchy(controllers: str, where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    options = controllers if "name=" not in controllers or "," in controllers else f"none,{controllers}"
    return subprocess.run(["mount", "-t", "cgroup", "-o", options, "cgroup", str(where)],
                          capture_output=True, check=False).returncode == 0


def _repair_hierarchies() -> list[str]:
    """Remove the hierarchies mounted nowhere (mount each, remove its empty cgroups, unmount: the
    kernel then drops it); one that will not go is mounted under /run, so that containerd finds it.
    Returns what was found."""
    lingering = _unmounted_hierarchies()
    for controllers in lingering:
        for _ in range(3):
            with tempfile.TemporaryDirectory(prefix="titan-cgroup-") as scratch:
                if not _mount_hierarchy(controllers, Path(scratch)):
                    break
                for directory in sorted(Path(scratch).rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if directory.is_dir():
                        with contextlib.suppress(OSError):
                            directory.rmdir()
                time.sleep(1)  # rmdir returns before the kernel unlinks the cgroup
                subprocess.run(["umount", scratch], check=False)
            time.sleep(1)
            if controllers not in _unmounted_hierarchies():
                break
        else:
            _mount_hierarchy(controllers, Path("/run/titan-cgroups") / controllers.replace("=", "-"))
    return lingering


def _ensure_systemd_hierarchy() -> None:
    """systemd in the container needs a name=systemd hierarchy, and in a cgroup namespace of its
    own it cannot create one (only the initial namespace may): create and mount it here, as on any
    systemd machine, when it does not exist yet. It stays mounted, so containerd finds it."""
    if any("name=systemd" in h for h in _v1_hierarchies()):
        return
    if os.geteuid() != 0:
        pytest.fail("No name=systemd cgroup hierarchy, and only root can make one: run the tests as root "
                    "(make test) or `mkdir -p /run/titan-cgroups/systemd && mount -t cgroup -o none,name=systemd "
                    "cgroup /run/titan-cgroups/systemd`.")
    target = CGROUP_ROOT / "systemd"
    with contextlib.suppress(OSError):
        target.mkdir(exist_ok=True)
    if not (target.is_dir() and _mount_hierarchy("name=systemd", target)):
        assert _mount_hierarchy("name=systemd", Path("/run/titan-cgroups/systemd")), "cannot mount name=systemd"


def _cgroup2_directories(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_dir()}


@contextlib.contextmanager
def _cgroup2_cleanup() -> Iterator[None]:
    """systemd in the container (hybrid mode) makes its cgroups in the cgroup2 hierarchy, whose
    namespace root is this machine's: remove those it left (empty ones only) afterwards."""
    with tempfile.TemporaryDirectory(prefix="titan-cgroup2-") as scratch:
        root = Path(scratch)
        mounted = subprocess.run(["mount", "-t", "cgroup2", "none", scratch], capture_output=True,
                                 check=False).returncode == 0
        before = _cgroup2_directories(root) if mounted else set()
        try:
            yield
        finally:
            if mounted:
                for directory in sorted(_cgroup2_directories(root) - before, key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        (root / directory).rmdir()
                subprocess.run(["umount", scratch], check=False)


def _memory_reported() -> str:
    """What `docker stats` says about a small container's memory on this machine's engine."""
    started = _docker("run", "-d", "--rm", "--network=none", image_tag("base"), "sleep", "60")
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        time.sleep(2)
        return _docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container).stdout.strip()
    finally:
        _docker("rm", "-f", container)


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def systemd_image() -> Iterator[str]:
    """A Debian 12 image that boots systemd (about 30-45 s with mmdebstrap); removed afterwards."""
    if _docker("info").returncode != 0:
        pytest.fail("No Docker engine answers. `make test` starts one; run the tests through it.")
    for name in ("base", "minimal"):
        if _docker("image", "inspect", image_tag(name)).returncode != 0:
            pytest.fail(f"{image_tag(name)} is not built; `make test` builds it (make images).")
    created = _docker("image", "inspect", IMAGE).returncode != 0
    if created:
        pipeline = (
            "set -o pipefail; mmdebstrap --quiet --variant=apt "
            "--include=systemd,systemd-sysv,dbus,python3,sudo,ca-certificates "
            f"bookworm - {MIRROR} | docker import --change 'CMD [\"/sbin/init\"]' "
            f"--change 'ENV container=docker' - {IMAGE}"
        )
        subprocess.run(["bash", "-c", pipeline], check=True, timeout=600)
    try:
        yield IMAGE
    finally:
        if created:
            _docker("image", "rm", IMAGE)


@pytest.fixture(scope="module")
def swarm_image() -> Iterator[str]:
    """A Debian 12 image that boots systemd with Docker installed (about 100 s); removed afterwards."""
    if _docker("info").returncode != 0:
        pytest.fail("No Docker engine answers. `make test` starts one; run the tests through it.")
    created = _docker("image", "inspect", SWARM_IMAGE).returncode != 0
    if created:
        stamp = 'mkdir -p "$1/var/lib/apt/periodic" && touch "$1/var/lib/apt/periodic/update-success-stamp"'
        pipeline = (
            f"set -o pipefail; mmdebstrap --quiet --variant=apt --skip=cleanup/apt/lists --include={SWARM_PACKAGES} "
            f"--customize-hook='{stamp}' bookworm - {MIRROR} | docker import --change 'CMD [\"/sbin/init\"]' "
            f"--change 'ENV container=docker' - {SWARM_IMAGE}"
        )
        subprocess.run(["bash", "-c", pipeline], check=True, timeout=900)
    try:
        yield SWARM_IMAGE
    finally:
        if created:
            _docker("image", "rm", SWARM_IMAGE)


def _free_test_subnet() -> str:
    """A /24 under 10.231.0.0/16 that no route of this machine and no Docker network uses."""
    used = list(host_routes())
    for name in _docker("network", "ls", "--format", "{{.Name}}").stdout.split():
        inspected = _docker("network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", name)
        used += [ipaddress.IPv4Network(net, strict=False) for net in inspected.stdout.split() if ":" not in net]
    candidates = list(ipaddress.IPv4Network("10.231.0.0/16").subnets(new_prefix=24))
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(net) for net in used):
            return str(subnet)
    pytest.fail("no free /24 under 10.231.0.0/16 for the swarm scenario's network")


@pytest.fixture
def old_release(tmp_path: Path) -> Path:
    """OLD_REVISION of this repository, from its git history (CI clones it whole)."""
    target = tmp_path / "old"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", OLD_REVISION],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.fail(f"The upgrade test installs {OLD_REVISION} from git history, which this checkout lacks "
                    f"(a shallow clone? `git fetch --unshallow`): {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _copy_tree(target: Path) -> None:
    """A snapshot of the working tree, so that edits made meanwhile cannot fail the idempotence run."""
    shutil.copytree(REPO, target, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "state", "__pycache__", "*.egg-info", ".cache", "test-artifacts",
        ".pytest_cache", ".mypy_cache", ".ruff_cache"))


def _molecule(args: list[str], cwd: Path, env: dict[str, str], tmp_path: Path, instances: list[str],
              networks: tuple[str, ...] = ()) -> tuple[str, int]:
    """``molecule *args`` in ``cwd`` with its output timestamped in a log; the stage timings printed.
    Checks the machine's cgroups before, and removes the instances and networks afterwards."""
    _ensure_systemd_hierarchy()
    assert not _unmounted_hierarchies(), (
        f"cgroup hierarchies mounted nowhere before the run (left by an older run?): {_unmounted_hierarchies()}")
    started = time.monotonic()
    log = tmp_path / "molecule.log"
    try:
        with _cgroup2_cleanup(), log.open("w") as output:
            process = subprocess.Popen([str(VENV_BIN / "molecule"), *args], cwd=cwd, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert process.stdout is not None
            watchdog = threading.Timer(MOLECULE_TIMEOUT, process.kill)
            watchdog.start()
            try:
                for line in process.stdout:  # timestamped, for the stage timings printed below
                    output.write(f"{time.monotonic() - started:7.1f} {line}")
                returncode = process.wait(timeout=60)
            finally:
                watchdog.cancel()
    finally:
        for instance in instances:
            _docker("rm", "-f", instance)
        for network in networks:
            if _docker("network", "inspect", network).returncode == 0:
                _docker("network", "rm", network)
    text = log.read_text()
    print("\n".join(line for line in text.splitlines()
                    if "Executed" in line or "Starting" in line))
    print(f"molecule {' '.join(args)}: {time.monotonic() - started:.0f} s")
    return text, returncode


def test_molecule_upgrade_idempotence_spawn_backup_restore(systemd_image: str, old_release: Path,
                                                            tmp_path: Path) -> None:
    source = tmp_path / "source"
    _copy_tree(source)
    instance = f"titan-molecule-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               NO_COLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0",
               # Unique per run, so two runs on one machine never share a container or molecule's state.
               TITAN_MOLECULE_INSTANCE=instance, MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "molecule"),
               TITAN_MOLECULE_OLD_SOURCE=str(old_release))
    # Free ports for everything the test host binds (host networking), so runs never collide.
    for name in ("HTTPS", "PROXY", "HUB", "PROXY_API", "GATEWAY_API", "GATEWAY_PROXY", "GATEWAY_SCHEDULER",
                 "AUTOSAVE"):
        env[f"TITAN_MOLECULE_{name}_PORT"] = str(free_port())
    text, returncode = _molecule(["test"], source / "ansible", env, tmp_path, instances=[instance])
    assert returncode == 0, text[-20000:]
    assert "idempotence: Executed: Successful" in text.replace("➜ ", ""), text[-5000:]

    lingering = _repair_hierarchies()
    assert not lingering, f"the run left cgroup hierarchies mounted nowhere on this machine: {lingering}"
    memory = _memory_reported()
    assert memory and not memory.startswith("0B"), f"docker stats reports {memory!r} after the run"


def test_molecule_swarm_manager_and_gpu_worker_labels_resources_firewall_idempotence(
        swarm_image: str, tmp_path: Path) -> None:
    """ansible/molecule/swarm: swarm.yml on a manager (the hub host) and a worker, each a systemd
    container with its own Docker engine on a network of the test's subnet; the worker is a fake GPU
    node fed the real H100 capture. Converge, idempotence (nothing changed), verify: one swarm of two
    Ready nodes, the manager drained, the worker labelled titan.pool=gpu and announcing h100=<uuid>
    to Swarm, every daemon.json as it should be, the NVIDIA runtime's swarm-resource, both firewall
    rules exactly once and at work (the hub host connects to a published port, another source does not)."""
    source = tmp_path / "source"
    _copy_tree(source)
    instance = f"titan-swarm-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               NO_COLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0",
               TITAN_MOLECULE_INSTANCE=instance, MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "molecule"),
               TITAN_MOLECULE_SWARM_SUBNET=_free_test_subnet())
    text, returncode = _molecule(["test", "--scenario-name", "swarm"], source / "ansible", env, tmp_path,
                                 instances=[f"{instance}-m", f"{instance}-w"], networks=(instance,))
    assert returncode == 0, text[-20000:]
    flat = text.replace("➜ ", "")
    assert "idempotence: Executed: Successful" in flat and "verify: Executed: Successful" in flat, text[-5000:]

    lingering = _repair_hierarchies()
    assert not lingering, f"the run left cgroup hierarchies mounted nowhere on this machine: {lingering}"
    memory = _memory_reported()
    assert memory and not memory.startswith("0B"), f"docker stats reports {memory!r} after the run"
