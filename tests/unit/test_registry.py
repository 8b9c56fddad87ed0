"""core.registry (the names a service uses, the registry's config, what a registry answers) and
core.image_check's reading of a check's tasks. The HTTP looks run against a small registry double on
loopback that answers the two requests of the registry API v2 that Titan makes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.image_check import node_report
from core.registry import (
    RegistryError,
    check_registry,
    pull_diagnosis,
    registry_answers,
    registry_config,
    registry_digest,
    registry_has,
    registry_image,
    split_registry,
)
from core.settings import SettingsError, load_settings


def test_a_service_names_the_image_in_the_registry_or_the_plain_tag_without_one() -> None:
    assert registry_image("titan/minimal:3f2a9c0d1e4b", "") == "titan/minimal:3f2a9c0d1e4b"
    assert registry_image("titan/minimal:3f2a9c0d1e4b", "10.232.0.11:5000") == \
        "10.232.0.11:5000/titan/minimal:3f2a9c0d1e4b"
    assert registry_image("10.232.0.11:5000/titan/minimal:1", "10.232.0.11:5000") == "10.232.0.11:5000/titan/minimal:1"
    assert registry_image("titan/base:1", "registry.example.org") == "registry.example.org/titan/base:1"
    with pytest.raises(RegistryError, match="Docker Hub namespace"):
        registry_image("titan/base:1", "manager")


@pytest.mark.parametrize(("address", "problem"), [
    ("http://10.232.0.11:5000", "not a registry address"),
    ("10.232.0.11:5000/titan", "not a registry address"),
    ("10.232.0.11:99999", "out of range"),
    ("manager", "Docker Hub namespace"),
    ("-x:5000", "not a registry address"),
])
def test_an_address_docker_would_not_read_as_a_registry_is_refused(address: str, problem: str) -> None:
    with pytest.raises(RegistryError, match=problem):
        check_registry(address)


def test_registry_addresses_docker_reads_as_registries_are_kept() -> None:
    for address in ("", "10.232.0.11:5000", "manager:5000", "localhost", "registry.example.org", "reg.lan:443"):
        assert check_registry(address) == address


def test_the_image_names_registry_is_read_as_docker_reads_it() -> None:
    assert split_registry("10.232.0.11:5000/titan/base:1") == ("10.232.0.11:5000", "titan/base:1")
    assert split_registry("localhost/titan/base:1") == ("localhost", "titan/base:1")
    assert split_registry("titan/base:1") == ("", "titan/base:1")
    assert split_registry("base:1") == ("", "base:1")


def test_the_registry_config_is_what_docker_registry_reads() -> None:
    config = yaml.safe_load(registry_config("10.232.0.11:5000", "/var/lib/docker-registry"))
    assert config["version"] == 0.1
    assert config["http"]["addr"] == "10.232.0.11:5000"
    assert config["storage"]["filesystem"] == {"rootdirectory": "/var/lib/docker-registry"}
    assert "auth" not in config  # plain HTTP on a private address: the engines trust it (docs/swarm-registry.md)


def test_titan_yaml_takes_a_registry_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    path = tmp_path / "titan.yaml"
    assert load_settings(tmp_path / "absent.yaml", environ={}).swarm["registry"] == ""
    path.write_text("swarm:\n  registry: 10.232.0.11:5000\n")
    assert load_settings(path, environ={}).swarm["registry"] == "10.232.0.11:5000"
    path.write_text("swarm:\n  registry: http://10.232.0.11:5000\n")
    with pytest.raises(SettingsError, match="swarm.registry"):
        load_settings(path, environ={})
    path.write_text("swarm:\n  registry: manager\n")
    with pytest.raises(SettingsError, match="at swarm.registry: 'manager': Docker would read"):
        load_settings(path, environ={})


class _Registry(http.server.BaseHTTPRequestHandler):
    """GET /v2/ and HEAD /v2/<name>/manifests/<tag> of a registry holding titan/base:1 only."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/v2/" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        wanted = self.path == "/v2/titan/base/manifests/1" and "manifest.v2+json" in self.headers.get("Accept", "")
        self.send_response(200 if wanted else 404)
        if wanted:
            self.send_header("Docker-Content-Digest", "sha256:" + "ab" * 32)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _LoginRegistry(_Registry):
    """A registry that asks for a login for everything (htpasswd)."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET


@contextmanager
def _serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def registry() -> Iterator[str]:
    with _serving(_Registry) as address:
        yield address


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_what_a_registry_holds_is_asked_over_its_api(registry: str) -> None:
    assert registry_answers(registry)
    assert registry_has(registry, "titan/base:1")
    assert not registry_has(registry, "titan/base:2")
    assert not registry_answers(_closed_port(), timeout=1)
    with pytest.raises(ValueError, match="not repository:tag"):
        registry_has(registry, "titan/base")
    assert registry_digest(registry, "titan/base:1") == "sha256:" + "ab" * 32
    assert registry_digest(registry, "titan/base:2") == ""
    assert registry_digest(_closed_port(), "titan/base:1", timeout=1) == ""


def test_the_diagnosis_of_a_missing_image_says_what_to_do(registry: str) -> None:
    assert "push it: scripts/titan.sh images" in pull_diagnosis(f"{registry}/titan/base:2")
    assert "does not trust it" in pull_diagnosis(f"{registry}/titan/base:1")
    assert "does not trust it" in pull_diagnosis(f"{registry}/titan/base:1@sha256:" + "ab" * 32)  # as pinned
    assert "does not answer" in pull_diagnosis(f"{_closed_port()}/titan/base:1", timeout=1)
    assert "swarm.registry is empty" in pull_diagnosis("titan/base:1")
    with _serving(_LoginRegistry) as login:
        assert registry_answers(login) and not registry_has(login, "titan/base:1")
        assert "asks for a login" in pull_diagnosis(f"{login}/titan/base:1")


def _node(node_id: str, state: str = "ready", availability: str = "active") -> dict[str, Any]:
    return {"ID": node_id, "Description": {"Hostname": f"host-{node_id}"}, "Status": {"State": state},
            "Spec": {"Availability": availability}}


def _task(node_id: str, state: str, err: str = "", created: str = "2026-12-04T10:00:00Z") -> dict[str, Any]:
    return {"NodeID": node_id, "CreatedAt": created, "Status": {"State": state, "Err": err, "Message": state}}


def test_the_check_reports_each_active_node_and_what_stopped_it() -> None:
    nodes = [_node("a"), _node("b"), _node("c"), _node("d", availability="drain"), _node("e", state="down"),
             _node("f")]
    tasks = [_task("a", "complete"), _task("b", "rejected", "No such image: r:5000/titan/base:1"),
             _task("c", "preparing"), _task("f", "rejected", "old", "2026-12-04T09:00:00Z"), _task("f", "complete")]
    assert node_report(nodes, tasks) == {
        "host-a": "", "host-b": "No such image: r:5000/titan/base:1", "host-c": "still pulling (preparing)",
        "host-f": "",
    }
    assert node_report([_node("a")], []) == {"host-a": "no task yet"}


def test_the_build_refuses_a_registry_docker_would_not_read_before_building_anything(
        capsys: pytest.CaptureFixture[str]) -> None:
    from images.build import main

    assert main(["--registry", "http://10.232.0.11:5000", "base"]) == 2
    assert "not a registry address" in capsys.readouterr().out


def test_the_build_has_the_nodes_pull_only_on_a_swarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from images.build import configured_manager

    path = tmp_path / "titan.yaml"
    monkeypatch.setenv("TITAN_SETTINGS", str(path))
    path.write_text("swarm:\n  registry: 10.232.0.11:5000\n")
    assert configured_manager() is None  # one host: a registry, no nodes to warm
    path.write_text("engine: swarm\nswarm:\n  registry: 10.232.0.11:5000\n  hub_address: 10.232.0.10\n"
                    "  manager: tcp://10.232.0.11:2375\n")
    assert configured_manager() == "tcp://10.232.0.11:2375"
    path.write_text("engine: swarm\nswarm:\n  registry: 10.232.0.11:5000\n  hub_address: 10.232.0.10\n")
    assert configured_manager() == ""  # the hub host is the manager
