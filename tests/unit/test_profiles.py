"""Profiles: the shipped data loads; the schema and the loader reject bad data, naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.profiles import ProfileError, load_profiles, loaded_profile_sets, profiles_in, resources_from_settings
from tests.unit.shipped import IMAGES, shipped_profiles


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_profiles_load_and_are_normalised() -> None:
    profiles = shipped_profiles()
    slugs = [p.slug for p in profiles.profiles]
    assert slugs == ["small", "medium", "large", "high-memory", "gpu"]
    assert profiles.default.slug == "small"
    sizes = {p.slug: resources_from_settings(p.settings) for p in profiles.profiles}
    assert (sizes["small"].cpu, sizes["small"].memory) == (1, 2 * 1024**3)
    assert (sizes["medium"].cpu, sizes["medium"].memory) == (2, 8 * 1024**3)
    assert (sizes["large"].cpu, sizes["large"].memory) == (4, 32 * 1024**3)
    high = profiles.get("high-memory")
    assert high is not None
    memory = high.option("memory")
    assert memory is not None and [c.key for c in memory.choices][-1] == "512G"
    assert memory.unlisted is not None and memory.unlisted.accepts("96G") and not memory.unlisted.accepts("600G")
    gpu = profiles.get("gpu")
    assert gpu is not None
    gpu_type = gpu.option("gpu_type")
    assert gpu_type is not None and [c.key for c in gpu_type.choices] == ["T4", "A100", "H100", "H200"]
    assert set(profiles.gpu_types) == {"T4", "A100", "H100", "H200"}
    # Every option has a default filled in and every profile an access rule.
    assert all(o.default for p in profiles.profiles for o in p.options)
    assert all(p.access.everyone for p in profiles.profiles)


def test_unknown_key_is_rejected_with_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
profiles:
  - display_name: Small
    image: minimal
    resources: {cpu: 1, memory: 2G}
    memroy: 4G
""")
    with pytest.raises(ProfileError) as caught:
        load_profiles([path], IMAGES)
    message = str(caught.value)
    assert str(path) in message and "memroy" in message and "profiles.0" in message


def test_unknown_key_in_a_choice_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, """
profiles:
  - display_name: Small
    image: minimal
    resources: {cpu: 1, memory: 2G}
    profile_options:
      image:
        display_name: Environment
        choices:
          minimal: {display_name: Minimal, kubespawner_override: {image: x}}
""")
    with pytest.raises(ProfileError, match="kubespawner_override"):
        load_profiles([path], IMAGES)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("image: nosuch\n    resources: {cpu: 1, memory: 2G}", "image 'nosuch'"),
        ("image: minimal\n    resources: {cpu: 1, memory: 2X}", "memory"),
        ("image: minimal\n    resources: {cpu: 1, memory: 2G, gpu: {type: V100, count: 1}}", "GPU type 'V100'"),
        ("image: minimal\n    resources: {cpu: 1}", "cpu and memory are required"),
    ],
)
def test_bad_values_are_rejected(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, f"profiles:\n  - display_name: Small\n    {body}\n")
    with pytest.raises(ProfileError, match=expected):
        load_profiles([path], IMAGES)


def test_duplicate_slugs_and_two_defaults_are_rejected(tmp_path: Path) -> None:
    one = "  - {display_name: Small, image: minimal, resources: {cpu: 1, memory: 2G}, default: true}\n"
    with pytest.raises(ProfileError, match="used twice"):
        load_profiles([write(tmp_path, "profiles:\n" + one + one)], IMAGES)
    other = "  - {display_name: Other, image: minimal, resources: {cpu: 1, memory: 2G}, default: true}\n"
    with pytest.raises(ProfileError, match="more than one profile has default"):
        load_profiles([write(tmp_path, "profiles:\n" + one + other)], IMAGES)


def test_invalid_yaml_and_bad_regex_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profiles([write(tmp_path, "profiles: [\n")], IMAGES)
    bad_regex = write(tmp_path, "gpu_types: {X: {match: '('}}\nprofiles:\n"
                                "  - {display_name: S, image: minimal, resources: {cpu: 1, memory: 1G}}\n")
    with pytest.raises(ProfileError, match=r"gpu_types\.X\.match"):
        load_profiles([bad_regex], IMAGES)


def test_slug_is_derived_from_the_display_name(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles:\n  - {display_name: 'Big Box (32 GB)', image: minimal, "
                           "resources: {cpu: 1, memory: 1G}}\n")
    assert load_profiles([path], IMAGES).profiles[0].slug == "big-box-32-gb"


def test_profiles_in_reads_a_directory_again_only_when_its_files_change(tmp_path: Path) -> None:
    one = "profiles:\n  - {display_name: One, image: minimal, resources: {cpu: 1, memory: 1G}}\n"
    write(tmp_path, one, "a.yaml")
    first = profiles_in(tmp_path)
    assert profiles_in(tmp_path) is first  # cached: the spawner, gateway and service ask on every use
    assert first in loaded_profile_sets()
    write(tmp_path, "profiles:\n  - {display_name: Two, image: minimal, resources: {cpu: 1, memory: 1G}}\n",
          "b.yaml")
    assert [p.slug for p in profiles_in(tmp_path).profiles] == ["one", "two"]  # a file added
    write(tmp_path, "profiles: [\n", "b.yaml")
    with pytest.raises(ProfileError, match="b.yaml: not valid YAML"):
        profiles_in(tmp_path)
    (tmp_path / "b.yaml").unlink()
    assert [p.slug for p in profiles_in(tmp_path).profiles] == ["one"]
