"""Cluster options: the profile data's ``dask`` section and what clients send."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.profiles import ProfileError, load_profiles, profile_files
from gateway.limits import Limits
from gateway.options import FIELDS, DaskSettings, OptionsError, dask_settings, options_spec, parse_request
from tests.unit.shipped import IMAGES, shipped_profiles

GIB = 1024**3
RAW: dict[str, Any] = {
    "worker_cores": {"choices": [0.5, 1, 2], "default": 1},
    "worker_memory": {"choices": ["512M", "1G", "2G"], "default": "1G"},
    "scheduler": {"cores": 0.5, "memory": "512M"},
    "limits": {"max_clusters": 1, "max_cores": 4, "max_memory": "4G", "max_workers": 3},
    "group_limits": {"big": {"max_clusters": 3}},
}


@pytest.fixture
def settings() -> DaskSettings:
    return dask_settings(RAW)


def test_shipped_profiles_have_a_valid_dask_section() -> None:
    profiles = shipped_profiles()
    settings = dask_settings(profiles.dask)
    assert settings.default_memory in settings.worker_memory
    assert settings.limits.max_clusters >= 1
    assert "data-team" in settings.group_limits


def test_settings_are_normalised(settings: DaskSettings) -> None:
    assert settings.worker_cores == (0.5, 1.0, 2.0)
    assert settings.default_cores == 1.0
    assert settings.worker_memory == ("512M", "1G", "2G")
    assert (settings.scheduler_cores, settings.scheduler_memory) == (0.5, GIB // 2)
    assert settings.limits == Limits(1, 4, 4 * GIB, 3)


def test_missing_section_gets_defaults_and_first_choice_is_the_default() -> None:
    assert dask_settings({}).default_memory == "2G"
    assert dask_settings({"worker_memory": {"choices": ["4G", "8G"]}}).default_memory == "4G"


@pytest.mark.parametrize(("raw", "message"), [
    ({"worker_cores": {"choices": [1, 2], "default": 3}}, "default 3 is not one of the choices"),
    ({"worker_memory": {"choices": ["1G"], "default": "2G"}}, "default 2G is not one of the choices"),
    ({"group_limits": {"g": {"max_memory": "lots"}}}, "dask.group_limits.g"),
])
def test_inconsistent_sections_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dask_settings(raw)


def test_the_profile_schema_rejects_unknown_dask_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("profiles: [{display_name: S, image: minimal, resources: {cpu: 1, memory: 1G}}]\n"
                    "dask: {limits: {max_clusterz: 3}}\n")
    with pytest.raises(ProfileError, match=r"dask\.limits: unknown key"):
        load_profiles([path], IMAGES)


def test_dask_sections_of_several_files_are_merged(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("profiles: [{display_name: S, image: minimal, resources: {cpu: 1, memory: 1G}}]\n"
                                     "dask: {limits: {max_clusters: 1, max_cores: 2}}\n")
    (tmp_path / "b.yaml").write_text("dask: {limits: {max_clusters: 5}}\n")
    profiles = load_profiles(profile_files(tmp_path), IMAGES)
    assert profiles.dask == {"limits": {"max_clusters": 5, "max_cores": 2}}


def test_no_options_give_the_defaults(settings: DaskSettings) -> None:
    request = parse_request(settings, {}, 600)
    assert (request.server, request.worker_cores, request.worker_memory, request.idle_timeout) == ("", 1.0, "1G", 600)
    assert request.worker_memory_bytes == GIB
    assert parse_request(settings, None, 600) == request


def test_choices_are_accepted_as_strings_or_numbers(settings: DaskSettings) -> None:
    request = parse_request(settings, {"server": "gpu", "worker_cores": "0.5", "worker_memory": "512M",
                                       "idle_timeout": 60}, 600)
    assert (request.server, request.worker_cores, request.worker_memory, request.idle_timeout) == \
        ("gpu", 0.5, "512M", 60)
    assert parse_request(settings, {"worker_cores": 2, "worker_memory": "1024M"}, 600).worker_memory == "1G"


@pytest.mark.parametrize(("options", "message"), [
    ({"colour": "red"}, "Unknown cluster option(s): colour. The options are: server, worker_cores"),
    ({"worker_cores": 3}, "worker_cores=3 is not offered. Choose one of: 0.5, 1, 2."),
    ({"worker_cores": "many"}, "worker_cores must be a number"),
    ({"worker_cores": True}, "worker_cores=True is not offered"),
    ({"worker_memory": "64G"}, "worker_memory='64G' is not offered. Choose one of: 512M, 1G, 2G."),
    ({"worker_memory": 2}, "worker_memory must be a string"),
    ({"worker_memory": "lots"}, "is not a memory size"),
    ({"idle_timeout": 601}, "idle_timeout must be between 1 and 600 seconds"),
    ({"idle_timeout": 0}, "idle_timeout must be between 1 and 600 seconds"),
    ({"idle_timeout": "soon"}, "idle_timeout must be a number of seconds"),
    ({"server": 7}, "server must be the name of one of your servers"),
])
def test_bad_options_get_a_message_the_user_can_act_on(settings: DaskSettings, options: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(OptionsError) as raised:
        parse_request(settings, options, 600)
    assert message in str(raised.value)


def test_options_must_be_a_mapping(settings: DaskSettings) -> None:
    with pytest.raises(OptionsError, match="must be a mapping"):
        parse_request(settings, ["worker_cores"], 600)


def test_without_a_deployment_idle_timeout_any_non_negative_value_goes(settings: DaskSettings) -> None:
    assert parse_request(settings, {"idle_timeout": 0}, 0).idle_timeout == 0
    with pytest.raises(OptionsError, match="negative"):
        parse_request(settings, {"idle_timeout": -1}, 0)


def test_the_spec_clients_see_offers_the_same_choices(settings: DaskSettings) -> None:
    spec = {f["field"]: f for f in options_spec(settings, 600).get_specification()}
    assert list(spec) == ["server", "worker_cores", "worker_memory", "idle_timeout"]
    assert spec["worker_cores"]["spec"] == {"type": "select", "options": ["0.5", "1", "2"]}
    assert spec["worker_cores"]["default"] == "1"
    assert spec["worker_memory"]["spec"]["options"] == ["512M", "1G", "2G"]
    assert spec["worker_memory"]["default"] == "1G"
    # What the spec offers, parse_request accepts.
    for cores in spec["worker_cores"]["spec"]["options"]:
        for memory in spec["worker_memory"]["spec"]["options"]:
            parse_request(settings, {"worker_cores": cores, "worker_memory": memory}, 600)


def test_the_form_and_the_parser_come_from_one_table() -> None:
    settings = dask_settings({"worker_gpus": {"choices": [0, 1]}}, ["T4"])
    shown = [f["field"] for f in options_spec(settings, 3600).get_specification()]
    assert shown == list(FIELDS)  # every option is shown, in the table's order
    defaults = {f["field"]: f["default"] for f in options_spec(settings, 3600).get_specification()}
    parsed = parse_request(settings, defaults, 3600)  # what the form sends untouched is accepted
    assert parsed == parse_request(settings, {}, 3600)
    plain = [f["field"] for f in options_spec(dask_settings({}, ["T4"]), 0).get_specification()]
    assert plain == [f for f in FIELDS if not f.startswith("worker_gpu")]
