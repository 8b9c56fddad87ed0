"""Home volumes are named after the deployment; an install from before keeps its users' data.
Real volumes in the real engine; the hub database is a real sqlite file with JupyterHub's users table."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from titan.homes import LEGACY_TEMPLATE, RECORD_FILE, resolve_home_template

pytestmark = [pytest.mark.docker]


def volume_text(volume: str, image: str, path: str = "notes.txt") -> str:
    return subprocess.run(["docker", "run", "--rm", "--network=none", "-v", f"{volume}:/home/jovyan", image, "cat",
                           f"/home/jovyan/{path}"], capture_output=True, text=True, check=False).stdout


@pytest.fixture
def volumes() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    subprocess.run(["docker", "volume", "rm", "-f", *made], capture_output=True, check=False)


def hub_database(state: Path, users: list[str]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(state / "jupyterhub.sqlite") as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(255) UNIQUE)")
        connection.executemany("INSERT INTO users (name) VALUES (?)", [(u,) for u in users])


def test_a_new_install_names_homes_after_its_deployment(tmp_path: Path, built_images: dict[str, str]) -> None:
    template = resolve_home_template(tmp_path, "staging", "", lambda: built_images["minimal"])
    assert template == "staging-home-{username}"
    assert (tmp_path / RECORD_FILE).read_text().strip() == template
    # The default deployment's homes keep the name they always had.
    assert resolve_home_template(tmp_path / "d", "titan", "", lambda: built_images["minimal"]) == LEGACY_TEMPLATE
    # An explicit template wins.
    assert resolve_home_template(tmp_path / "e", "x", "h-{username}", lambda: built_images["minimal"]) == "h-{username}"


def test_an_existing_install_gets_its_homes_copied_and_the_old_ones_kept(
        tmp_path: Path, built_images: dict[str, str], volumes: list[str]) -> None:
    deployment = "stg" + secrets.token_hex(3)
    user = "u" + secrets.token_hex(3)
    legacy = LEGACY_TEMPLATE.format(username=user)
    volumes += [legacy, f"{deployment}-home-{user}"]
    subprocess.run(["docker", "run", "--rm", "--network=none", "-v", f"{legacy}:/home/jovyan", built_images["minimal"],
                    "sh", "-c", "echo precious > /home/jovyan/notes.txt"], check=True, capture_output=True)
    hub_database(tmp_path, [user])
    template = resolve_home_template(tmp_path, deployment, "", lambda: built_images["minimal"])
    assert template == f"{deployment}-home-{{username}}"
    assert volume_text(f"{deployment}-home-{user}", built_images["minimal"]).strip() == "precious"
    assert volume_text(legacy, built_images["minimal"]).strip() == "precious"  # the old one is left alone
    home = f"{deployment}-home-{user}:/home/jovyan"
    owner_run = subprocess.run(["docker", "run", "--rm", "--network=none", "-v", home, built_images["minimal"], "stat",
                            "-c", "%u", "/home/jovyan/notes.txt"], capture_output=True, text=True, check=True)
    owner = owner_run.stdout.strip()
    assert owner == "1000"  # owners kept: jovyan can still write it
    # The next start reads the record: no second copy over what the user changed since.
    subprocess.run(["docker", "run", "--rm", "--network=none", "-v", f"{deployment}-home-{user}:/home/jovyan",
                    built_images["minimal"], "sh", "-c", "echo changed > /home/jovyan/notes.txt"], check=True)
    assert resolve_home_template(tmp_path, deployment, "", lambda: built_images["minimal"]) == template
    assert volume_text(f"{deployment}-home-{user}", built_images["minimal"]).strip() == "changed"
    client = docker.from_env()
    try:
        assert {v.name for v in client.volumes.list()} >= {legacy, f"{deployment}-home-{user}"}
    finally:
        client.close()
