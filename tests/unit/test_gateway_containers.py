"""Container builders and the servers' environment: names, labels, limits, TLS files, DASK_GATEWAY__*."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from unittest import mock

import dask.config
import pytest
from dask_gateway.utils import format_template

from core.engine.docker import create_arguments
from core.engine.spec import ContainerSpec, Mount
from gateway.containers import container_labels, container_name
from gateway.tls import TLS_CERT, TLS_DIR, TLS_KEY, parse_user, write_tls_files
from spawner.dask_env import dask_environment

GIB = 1024**3
LINK = {"address": "http://127.0.0.1:8011/services/dask-gateway", "proxy_address": "gateway://127.0.0.1:8012",
        "public_address": "https://titan.example/services/dask-gateway",
        "control_url": "http://127.0.0.1:8010/api/titan/v1/server-stopped", "control_token": "s3cret"}


def test_names_carry_deployment_owner_cluster_and_role() -> None:
    cluster, worker = "a" * 32, "b" * 32
    assert container_name("titan", "Alice.B", cluster, "scheduler") == f"titan-dask-alice-2eb-{'a' * 12}-scheduler"
    assert container_name("titan", "bob", cluster, "worker", worker) == f"titan-dask-bob-{'a' * 12}-worker-{'b' * 12}"


def test_labels_name_cluster_owner_and_server_but_not_the_server_label() -> None:
    labels = container_labels("titan", "alice", "gpu", "c1", "worker", "w1")
    assert labels == {"titan.deployment": "titan", "titan.owner": "alice", "titan.dask.server": "gpu",
                      "titan.dask.cluster": "c1", "titan.dask.role": "worker", "titan.dask.worker": "w1"}
    # titan.server marks a user's server container; the spawner and the gateway look servers up by it.
    assert "titan.server" not in labels
    assert "titan.dask.worker" not in container_labels("titan", "alice", "", "c1", "scheduler")


def test_container_spec_limits_memory_without_swap_and_cpu_as_a_quota() -> None:
    spec = ContainerSpec(name="n", image="titan/minimal:1", command=("dask", "worker"), environment={"A": "1"},
                         labels={"l": "v"}, cores=0.5, memory=GIB, user="1000:1000",
                         network="titan-user-alice", processes=512)
    create, host = create_arguments(spec)
    assert host["network_mode"] == "titan-user-alice"
    assert host["pids_limit"] == 512 and host["cap_drop"] == ["ALL"]
    assert host["security_opt"] == ["no-new-privileges:true"]
    assert host["mem_limit"] == host["memswap_limit"] == GIB
    assert host["nano_cpus"] == 500_000_000
    assert "binds" not in host
    assert create["user"] == "1000:1000" and create["command"] == ["dask", "worker"]
    assert "ports" not in create and "host_config" not in create


def test_the_tls_directory_is_bind_mounted_read_only() -> None:
    spec = ContainerSpec(name="n", image="i", memory=GIB, user="1000:1000", network="n",
                         mounts=(Mount("/state/dask-tls/c1", TLS_DIR, read_only=True),))
    create, host = create_arguments(spec)
    assert host["binds"] == {"/state/dask-tls/c1": {"bind": TLS_DIR, "mode": "ro"}}
    assert "/state/dask-tls/c1" not in str(create)  # neither in the environment nor the labels


def test_parse_user() -> None:
    assert parse_user("1000:100") == (1000, 100)
    assert parse_user("1000") == (1000, 1000)


def _owner(uid: int) -> tuple[int, int]:
    """The owner the files can get here: 1000 as root, else the test's own user."""
    return (uid, uid) if os.geteuid() == 0 else (os.geteuid(), os.getegid())


def test_tls_files_are_private_to_the_container_user(tmp_path: Path) -> None:
    uid, gid = _owner(1000)
    directory = write_tls_files(tmp_path / "c1", b"CERT", b"KEY", uid, gid)
    info = os.stat(directory)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o700, uid, gid)
    assert sorted(p.name for p in directory.iterdir()) == sorted([os.path.basename(TLS_CERT),
                                                                  os.path.basename(TLS_KEY)])
    for path, content in ((TLS_CERT, b"CERT"), (TLS_KEY, b"KEY")):
        file = directory / os.path.basename(path)
        info = os.stat(file)
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o600, uid, gid)
        assert file.read_bytes() == content


def test_tls_files_are_rewritten_only_when_they_differ(tmp_path: Path) -> None:
    uid, gid = _owner(1000)
    directory = write_tls_files(tmp_path / "c1", b"CERT", b"KEY", uid, gid)
    key = directory / os.path.basename(TLS_KEY)
    before = os.stat(key).st_ino
    write_tls_files(directory, b"CERT", b"KEY", uid, gid)
    assert os.stat(key).st_ino == before  # unchanged: left alone
    key.chmod(0o644)
    write_tls_files(directory, b"CERT", b"KEY2", uid, gid)
    assert key.read_bytes() == b"KEY2" and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == ["dask.crt", "dask.pem"]  # no partial file left


def test_tls_files_refuse_a_symlink_in_place_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "c1").symlink_to(tmp_path / "elsewhere")
    uid, gid = _owner(1000)
    with pytest.raises(RuntimeError, match="not a directory"):
        write_tls_files(tmp_path / "c1", b"CERT", b"KEY", uid, gid)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def _client_view(environment: dict[str, str], key: str) -> object:
    """``key`` of the dask config as the dask-gateway client in the server reads it."""
    with mock.patch.dict(os.environ, environment, clear=True):
        value = dask.config.get(key, config=dask.config.collect_env(environment))
        if isinstance(value, dict):
            return {k: format_template(v) for k, v in value.items()}
        return format_template(value)


@pytest.mark.parametrize("server", ["", "gpu-box", "1", "{JUPYTERHUB_API_TOKEN}", "it's"])
def test_server_environment_makes_gateway_take_no_arguments(server: str) -> None:
    environment = dask_environment(LINK, server)
    assert _client_view(environment, "gateway.address") == LINK["address"]
    assert _client_view(environment, "gateway.proxy-address") == LINK["proxy_address"]
    assert _client_view(environment, "gateway.public-address") == LINK["public_address"]
    assert _client_view(environment, "gateway.auth.type") == "jupyterhub"
    # The server name reaches the gateway as the default `server` option, exactly.
    assert _client_view(environment, "gateway.cluster.options") == {"server": server}


def test_server_environment_keeps_the_control_token_out() -> None:
    environment = dask_environment(LINK, "")
    assert not any("s3cret" in value for value in environment.values())
    assert set(environment) == {"DASK_GATEWAY__ADDRESS", "DASK_GATEWAY__PUBLIC_ADDRESS", "DASK_GATEWAY__PROXY_ADDRESS",
                                "DASK_GATEWAY__AUTH__TYPE", "DASK_GATEWAY__CLUSTER__OPTIONS__SERVER"}


def test_no_gateway_no_variables() -> None:
    assert dask_environment({}, "x") == {}
