"""The set-up script's contract for people who run it wrongly: one clear message, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
@pytest.mark.parametrize("command", ["up", "test"])
def test_not_root_gets_the_exact_command(command: str, tmp_path: Path) -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is on every Debian machine"
    result = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(REPO / "scripts" / "titan.sh"),
         command],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TITAN_STATE_DIR": str(tmp_path / "state")},
    )
    assert result.returncode == 1
    assert f"Run: sudo make {command}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_command_prints_usage() -> None:
    result = subprocess.run(["bash", str(REPO / "scripts" / "titan.sh"), "launch"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "usage:" in result.stderr
