"""Homes on shared storage (core.homes, titan.yaml swarm.homes_root): the home directory made on the
hub host, the server binding it, the Titan service reading it, the setting. Across real nodes:
tests/integration/test_swarm_homes.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from traitlets.config import Config

from core.capacity import HostCapacity
from core.homes import HOMES_MARKER, HomesRootMissing, ensure_home, home_directory
from core.settings import SettingsError, load_settings
from service.configure import configure
from service.dockerhost import DockerHost
from spawner.container import build_container_settings
from spawner.options import resolve_selection
from tests.unit.shipped import shipped_profiles

GIB = 1024**3
TEMPLATE = "t-home-{username}"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to uid 1000 needs root")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A homes root as the admin prepares it on the shared storage: with its marker."""
    (tmp_path / HOMES_MARKER).touch()
    return tmp_path


@needs_root
def test_a_home_is_made_once_owned_by_jovyan_and_private(root: Path) -> None:
    home = ensure_home(root, TEMPLATE, "Alice.B")
    assert home == root / "t-home-alice-2eb" == home_directory(root, TEMPLATE, "Alice.B")
    info = home.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1000, 1000, 0o700)
    (home / "notes.txt").write_text("kept")
    assert ensure_home(str(root), TEMPLATE, "alice.b") == home  # an existing home is kept as it is
    assert (home / "notes.txt").read_text() == "kept"
    assert sorted(p.name for p in root.iterdir()) == [HOMES_MARKER, "t-home-alice-2eb"]  # no temporary name


@needs_root
def test_an_existing_home_of_another_owner_gets_jovyan_and_only_it(root: Path) -> None:
    home = root / "t-home-bob"
    home.mkdir()
    (home / "inside").write_text("x")
    assert ensure_home(root, TEMPLATE, "bob") == home
    assert home.stat().st_uid == 1000 and (home / "inside").stat().st_uid == 0  # the directory only


@needs_root
def test_two_starts_at_once_make_one_home(root: Path) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_home(root, TEMPLATE, "carol")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == {root / "t-home-carol"}
    assert sorted(p.name for p in root.iterdir()) == [HOMES_MARKER, "t-home-carol"]
    assert (root / "t-home-carol").stat().st_uid == 1000


def test_no_home_is_made_where_the_storage_is_not_mounted(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    with pytest.raises(HomesRootMissing, match="is the storage mounted"):
        ensure_home(missing, TEMPLATE, "alice")
    assert not missing.exists()
    bare = tmp_path / "bare-mount-point"  # the mount point without the storage on it: no marker
    bare.mkdir()
    with pytest.raises(HomesRootMissing, match=f"not the shared storage \\(no {HOMES_MARKER} there\\)"):
        ensure_home(bare, TEMPLATE, "alice")
    assert list(bare.iterdir()) == []
    with pytest.raises(ValueError, match="absolute"):
        ensure_home("relative/homes", TEMPLATE, "alice")


def test_something_else_in_a_homes_place_is_refused(root: Path) -> None:
    (root / "t-home-alice").write_text("not a directory")
    with pytest.raises(OSError, match="is not a directory"):
        ensure_home(root, TEMPLATE, "alice")


def test_a_server_binds_its_home_directory_when_a_root_is_set() -> None:
    host = HostCapacity(cpus=64, memory=1024 * GIB, gpus_total={}, gpus_free={})
    selection = resolve_selection(shipped_profiles(), {"profile": "small"}, "alice", [], host)
    volume = build_container_settings(selection, "i", "alice", "", "titan", TEMPLATE, network="n")
    bound = build_container_settings(selection, "i", "alice", "", "titan", TEMPLATE, network="n",
                                     homes_root="/srv/titan/homes")
    assert volume.volumes == {"t-home-alice": {"bind": "/home/jovyan", "mode": "rw"}}
    assert bound.volumes == {"/srv/titan/homes/t-home-alice": {"bind": "/home/jovyan", "mode": "rw"}}


def test_the_service_reads_homes_under_the_root_without_an_engine(tmp_path: Path) -> None:
    host = DockerHost(home_volume_template=TEMPLATE, homes_root=str(tmp_path))
    with pytest.raises(LookupError, match="does not exist yet"):
        host.volume_path("alice")
    (tmp_path / "t-home-alice").mkdir()
    assert host.volume_path("alice") == tmp_path / "t-home-alice"
    assert host._client is None  # no Docker engine was asked


def test_homes_root_is_a_swarm_setting(tmp_path: Path) -> None:
    path = tmp_path / "titan.yaml"
    assert load_settings(path, environ={}).swarm["homes_root"] == ""
    path.write_text("engine: swarm\nswarm: {homes_root: /srv/titan/homes, hub_address: 10.1.0.254}\n")
    assert load_settings(path, environ={}).swarm["homes_root"] == "/srv/titan/homes"
    config = Config()
    configure(config, load_settings(path, environ={"TITAN_STATE_DIR": str(tmp_path)}), "10.213.0.1")
    assert config.DockerHost.homes_root == "/srv/titan/homes"  # the service reads homes where servers bind them
    path.write_text("swarm: {homes_root: /srv/titan/homes}\n")
    with pytest.raises(SettingsError, match="swarm.homes_root: homes on shared storage need engine: swarm"):
        load_settings(path, environ={})
    path.write_text("engine: swarm\nswarm: {homes_root: srv/homes, hub_address: 10.1.0.254}\n")
    with pytest.raises(SettingsError, match="at swarm.homes_root"):
        load_settings(path, environ={})
