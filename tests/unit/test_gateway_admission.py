"""Admission of a new cluster: the pure decision over the settings, the request, the server, the
owner's groups and active clusters, and the host's GPUs."""

from __future__ import annotations

from gateway.admission import Accepted, GpuFacts, Origin, Refused, admit
from gateway.limits import Shape
from gateway.options import dask_settings, parse_request

GIB = 1024**3
SETTINGS = dask_settings({
    "worker_cores": {"choices": [1, 2]},
    "worker_memory": {"choices": ["1G", "2G"]},
    "worker_gpus": {"choices": [0, 1, 2]},
    "scheduler": {"cores": 0.5, "memory": "512M"},
    "limits": {"max_clusters": 1, "max_cores": 4, "max_memory": "8G", "max_workers": 3},
    "group_limits": {"big": {"max_clusters": 3}},
}, ["T4", "H100"])
LAB = Origin(container_id="cid-lab", image="titan/minimal:1", profile="small")
NO_GPUS = GpuFacts(totals={"T4": 0, "H100": 1})
SMALL = Shape(0.5, GIB // 2, 1.0, GIB)


def test_an_accepted_cluster_gets_its_servers_image_and_its_owners_limits() -> None:
    decision = admit(SETTINGS, parse_request(SETTINGS, {"server": "lab", "worker_cores": 2}, 0), LAB, [], [],
                     NO_GPUS)
    assert isinstance(decision, Accepted)
    config = decision.config
    assert (config["image"], config["origin_server"], config["origin_container"]) == ("titan/minimal:1", "lab",
                                                                                      "cid-lab")
    assert (config["worker_cores"], config["worker_memory"], config["scheduler_cores"]) == (2.0, GIB, 0.5)
    assert config["user_limits"] == {"max_clusters": 1, "max_cores": 4.0, "max_memory": 8 * GIB, "max_workers": 3}


def test_the_limits_refuse_with_the_limit_named_and_groups_raise_them() -> None:
    request = parse_request(SETTINGS, {}, 0)
    refused = admit(SETTINGS, request, LAB, [], [SMALL], NO_GPUS)
    assert isinstance(refused, Refused) and refused.limit == "max_clusters" and "(max_clusters)" in refused.message
    assert isinstance(admit(SETTINGS, request, LAB, ["big"], [SMALL], NO_GPUS), Accepted)


def test_worker_gpus_take_the_servers_type_and_no_more_than_the_host_has() -> None:
    one = parse_request(SETTINGS, {"worker_gpus": 1}, 0)
    accepted = admit(SETTINGS, one, LAB, [], [], GpuFacts({"H100": 1}, server_type="H100"))
    assert isinstance(accepted, Accepted) and accepted.request.worker_gpu_type == "H100"
    assert accepted.config["worker_gpus"] == 1
    two = parse_request(SETTINGS, {"worker_gpus": 2, "worker_gpu_type": "H100"}, 0)
    refused = admit(SETTINGS, two, LAB, [], [], NO_GPUS)
    assert refused == Refused("worker_gpus=2: this host has only 1 H100 GPU.")
    unconfigured = admit(SETTINGS, one, LAB, [], [], GpuFacts(None))
    assert isinstance(unconfigured, Refused) and "not configured on this deployment" in unconfigured.message
    no_type = admit(SETTINGS, one, LAB, [], [], NO_GPUS)
    assert isinstance(no_type, Refused) and "your server has no GPU" in no_type.message
