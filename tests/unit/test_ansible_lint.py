"""The Ansible part (ansible/): ansible-lint's production profile, and every role variable
prefixed with its role's name and documented in both defaults/main.yml and meta/argument_specs.yml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
ROLES = sorted(p for p in (ANSIBLE / "roles").iterdir() if p.is_dir())
VENV_BIN = Path(sys.executable).parent


def test_roles_exist() -> None:
    names = {role.name for role in ROLES}
    assert {"titan_docker", "titan_images", "titan", "titan_tls", "titan_backup", "titan_restore"} <= names


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_variables_are_prefixed_and_documented(role: Path) -> None:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    for name in defaults:
        assert name.startswith(role.name + "_"), f"{role.name}: {name} is not prefixed with the role name"
    assert set(defaults) == set(options), f"{role.name}: defaults and argument_specs differ"
    for name, option in options.items():
        assert option.get("description"), f"{role.name}: {name} has no description"


@pytest.mark.slow
def test_ansible_lint_production_profile() -> None:
    lint = VENV_BIN / "ansible-lint"
    if not lint.exists() and shutil.which("ansible-lint") is None:
        pytest.fail("ansible-lint is not installed: pip install -e '.[test]'")
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")
    result = subprocess.run(
        [str(lint) if lint.exists() else "ansible-lint", "--nocolor"],
        cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output, output
