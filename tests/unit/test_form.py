"""The options form: only allowed profiles, disabled ones with reasons, everything escaped."""

from __future__ import annotations

from pathlib import Path

from core.capacity import HostCapacity
from core.profiles import load_profiles
from spawner.form import form_view, render_form
from tests.unit.shipped import IMAGES, shipped_profiles

GIB = 1024**3
SMALL_HOST = HostCapacity(cpus=2, memory=int(23.5 * GIB))


def test_shipped_profiles_on_a_small_host() -> None:
    profiles = shipped_profiles()
    views = {v.slug: v for v in form_view(profiles, "alice", [], SMALL_HOST)}
    assert not views["small"].disabled_reason and views["small"].checked
    assert not views["medium"].disabled_reason
    assert "needs 4 CPUs" in views["large"].disabled_reason
    assert "this host has no NVIDIA T4 GPU" in views["gpu"].disabled_reason
    high_memory = views["high-memory"].options[0]
    assert all("of memory" in c.disabled_reason for c in high_memory.choices)
    html = render_form(list(views.values()))
    assert 'value="large"' in html and "disabled" in html and "Unavailable: needs 4 CPUs" in html


def test_gpu_choices_show_free_counts() -> None:
    profiles = shipped_profiles()
    host = HostCapacity(cpus=64, memory=512 * GIB, gpus_total={"H100": 1}, gpus_free={"H100": 1})
    gpu = next(v for v in form_view(profiles, "alice", [], host) if v.slug == "gpu")
    choices = {c.key: c for c in gpu.options[0].choices}
    assert "H100: 1 of 1 free" in choices["H100"].description
    assert choices["T4"].disabled_reason == "this host has no NVIDIA T4 GPU"


def test_profile_text_is_escaped_and_gated_profiles_hidden(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "profiles:\n"
        "  - display_name: '<img src=x onerror=alert(1)>'\n"
        "    slug: evil\n"
        "    description: '<script>alert(\"x\")</script>'\n"
        "    image: minimal\n"
        "    resources: {cpu: 1, memory: 1G}\n"
        "  - {display_name: Secret, image: minimal, resources: {cpu: 1, memory: 1G}, access: {groups: [ops]}}\n"
    )
    profiles = load_profiles([path], IMAGES)
    html = render_form(form_view(profiles, "bob", [], SMALL_HOST))
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Secret" not in html
    assert "Secret" in render_form(form_view(profiles, "bob", ["ops"], SMALL_HOST))
