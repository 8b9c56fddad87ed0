"""kubernetes_export refuses bad input with a message naming the file or profile and the key, exits
non-zero and leaves the output folder exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubernetes_export import kubespawner_check
from kubernetes_export.__main__ import main
from kubernetes_export.errors import ExportError
from kubernetes_export.hub_values import context, values
from kubernetes_export.options import ExportOptions
from kubernetes_export.source import load_deployment
from tests.unit.k8s_export_fixtures import EVERY_FEATURE, SETTINGS, write_profiles, write_settings

SMALL = """\
gpu_types:
  T4: {match: "T4"}
profiles:
  - display_name: Box
    slug: box
    image: minimal
    resources: {cpu: 1, memory: 2G%(resources)s}
%(options)s"""

BAD_PROFILES = {
    "processes": (SMALL % {"resources": ", processes: 512", "options": ""},
                  "profile 'box': resources.processes: Kubernetes has no per-pod process limit"),
    "typed image": (SMALL % {"resources": "", "options": """\
    profile_options:
      env:
        display_name: Image
        choices: {minimal: {display_name: Minimal, override: {image: minimal}}}
        unlisted_choice: {enabled: true, override: {image: "{value}"}}
"""}, "profile 'box': profile_options.env.unlisted_choice.override.image: an image name typed by the user"),
    "typed cpu": (SMALL % {"resources": "", "options": """\
    profile_options:
      cpu:
        display_name: CPUs
        choices: {"1": {display_name: "1", override: {resources: {cpu: 1}}}}
        unlisted_choice: {enabled: true, validation_regex: "[0-9]", override: {resources: {cpu: "{value}"}}}
"""}, "profile 'box': profile_options.cpu.unlisted_choice.override.resources.cpu: KubeSpawner fills {value} in"),
    "unknown GPU type": (SMALL % {"resources": ", gpu: {type: V100}", "options": ""},
                         "names GPU type 'V100', not one of gpu_types (T4)"),
    "unknown worker GPU type": (SMALL % {"resources": "", "options": ""}
                                + "dask: {worker_gpus: {choices: [0, 1], types: [V100]}}\n",
                                "dask.worker_gpus.types: V100 not in gpu_types (T4)"),
    "worker GPUs without a type": ((SMALL % {"resources": "", "options": ""}).replace('  T4: {match: "T4"}\n', "")
                                   .replace("gpu_types:\n", "") + "dask: {worker_gpus: {choices: [0, 1]}}\n",
                                   "at dask.worker_gpus: workers may ask for GPUs but no GPU type is offered"),
    "typo": (SMALL % {"resources": "", "options": "    acces: {groups: [x]}\n"},
             "at profiles.0: unknown key: Additional properties are not allowed ('acces' was unexpected)"),
    "choices in an order KubeSpawner cannot follow": (SMALL % {"resources": "", "options": """\
    profile_options:
      count:
        display_name: GPUs
        choices: {"1": {display_name: "1", override: {resources: {gpu: {count: 1}}}},
                  "2": {display_name: "2", override: {resources: {gpu: {count: 2}}}}}
      type:
        display_name: GPU type
        choices: {none: {display_name: None, override: {resources: {gpu: {type: null}}}},
                  t4: {display_name: T4, override: {resources: {gpu: {type: T4}}}}}
"""}, "profile 'box' with {'profile': 'box', 'count': '2', 'type': 't4'}: KubeSpawner gives gpus = [1], Titan [2]"),
}


def untouched_run(tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / "out"
    out.mkdir()
    (out / "values.yaml").write_text("the previous export")
    assert main(["--out", str(out), *args]) == 1
    assert [p.name for p in out.iterdir()] == ["values.yaml"]
    assert (out / "values.yaml").read_text() == "the previous export"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left
    error = capsys.readouterr().err
    assert error.endswith("Nothing was written.\n")
    return error


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_bad_profiles_are_refused(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, message = BAD_PROFILES[case]
    profiles = write_profiles(tmp_path, text)
    error = untouched_run(tmp_path, ["--settings", str(write_settings(tmp_path)), "--profiles", str(profiles)], capsys)
    assert message in error


def test_missing_login_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = write_settings(tmp_path, "deployment: acme\n")
    error = untouched_run(tmp_path, ["--settings", str(settings), "--profiles", str(write_profiles(tmp_path))], capsys)
    assert f"{settings}: at auth.github: the Kubernetes hub logs in with GitHub and lets nobody in" in error


def test_secrets_asked_for_but_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OAUTH_CLIENT_SECRET", raising=False)
    settings = write_settings(tmp_path, SETTINGS.replace("    client_secret:", "    # client_secret:"))
    error = untouched_run(tmp_path, ["--settings", str(settings), "--profiles", str(write_profiles(tmp_path)),
                                     "--include-secrets"], capsys)
    assert "at auth.github.client_secret: --include-secrets asks for it, but neither titan.yaml nor " \
           "OAUTH_CLIENT_SECRET sets it" in error


def test_bad_settings_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = write_settings(tmp_path, extra="culling: {timeout: soon}\n")
    profiles = write_profiles(tmp_path, EVERY_FEATURE)
    assert "at culling.timeout" in untouched_run(tmp_path, ["--settings", str(settings), "--profiles",
                                                            str(profiles)], capsys)
    missing = tmp_path / "nowhere.yaml"
    (tmp_path / "out" / "values.yaml").unlink()
    (tmp_path / "out").rmdir()
    assert f"{missing}: no such settings file" in untouched_run(tmp_path, ["--settings", str(missing)], capsys)
    (tmp_path / "out" / "values.yaml").unlink()
    (tmp_path / "out").rmdir()
    good = write_settings(tmp_path)
    assert f"{tmp_path / 'none'}: no such profiles directory" in untouched_run(
        tmp_path, ["--settings", str(good), "--profiles", str(tmp_path / "none")], capsys)


@pytest.fixture
def exported(tmp_path: Path) -> tuple[object, dict, object]:
    deployment = load_deployment(write_settings(tmp_path), write_profiles(tmp_path))
    return deployment, values(deployment, ExportOptions()), context(deployment, ExportOptions())


def test_the_kubespawner_check_catches_a_missing_access_rule(exported: tuple) -> None:
    deployment, hub, ctx = exported
    without_access = {k: v for k, v in hub["hub"]["extraConfig"].items() if "access" not in k}
    with pytest.raises(ExportError, match="profile 'team': KubeSpawner takes {'profile': 'team'} from 'outsider', "
                                          "which Titan refuses"):
        kubespawner_check.check(deployment.profiles, hub["singleuser"]["profileList"], without_access, ctx)


def test_the_kubespawner_check_catches_a_loose_regex_and_a_wrong_limit(exported: tuple) -> None:
    deployment, hub, ctx = exported
    profile_list = hub["singleuser"]["profileList"]
    profile_list[0]["profile_options"]["memory"]["unlisted_choice"]["validation_regex"] = ".*"
    with pytest.raises(ExportError, match=r"KubeSpawner takes .*'memory--unlisted-choice'.* which Titan refuses"):
        kubespawner_check.check(deployment.profiles, profile_list, hub["hub"]["extraConfig"], ctx)
    profile_list = values(deployment, ExportOptions())["singleuser"]["profileList"]
    profile_list[2]["kubespawner_override"]["mem_limit"] = "32G"
    with pytest.raises(ExportError, match=r"profile 'big-gpu' with .*: KubeSpawner's guarantees"):
        kubespawner_check.check(deployment.profiles, profile_list, hub["hub"]["extraConfig"], ctx)
    profile_list[2]["kubespawner_override"]["mem_guarantee"] = "32G"
    with pytest.raises(ExportError, match=r"profile 'big-gpu' with .*: KubeSpawner gives memory = \[34359738368\], "
                                          r"Titan \[68719476736\]"):
        kubespawner_check.check(deployment.profiles, profile_list, hub["hub"]["extraConfig"], ctx)
