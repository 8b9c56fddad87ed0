"""The Ansible playbooks end to end: `molecule test` in ansible/ on a systemd Debian 12 container.

The scenario (ansible/molecule/default) converges site.yml, runs it again and fails if anything
changed (idempotence), then verifies: the units are active, the hub runs as the titan user and
answers /hub/api through the nginx TLS front, the admin token in the state directory works, and a
backup, a wipe of the state directory and the home volume, and a restore give back the user, her
group and a file in her home volume. The container's image is made here from Debian's packages
with mmdebstrap (no registry) and removed afterwards; the single-user images are loaded from this
machine's engine rather than built again inside (vfs storage there makes building slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from images.recipes import image_tag
from tests.helpers import free_port

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
VENV_BIN = Path(sys.executable).parent
IMAGE = "titan-molecule-debian12:latest"
INSTANCE = "titan-molecule-debian12"
MIRROR = os.environ.get("TITAN_DEBIAN_MIRROR", "http://deb.debian.org/debian")

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def systemd_image() -> Iterator[str]:
    """A Debian 12 image that boots systemd (about 30-45 s with mmdebstrap); removed afterwards."""
    if _docker("info").returncode != 0:
        pytest.fail("No Docker engine answers. `make test` starts one; run the tests through it.")
    if _docker("image", "inspect", image_tag("base")).returncode != 0:
        pytest.fail(f"{image_tag('base')} is not built; `make test` builds it (make images).")
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
        _docker("rm", "-f", INSTANCE)
        if created:
            _docker("image", "rm", IMAGE)


def test_molecule_converge_idempotence_verify(systemd_image: str, tmp_path: Path) -> None:
    # Deploy a snapshot of the tree, so that edits made meanwhile cannot fail the idempotence run.
    source = tmp_path / "source"
    shutil.copytree(ANSIBLE.parent, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "state", "__pycache__", "*.egg-info", ".cache", "test-artifacts"))
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               NO_COLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
    # Free ports for everything the test host binds (host networking), so runs never collide.
    for name in ("HTTPS", "PROXY", "HUB", "PROXY_API", "GATEWAY_API", "GATEWAY_PROXY", "GATEWAY_SCHEDULER",
                 "AUTOSAVE"):
        env[f"TITAN_MOLECULE_{name}_PORT"] = str(free_port())
    started = time.monotonic()
    result = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "--", "-e", f"titan_source_dir={source}"], cwd=ANSIBLE, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500, check=False,
    )
    print("\n".join(line for line in result.stdout.splitlines() if "Executed" in line))
    print(f"molecule test: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-20000:]
    assert "idempotence: Executed: Successful" in result.stdout.replace("➜ ", ""), result.stdout[-5000:]
