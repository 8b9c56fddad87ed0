"""User options: parsing the form and the one validation gate for every spawn path."""

from __future__ import annotations

from typing import Any

import pytest

from core.capacity import HostCapacity
from core.profiles import ProfileSet, load_profiles
from spawner.options import OptionsError, parse_form, resolve_selection

GIB = 1024**3
SMALL_HOST = HostCapacity(cpus=2, memory=int(23.5 * GIB))
BIG_HOST = HostCapacity(cpus=64, memory=1024 * GIB, gpus_total={"H100": 2}, gpus_free={"H100": 1})


def test_form_fields_become_kubespawner_user_options() -> None:
    form = {
        "profile": ["high-memory"],
        "profile-option-high-memory--memory": ["--unlisted-choice"],
        "profile-option-high-memory--memory--unlisted-choice": [" 96G "],
        "profile-option-small--image": ["datascience"],  # another profile's field: ignored
    }
    assert parse_form(form) == {"profile": "high-memory", "memory": "96G"}
    assert parse_form({}) == {"profile": ""}


def test_default_profile_when_nothing_is_sent(shipped: ProfileSet) -> None:
    selection = resolve_selection(shipped, {}, "alice", [], SMALL_HOST)
    assert selection.profile.slug == "small"
    assert selection.image == "minimal"
    assert (selection.resources.cpu, selection.resources.memory) == (1, 2 * GIB)


def test_a_choice_overrides_the_profile(shipped: ProfileSet) -> None:
    selection = resolve_selection(shipped, {"profile": "medium", "image": "datascience"}, "alice", [], SMALL_HOST)
    assert selection.image == "datascience"
    assert selection.resources.memory == 8 * GIB


def test_unlisted_value_fills_the_template(shipped: ProfileSet) -> None:
    selection = resolve_selection(shipped, {"profile": "high-memory", "memory": "96G"}, "alice", [], BIG_HOST)
    assert selection.resources.memory == 96 * GIB
    assert selection.values == {"memory": "96G"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"profile": "nosuch"}, "Unknown profile 'nosuch'. Choose one of: small"),
        ({"profile": "small", "colour": "red"}, "Unknown option(s) for profile 'small': 'colour'"),
        ({"profile": "small", "image": "gentoo"}, "'gentoo' is not a choice for Environment"),
        ({"profile": "high-memory", "memory": "2000G"}, "Type an amount between 64G and 512G"),
        ({"profile": ["small"]}, "Option 'profile' must be a string"),
        ({"profile": "small", "image": 3}, "Option 'image' must be a string"),
        ({"profile": "small", "image": "x" * 300}, "longer than 256"),
        (["small"], "must be a JSON object"),
    ],
)
def test_bad_options_say_what_is_wrong(shipped: ProfileSet, options: Any, message: str) -> None:
    with pytest.raises(OptionsError) as caught:
        resolve_selection(shipped, options, "alice", [], BIG_HOST)
    assert message in str(caught.value)


def test_host_limits_refuse_with_the_reason(shipped: ProfileSet) -> None:
    with pytest.raises(OptionsError) as caught:
        resolve_selection(shipped, {"profile": "large"}, "alice", [], SMALL_HOST)
    assert "needs 4 CPUs; this host has 2 CPUs" in str(caught.value)
    assert "needs 32 GiB of memory; this host has 23.5 GiB" in str(caught.value)
    with pytest.raises(OptionsError, match="this host has no NVIDIA A100 GPU"):
        resolve_selection(shipped, {"profile": "gpu", "gpu_type": "A100"}, "alice", [], BIG_HOST)
    with pytest.raises(OptionsError, match="NVIDIA H100: 1 of 2 free, 2 needed"):
        resolve_selection(shipped, {"profile": "gpu", "gpu_type": "H100", "gpu_count": "2"}, "alice", [], BIG_HOST)
    ok = resolve_selection(shipped, {"profile": "gpu", "gpu_type": "H100"}, "alice", [], BIG_HOST)
    assert (ok.resources.gpu_type, ok.resources.gpu_count) == ("H100", 1)


def test_group_gated_profile_is_refused_outside_the_group(tmp_path: Any) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("profiles:\n"
                    "  - {display_name: Open, image: minimal, resources: {cpu: 1, memory: 1G}}\n"
                    "  - {display_name: Team, image: minimal, resources: {cpu: 1, memory: 1G},\n"
                    "     access: {groups: ['acme:gpu'], users: [carol]}}\n")
    gated = load_profiles([path], ["minimal"])
    with pytest.raises(OptionsError, match="Profile 'team' is not available to you. Choose one of: open."):
        resolve_selection(gated, {"profile": "team"}, "bob", ["acme:web"], SMALL_HOST)
    assert resolve_selection(gated, {"profile": "team"}, "bob", ["acme:gpu"], SMALL_HOST).profile.slug == "team"
    assert resolve_selection(gated, {"profile": "team"}, "carol", [], SMALL_HOST).profile.slug == "team"
