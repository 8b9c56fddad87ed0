"""Every package of the repository reaches where it runs: the wheel (pyproject) and the Ansible copy."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests"}
NOT_IN_THE_WHEEL = {"bench"}  # run from the repository (python -m bench.spawn)


def packages() -> set[str]:
    return {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_SHIPPED


def test_every_package_is_installed_by_pyproject() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert packages() - NOT_IN_THE_WHEEL <= {pattern.rstrip("*") for pattern in include}


def test_every_package_is_copied_by_ansible() -> None:
    defaults = yaml.safe_load((ROOT / "ansible" / "roles" / "titan" / "defaults" / "main.yml").read_text())
    assert packages() <= set(defaults["titan_source_paths"])
