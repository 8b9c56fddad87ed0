"""SwarmEngine's pure halves (core.engine.swarm_spec: a ContainerSpec to a service, Swarm's task
records to TaskStatus), its error mapping, the engine factory and titan.yaml's ``engine:``.
The engine itself runs against a real swarm in tests/integration/test_swarm_engine.py."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

from core.engine.base import ContainerGone, EngineError, ImageMissing, MountMissing, NetworkGone, Unplaceable
from core.engine.docker import DockerEngine
from core.engine.factory import build_engine
from core.engine.spec import ContainerSpec, Hardening, Mount
from core.engine.swarm import SwarmEngine, swarm_error
from core.engine.swarm_spec import TaskStatus, container_state, latest_task, service_arguments, task_status
from core.network import NetworkPlan, ensure_user_network
from core.settings import SettingsError, load_settings

GIB = 1024**3


def test_a_spec_becomes_a_one_replica_service_created_with_no_replica() -> None:
    spec = ContainerSpec(name="t-alice", image="titan/minimal:1", command=("jupyterhub-singleuser",),
                         environment={"A": "1"}, labels={"titan.owner": "alice"}, cores=1.5, memory=2 * GIB,
                         processes=256, user="1000:100", network="t-user-alice",
                         mounts=(Mount("t-home-alice", "/home/jovyan", kind="volume"),
                                 Mount("/srv/shared", "/shared", read_only=True)),
                         pool="big", resources={"gpu": 1})
    arguments = service_arguments(spec)
    template = arguments.pop("task_template")
    assert arguments == {"name": "t-alice", "labels": {"titan.owner": "alice"}, "mode": {"replicated": {"Replicas": 0}},
                         "endpoint_spec": {"Mode": "dnsrr"}, "networks": ["t-user-alice"]}
    container = template["ContainerSpec"]
    assert (container["Image"], container["Command"], container["Env"], container["User"]) == (
        "titan/minimal:1", ["jupyterhub-singleuser"], ["A=1", "NVIDIA_VISIBLE_DEVICES=void"], "1000:100")
    assert container["Labels"] == {"titan.owner": "alice"}  # on the container too, not only the service
    assert (container["Init"], container["CapabilityDrop"]) == (True, ["ALL"])
    assert container["Mounts"] == [  # the named volume stays a volume (DockerSpawner's SwarmSpawner binds it)
        {"Target": "/home/jovyan", "Source": "t-home-alice", "Type": "volume", "ReadOnly": False},
        {"Target": "/shared", "Source": "/srv/shared", "Type": "bind", "ReadOnly": True}]
    limits = {"NanoCPUs": 1_500_000_000, "MemoryBytes": 2 * GIB}
    assert template["Resources"] == {
        "Limits": {**limits, "Pids": 256},
        "Reservations": {**limits, "GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}]}}
    assert template["Placement"] == {"Constraints": ["node.labels.titan.pool==big"]}
    assert template["RestartPolicy"]["Condition"] == "none"


def test_a_minimal_spec_keeps_the_image_and_asks_only_for_cpu() -> None:
    arguments = service_arguments(ContainerSpec(name="n", image="i", hardening=Hardening(cap_drop=())), replicas=1)
    template = arguments["task_template"]
    assert template["Resources"] == {"Limits": {"NanoCPUs": 1_000_000_000, "Pids": 4096},
                                     "Reservations": {"NanoCPUs": 1_000_000_000}}
    assert "Placement" not in template and "CapabilityDrop" not in template["ContainerSpec"]
    assert template["ContainerSpec"].get("Command") is None and arguments["networks"] is None
    assert arguments["mode"] == {"replicated": {"Replicas": 1}}


def test_published_ports_are_host_mode_on_the_given_or_a_picked_port() -> None:
    arguments = service_arguments(ContainerSpec(name="n", image="i", publish={8888: 0, 8787: 30001}))
    assert arguments["endpoint_spec"] == {"Mode": "dnsrr", "Ports": [
        {"Protocol": "tcp", "TargetPort": 8888, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 8787, "PublishMode": "host", "PublishedPort": 30001}]}
    task = task_status({**RUNNING, "Status": {**RUNNING["Status"], "PortStatus": {"Ports": [
        {"Protocol": "tcp", "TargetPort": 8888, "PublishedPort": 32768, "PublishMode": "host"}]}}})
    assert task.ports == {8888: 32768}


def test_gpus_pin_the_service_to_their_node_and_are_all_it_sees() -> None:
    arguments = service_arguments(ContainerSpec(name="n", image="i", gpus=("GPU-a", "GPU-b"), node="n2", pool="gpu",
                                                environment={"A": "1"}))
    template = arguments["task_template"]
    assert template["Placement"]["Constraints"] == ["node.labels.titan.pool==gpu", "node.id==n2"]
    assert template["ContainerSpec"]["Env"] == ["A=1", "NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b"]
    assert "GenericResources" not in (template["Resources"].get("Reservations") or {})


def test_swarm_gpus_come_from_the_nodes_and_are_picked_on_one_node_in_the_pool() -> None:
    from core.engine.swarm_gpus import gpu_counts, gpus_in_use, node_gpus, pick_gpus

    def node(node_id: str, units: list[str], pool: str = "", state: str = "ready") -> dict[str, Any]:
        return {"ID": node_id, "Status": {"State": state}, "Spec": {"Availability": "active",
                                                                    "Labels": {"titan.pool": pool} if pool else {}},
                "Description": {"Hostname": f"host-{node_id}", "Resources": {"GenericResources": [
                    {"NamedResourceSpec": {"Kind": u.split("=")[0], "Value": u.split("=")[1]}} for u in units]}}}

    nodes = node_gpus([node("n1", ["H100=a", "H100=b"]), node("n2", ["H100=c", "H100=d", "T4=e"], pool="big"),
                       node("n3", ["H100=f"], state="down")])
    assert [(n.node_id, dict(n.units)) for n in nodes] == [
        ("n1", {"H100": ("a", "b")}), ("n2", {"H100": ("c", "d"), "T4": ("e",)})]
    used = gpus_in_use([{"titan.gpus": "a"}, {"titan.gpus": "c,d"}, {"titan.owner": "x"}])
    assert used == {"a", "c", "d"}
    picked = pick_gpus(nodes, used, "H100", 1)
    assert picked is not None and (picked[0].node_id, picked[1]) == ("n1", ("b",))
    assert pick_gpus(nodes, used, "H100", 2) is None  # one free on each node: never split
    assert pick_gpus(nodes, used, "H100", 1, pool="big") is None
    big = pick_gpus(nodes, used, "T4", 1, pool="big")
    assert big is not None and big[1] == ("e",)
    assert gpu_counts(nodes, used) == ({"H100": 4, "T4": 1}, {"H100": 1, "T4": 1})


@pytest.mark.parametrize(("changes", "words"), [
    ({"gpus": ("GPU-1",)}, "GPUs by uuid need the node they are on"),
    ({"network": "container:abc"}, "network namespace"),
])
def test_what_a_service_cannot_carry_is_refused_with_the_reason(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(EngineError, match=words):
        service_arguments(ContainerSpec(name="n", image="i", **changes))


def test_the_docker_engine_refuses_generic_resources_before_calling_the_engine() -> None:
    def no_client() -> Any:
        raise AssertionError("no call expected")

    engine = DockerEngine(client_factory=no_client)
    with pytest.raises(EngineError, match="generic resources need the Swarm engine"):
        asyncio.run(engine.create(ContainerSpec(name="n", image="i", resources={"gpu": 1})))
    with pytest.raises(EngineError, match="published ports need the Swarm engine"):
        asyncio.run(engine.create(ContainerSpec(name="n", image="i", publish={8888: 0})))


PENDING: dict[str, Any] = {
    "ID": "t1", "CreatedAt": "2026-12-04T10:00:00.5Z", "DesiredState": "running", "NodeID": "",
    "Status": {"State": "pending", "Message": "pending task scheduling",
               "Err": "no suitable node (insufficient resources on 2 nodes)"}}
RUNNING: dict[str, Any] = {
    "ID": "t2", "CreatedAt": "2026-12-04T10:00:00.123456789Z", "DesiredState": "running", "NodeID": "n2",
    "Status": {"State": "running", "Message": "started", "ContainerStatus": {"ContainerID": "c2", "ExitCode": 0}},
    "GenericResources": [{"NamedResourceSpec": {"Kind": "gpu", "Value": "fake-b"}}]}
ENDED: dict[str, Any] = {
    "ID": "t0", "CreatedAt": "2026-12-04T10:00:01Z", "DesiredState": "shutdown", "NodeID": "n1",
    "Status": {"State": "failed", "Err": "task: non-zero exit (137)", "ContainerStatus": {"ExitCode": 137}}}


def test_task_records_become_task_statuses() -> None:
    pending = task_status(PENDING)
    assert pending.unplaceable and pending.node_id == "" and container_state(pending) == "created"
    assert pending.progress == ("waiting for a node with room for it: "
                                "no suitable node (insufficient resources on 2 nodes)")
    running = task_status(RUNNING)
    assert (running.state, running.node_id, running.container_id, running.exit_code) == ("running", "n2", "c2", None)
    assert running.assigned == {"gpu": ("fake-b",)} and not running.unplaceable
    assert (container_state(running), running.progress) == ("running", "running")
    ended = task_status(ENDED)
    assert (ended.exit_code, container_state(ended)) == (137, "exited")
    assert ended.progress == "failed: task: non-zero exit (137)"
    assert (pending.desired, ended.desired) == ("running", "shutdown")
    assert container_state(None) == "created"  # a service with no task yet: created, not started
    assert TaskStatus(state="preparing", message="preparing").progress == "preparing: preparing"


def test_the_latest_task_is_the_one_swarm_still_wants_then_the_newest() -> None:
    assert latest_task([]) is None
    # t0 is newer but Swarm wants it shut down: t2, the current one, wins
    assert latest_task([ENDED, RUNNING]) is RUNNING
    # between two current ones the later creation wins, whatever the length of their fractions
    assert latest_task([PENDING, RUNNING]) is PENDING


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("error", response=response, explanation=explanation)


@pytest.mark.parametrize(("status", "text", "kind", "words"), [
    (404, "service abc not found", ContainerGone, "service abc not found"),
    (404, "network t-user-x not found", NetworkGone, "network"),
    (503, "This node is not a swarm manager.", EngineError, "not a Swarm manager"),
    (500, "rpc error", EngineError, "rpc error"),
])
def test_docker_errors_become_named_errors(status: int, text: str, kind: type[EngineError], words: str) -> None:
    error = swarm_error(_api_error(status, text), "doing it")
    assert type(error) is kind and words in str(error) and str(error).startswith("doing it: ")


def test_a_name_taken_says_what_of_that_name_exists() -> None:
    error = swarm_error(_api_error(409, "rpc error: code = AlreadyExists"), "creating secret s-dask.crt")
    assert type(error) is EngineError and str(error) == "creating secret s-dask.crt: a secret of that name exists"


def test_the_factory_builds_the_named_engine_without_connecting() -> None:
    docker_engine = build_engine("docker")
    assert type(docker_engine) is DockerEngine and docker_engine._api is None
    swarm = build_engine("swarm", manager="unix:///nonexistent/docker.sock")
    assert isinstance(swarm, SwarmEngine) and swarm._api is None
    with pytest.raises(ValueError, match="unknown engine 'kubernetes'"):
        build_engine("kubernetes")


def test_titan_yaml_names_the_engine(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "absent.yaml", environ={}).engine == "docker"
    path = tmp_path / "titan.yaml"
    path.write_text("engine: swarm\nswarm: {hub_address: 10.1.0.254}\n")
    settings = load_settings(path, environ={})
    assert settings.engine == "swarm" and settings.swarm["hub_address"] == "10.1.0.254"
    assert settings.published_ports == (30000, 30999) and settings.swarm["manager"] == ""
    path.write_text("engine: swarm\n")
    with pytest.raises(SettingsError, match="at swarm.hub_address: engine: swarm needs the hub host's address"):
        load_settings(path, environ={})
    path.write_text("engine: swarm\nswarm: {hub_address: 10.1.0.254, published_ports: 31000-30000}\n")
    with pytest.raises(SettingsError, match="at swarm.published_ports: '31000-30000' is not a port range"):
        load_settings(path, environ={})
    path.write_text("swarm: {hub_address: somewhere}\n")
    with pytest.raises(SettingsError, match="at swarm.hub_address: 'somewhere' does not match"):
        load_settings(path, environ={})
    path.write_text("engine: kubernetes\n")
    with pytest.raises(SettingsError, match="at engine: 'kubernetes' is not one of"):
        load_settings(path, environ={})


def test_the_test_bed_picks_a_subnet_no_route_address_or_other_test_bed_uses() -> None:
    import shutil

    from tests.swarm.host import CANDIDATES, choose_subnet, used_networks

    if shutil.which("ip") is None:
        pytest.skip("no ip command (iproute2) here")
    used = used_networks()
    first = choose_subnet([])
    assert first in CANDIDATES and not any(first.overlaps(u) for u in used)
    second = choose_subnet([str(first)])  # another test bed holds the first
    assert second != first and not any(second.overlaps(u) for u in used)


def _node(node_id: str, cpus: float, memory: int, pool: str = "", gpus: tuple[str, ...] = (),
          state: str = "ready") -> dict[str, Any]:
    return {"ID": node_id, "Status": {"State": state, "Addr": f"10.232.0.{len(node_id)}"},
            "Spec": {"Availability": "active", "Labels": {"titan.pool": pool} if pool else {}},
            "Description": {"Hostname": node_id, "Resources": {
                "NanoCPUs": int(cpus * 1e9), "MemoryBytes": memory,
                "GenericResources": [{"NamedResourceSpec": {"Kind": "gpu", "Value": g}} for g in gpus]}}}


def _task(node_id: str, cpus: float, memory: int, gpus: int = 0, state: str = "running",
          desired: str = "running") -> dict[str, Any]:
    reservations: dict[str, Any] = {"NanoCPUs": int(cpus * 1e9), "MemoryBytes": memory}
    if gpus:
        reservations["GenericResources"] = [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": gpus}}]
    return {"NodeID": node_id, "DesiredState": desired, "Status": {"State": state},
            "Spec": {"Resources": {"Reservations": reservations}}}


def test_node_rooms_are_what_tasks_not_ended_leave_of_ready_active_nodes() -> None:
    from core.engine.swarm_nodes import node_rooms

    nodes = [_node("cpu1", 8, 32 * GIB), _node("gpu1", 16, 64 * GIB, pool="gpu", gpus=("GPU-a", "GPU-b")),
             _node("down1", 8, 32 * GIB, state="down")]
    tasks = [_task("cpu1", 2, 4 * GIB), _task("cpu1", 1, 1 * GIB, state="pending"),  # pending: holds nothing
             _task("gpu1", 4, 16 * GIB, gpus=1), _task("gpu1", 4, 16 * GIB, state="complete", desired="shutdown"),
             # Removed, its container still stopping: Swarm's scheduler counts it until it has ended (a
             # scheduler pinned there waited 2.4 s for it on the test bed).
             _task("cpu1", 1, 1 * GIB, desired="remove")]
    rooms = {room.node_id: room for room in node_rooms(nodes, tasks)}
    assert set(rooms) == {"cpu1", "gpu1", "down1"}
    assert (rooms["cpu1"].ready, rooms["gpu1"].ready, rooms["down1"].ready) == (True, True, False)
    assert (rooms["cpu1"].cpus, rooms["cpu1"].memory, rooms["cpu1"].resources) == (5, 27 * GIB, {})
    assert (rooms["gpu1"].cpus, rooms["gpu1"].memory, rooms["gpu1"].resources) == (12, 48 * GIB, {"gpu": 1})
    assert (rooms["gpu1"].pool, rooms["gpu1"].hostname) == ("gpu", "gpu1")


def test_no_room_reason_says_what_no_node_has() -> None:
    from core.engine.swarm_nodes import NodeRoom, no_room_reason

    rooms = [NodeRoom("a", "a", "10.232.0.1", "", cpus=6, memory=28 * GIB),
             NodeRoom("b", "b", "10.232.0.2", "gpu", cpus=12, memory=48 * GIB, resources={"gpu": 1})]
    assert no_room_reason(rooms, 4, 16 * GIB) == ""
    assert no_room_reason(rooms, 4, 16 * GIB, pool="gpu", resources={"gpu": 1}) == ""
    assert no_room_reason(rooms, 4, 16 * GIB, resources={"gpu": 2}) == "no node of the 2 nodes has 2 gpu free now"
    assert no_room_reason(rooms, 16, 64 * GIB) == "no node of the 2 nodes has 16 CPUs, 64 GiB of memory free now"
    assert no_room_reason(rooms, 8, 32 * GIB, pool="gpu") == ""
    assert no_room_reason(rooms, 1, GIB, pool="big") == "no node is in the pool 'big'"
    # a pool whose nodes are all down or drained: said so, and they are not counted elsewhere
    lost = [rooms[0], NodeRoom("b", "gpu-host", "10.232.0.2", "gpu", cpus=12, memory=48 * GIB, ready=False)]
    assert no_room_reason(lost, 1, GIB, pool="gpu") == \
        "no node of the pool 'gpu' is up now (gpu-host is down or drained)"
    assert no_room_reason(lost, 16, GIB) == "no node of the 1 nodes has 16 CPUs free now"
    assert no_room_reason(lost[1:], 1, GIB) == "no node is up now (gpu-host is down or drained)"
    # each alone fits somewhere, not together on one node
    assert no_room_reason(rooms, 8, 16 * GIB, resources={"gpu": 0}) == ""
    assert no_room_reason(rooms, 2, 40 * GIB, pool="", resources={"gpu": 1}) == ""
    assert no_room_reason(rooms[:1] + [NodeRoom("c", "c", "", "", 1, 64 * GIB)], 4, 40 * GIB) == \
        "no node of the 2 nodes has all of it at once free now"
    assert no_room_reason([], 1, GIB) == "no node is ready"


class ScriptedSwarm:
    """A stand-in for docker-py's APIClient with just what start and wait_running call, answering from a
    script: races of a real swarm that a test on one cannot bring about on purpose."""

    def __init__(self, tasks: list[list[dict[str, Any]]], stale_updates: int = 0) -> None:
        self.tasks_script, self.stale_updates, self.updates, self.forced = tasks, stale_updates, 0, 0

    def inspect_service(self, service: str, insert_defaults: Any = None) -> dict[str, Any]:
        return {"ID": service, "Version": {"Index": 7}, "Spec": {"TaskTemplate": {"ContainerSpec": {"Image": "i"}}}}

    def update_service(self, service: str, version: int, **changes: Any) -> dict[str, Any]:
        self.updates += 1
        self.forced = int((changes.get("task_template") or {}).get("ForceUpdate", 0))
        if self.updates <= self.stale_updates:
            raise _api_error(500, "rpc error: code = Unknown desc = update out of sequence")
        return {}

    def tasks(self, filters: Any = None) -> list[dict[str, Any]]:
        return self.tasks_script.pop(0) if len(self.tasks_script) > 1 else self.tasks_script[0]

    def inspect_node(self, node: str) -> dict[str, Any]:
        return {"ID": node, "Description": {"Hostname": f"host-{node}"}}

    def close(self) -> None:
        pass


def _engine(api: ScriptedSwarm) -> SwarmEngine:
    return SwarmEngine(client_factory=lambda: api, poll=0.01)


def test_a_start_retries_while_swarm_is_still_updating_the_new_service() -> None:
    api = ScriptedSwarm([[]], stale_updates=2)
    asyncio.run(_engine(api).start("s1"))
    assert api.updates == 3
    failing = ScriptedSwarm([[]], stale_updates=9)
    with pytest.raises(EngineError, match="update out of sequence"):
        asyncio.run(_engine(failing).start("s1"))


def test_waiting_after_a_restart_skips_the_task_that_was_scaled_away() -> None:
    old = {**ENDED, "DesiredState": "remove", "Status": {"State": "shutdown", "Message": "shutdown"}}
    new = {**RUNNING, "CreatedAt": "2026-12-04T10:00:05Z"}
    api = ScriptedSwarm([[old], [old], [old, {**new, "Status": {"State": "pending"}}], [old, new]])
    seen: list[TaskStatus] = []
    task = asyncio.run(_engine(api).wait_running("s1", within=5, progress=seen.append))
    assert task.container_id == "c2" and [t.state for t in seen] == ["pending", "running"]


def test_waiting_fails_at_once_when_the_task_ended_and_fast_when_no_node_fits() -> None:
    with pytest.raises(EngineError, match="the task failed on node host-n1: task: non-zero exit"):
        asyncio.run(_engine(ScriptedSwarm([[ENDED]])).wait_running("s1", within=5))
    begin = time.monotonic()
    with pytest.raises(Unplaceable, match="insufficient resources on 2 nodes"):
        asyncio.run(_engine(ScriptedSwarm([[PENDING]])).wait_running("s1", within=5, patience=0.2))
    assert time.monotonic() - begin < 2


def test_a_task_whose_node_no_longer_meets_constraints_is_asked_for_again() -> None:
    rejected = {**ENDED, "Status": {"State": "rejected", "Err": "assigned node no longer meets constraints"}}
    new = {**RUNNING, "CreatedAt": "2026-12-04T10:00:05Z"}
    api = ScriptedSwarm([[rejected], [rejected, new]])
    task = asyncio.run(_engine(api).wait_running("s1", within=5))
    assert task.container_id == "c2" and (api.updates, api.forced) == (1, 1)  # a forced update: a new task
    always = ScriptedSwarm([[rejected]])
    with pytest.raises(EngineError, match="the task rejected on node host-n1: assigned node no longer meets"):
        asyncio.run(_engine(always).wait_running("s1", within=5))
    assert always.updates == 2  # twice asked again, then given up


def test_a_task_rejected_while_its_node_still_frees_a_removed_networks_subnet_is_asked_for_again() -> None:
    """A user's overlay made on the subnet another user's just-removed overlay had: a node where that
    one had containers rejects the task until it has let the old subnet go (seen with two users
    stopping and two starting at once)."""
    overlap = "Pool overlaps with other one on this address space"
    rejected = {**ENDED, "Status": {"State": "rejected", "Err": overlap}}
    new = {**RUNNING, "CreatedAt": "2026-12-04T10:00:05Z"}
    api = ScriptedSwarm([[rejected], [rejected], [rejected], [rejected, new]])
    engine = _engine(api)
    engine.network_settle = 0.01
    task = asyncio.run(engine.wait_running("s1", within=5))
    assert task.container_id == "c2" and api.updates == 3  # asked again after each of the three rejections
    always = ScriptedSwarm([[rejected]])
    engine = _engine(always)
    engine.network_settle = 0.01
    with pytest.raises(EngineError, match=f"the task rejected on node host-n1: {overlap}"):
        asyncio.run(engine.wait_running("s1", within=5))


def test_a_free_published_port_is_found_from_a_start_and_wraps_around() -> None:
    from core.engine.swarm_nodes import free_port, published_ports

    services: list[dict[str, Any]] = [
        {"Spec": {"EndpointSpec": {"Ports": [{"TargetPort": 8888, "PublishedPort": 30000}]}}},
        {"Spec": {"EndpointSpec": {"Ports": [{"TargetPort": 8888}]}},
         "Endpoint": {"Ports": [{"TargetPort": 8888, "PublishedPort": 30002}]}},
        {"Spec": {}},
    ]
    used = published_ports(services)
    assert used == {30000, 30002}
    assert free_port(used, 30000, 30003) == 30001
    assert free_port(used, 30000, 30003, first=30002) == 30003
    assert free_port(used | {30003}, 30000, 30003, first=30002) == 30001
    with pytest.raises(LookupError, match="every port of 30000-30002 is published"):
        free_port(used | {30001}, 30000, 30002)


def test_a_node_without_the_image_fails_at_once_saying_which_node_and_image() -> None:
    rejected = {**ENDED, "Status": {"State": "rejected", "Message": "preparing", "Err": "No such image: titan/x:1"}}
    begin = time.monotonic()
    with pytest.raises(ImageMissing) as raised:
        asyncio.run(_engine(ScriptedSwarm([[rejected]])).wait_running("s1", within=5))
    assert time.monotonic() - begin < 2
    assert "node host-n1 has no image titan/x:1 and could not pull it: no registry is named in it" in str(raised.value)


@pytest.mark.parametrize("error", [
    'invalid mount config for type "bind": bind source path does not exist: /srv/homes/t-home-alice',
    "invalid bind mount source, source path not found: /srv/homes/t-home-alice",
    'invalid mount config for type "bind": stat /srv/homes/t-home-alice: transport endpoint is not connected',
])
def test_a_home_missing_on_its_node_fails_at_once_naming_the_node(error: str) -> None:
    rejected = {**ENDED, "NodeID": "n3", "Status": {"State": "rejected", "Err": error}}
    with pytest.raises(MountMissing, match="Your home storage is not mounted on node host-n3") as caught:
        asyncio.run(_engine(ScriptedSwarm([[rejected]])).wait_running("s1", within=5))
    assert "/srv/homes/t-home-alice" in str(caught.value)


def test_a_secret_name_stays_within_what_swarm_takes_and_apart_from_others() -> None:
    from core.engine.swarm_spec import SECRET_NAME_MAX, secret_name

    assert secret_name("tgs-dask-alice-4260-scheduler", "dask.crt") == "tgs-dask-alice-4260-scheduler-dask.crt"
    long_a = "titantest-ffa161-dask-alice-42603568a55b-worker-66c874a56db2"
    long_b = "titantest-ffa161-dask-alice-42603568a55b-worker-66c874a56db3"
    a, b = secret_name(long_a, "dask.crt"), secret_name(long_b, "dask.crt")
    assert len(a) <= SECRET_NAME_MAX and len(b) <= SECRET_NAME_MAX and a != b
    assert a.endswith("-dask.crt") and a.startswith("titantest-ffa161-dask-alice")


def test_a_listing_lists_again_when_a_service_goes_between_its_two_calls() -> None:
    class Vanishing(ScriptedSwarm):
        def __init__(self) -> None:
            super().__init__([[RUNNING]])
            self.listings = 0

        def services(self, filters: Any = None) -> list[dict[str, Any]]:
            self.listings += 1
            gone = [{"ID": "gone", "Spec": {"Name": "g"}}] if self.listings == 1 else []
            return [*gone, {"ID": "s1", "Spec": {"Name": "kept", "Labels": {"titan.test": "1"}}}]

        def tasks(self, filters: Any = None) -> list[dict[str, Any]]:
            if "gone" in (filters or {}).get("service", []):
                raise _api_error(404, "service gone not found")
            return [{**RUNNING, "ServiceID": "s1"}]

    api = Vanishing()
    listed = asyncio.run(_engine(api).list_containers({"titan.test": "1"}))
    assert [(c.name, c.state) for c in listed] == [("kept", "running")] and api.listings == 2


def test_two_users_starting_at_once_get_overlays_on_different_subnets() -> None:
    """Swarm itself makes an overlay whose subnet overlaps another's: the hub's engine checks, and two
    starts at once must not both pass the check before either network exists."""
    class Overlays(ScriptedSwarm):
        def __init__(self) -> None:
            super().__init__([[]])
            self.made: dict[str, dict[str, Any]] = {}
            self.lock = threading.Lock()

        def networks(self) -> list[dict[str, Any]]:
            with self.lock:
                return list(self.made.values())

        def inspect_network(self, name: str) -> dict[str, Any]:
            with self.lock:
                if name not in self.made:
                    raise docker.errors.NotFound(f"network {name} not found")
                return self.made[name]

        def create_network(self, name: str, ipam: Any = None, labels: Any = None, **_: Any) -> dict[str, Any]:
            time.sleep(0.05)  # the manager's round trip: a second check runs meanwhile
            with self.lock:
                subnet = ipam["Config"][0]["Subnet"]
                self.made[name] = {"Id": name, "Name": name, "Labels": labels,
                                   "IPAM": {"Config": [{"Subnet": subnet, "Gateway": ipam["Config"][0]["Gateway"]}]}}
            return {"Id": name}

    api = Overlays()
    engine = _engine(api)
    plan = NetworkPlan.of("race", "10.251.0.0/16", 24)

    async def both() -> list[str]:
        return list(await asyncio.gather(*(ensure_user_network(engine, plan, u) for u in ("alice", "bob", "carol"))))

    names = asyncio.run(both())
    subnets = [api.made[n]["IPAM"]["Config"][0]["Subnet"] for n in names]
    assert len(set(subnets)) == 3, subnets
