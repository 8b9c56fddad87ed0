"""kubernetes_export end to end: the command on the shipped profiles and on a profile folder that uses
every feature, read back and checked again by KubeSpawner, and each command-line option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.profiles import PROFILES_DIR
from kubernetes_export import chart_schema, kubespawner_check
from kubernetes_export import export as export_module
from kubernetes_export.__main__ import main
from kubernetes_export.export import GATEWAY_VALUES, REPORT, VALUES
from kubernetes_export.hub_values import context
from kubernetes_export.options import ExportOptions
from kubernetes_export.report import HUB_DOCKERFILE, SERVICE_SCRIPT
from kubernetes_export.source import load_deployment
from kubernetes_export.titan_service import DOCKERFILE as SERVICE_DOCKERFILE
from tests.unit.k8s_export_fixtures import CLIENT_ID, CLIENT_SECRET, write_profiles, write_settings


def export(out: Path, *args: str) -> int:
    return main(["--out", str(out), *args])


def read(out: Path, name: str = VALUES) -> Any:
    return yaml.safe_load((out / name).read_text())


def all_text(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(out.iterdir()))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("shipped")
    settings = write_settings(folder)
    assert export(folder / "out", "--settings", str(settings), "--profiles", str(PROFILES_DIR)) == 0
    return folder / "out", settings


@pytest.fixture(scope="module")
def every_feature(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("every")
    settings, profiles = write_settings(folder), write_profiles(folder)
    assert export(folder / "out", "--settings", str(settings), "--profiles", str(profiles),
                  "--registry", "harbor.acme.example/titan", "--namespace", "hub") == 0
    return folder / "out", settings, profiles


def overrides(values: Any) -> dict[str, Any]:
    return {p["slug"]: p["kubespawner_override"] for p in values["singleuser"]["profileList"]}


def test_shipped_profiles_round_trip(shipped: tuple[Path, Path]) -> None:
    out, settings = shipped
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [VALUES, GATEWAY_VALUES, REPORT, HUB_DOCKERFILE, SERVICE_SCRIPT, SERVICE_DOCKERFILE])
    values = read(out)
    deployment = load_deployment(settings, PROFILES_DIR)
    assert [p["slug"] for p in values["singleuser"]["profileList"]] == [p.slug for p in deployment.profiles.profiles]
    gpu = overrides(values)["gpu"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["node_selector"] == {"titan/gpu-type": "T4"}
    assert {"key": "titan/gpu-type", "operator": "Equal", "value": "T4", "effect": "NoSchedule"} in gpu["tolerations"]
    assert "--ServerApp.shutdown_no_activity_timeout=1800" in gpu["args"]  # idle_timeout: 30m
    assert overrides(values)["small"]["args"][0] == "--ServerApp.shutdown_no_activity_timeout=10800"  # culling 3h
    memory = values["singleuser"]["profileList"][3]["profile_options"]["memory"]["unlisted_choice"]
    assert memory["validation_message"] == "Type an amount between 64G and 512G, for example 96G."
    assert memory["kubespawner_override"] == {"mem_limit": "{value}", "mem_guarantee": "{value}"}
    assert values["cull"] == {"enabled": True, "timeout": 10800, "every": 120, "users": False,
                              "removeNamedServers": False}
    assert values["hub"]["namedServerLimitPerUser"] == 5 and values["hub"]["allowNamedServers"] is True
    github = values["hub"]["config"]["GitHubOAuthenticator"]
    assert github["allowed_organizations"] == ["acme", "partner:analysts"]
    assert github["admin_groups"] == ["acme:platform"] and "repo" in github["scope"]
    assert values["hub"]["config"]["Authenticator"]["admin_users"] == ["root-admin"]
    chart_schema.validate_values(values)  # as read back from the file
    # read back from the file, KubeSpawner gives every profile and choice what Titan gives
    checks = kubespawner_check.check(deployment.profiles, values["singleuser"]["profileList"],
                                     values["hub"]["extraConfig"], context(deployment, ExportOptions()))
    assert checks[0].startswith("KubeSpawner built 22 pods")


def test_secrets_stay_out_unless_asked(shipped: tuple[Path, Path], tmp_path: Path) -> None:
    out, settings = shipped
    text = all_text(out)
    assert CLIENT_SECRET not in text and CLIENT_ID not in text
    assert read(out)["hub"]["config"]["GitHubOAuthenticator"]["client_secret"] == "<REPLACE: OAUTH_CLIENT_SECRET>"
    assert '--set hub.config.GitHubOAuthenticator.client_secret="$OAUTH_CLIENT_SECRET"' in (out / REPORT).read_text()
    assert export(tmp_path / "out", "--settings", str(settings), "--profiles", str(PROFILES_DIR),
                  "--include-secrets") == 0
    github = read(tmp_path / "out")["hub"]["config"]["GitHubOAuthenticator"]
    assert (github["client_id"], github["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)
    assert CLIENT_SECRET not in (tmp_path / "out" / REPORT).read_text()


def test_report_says_what_to_push_and_label(shipped: tuple[Path, Path]) -> None:
    out, settings = shipped
    report = (out / REPORT).read_text()
    for name, tag in load_deployment(settings, PROFILES_DIR).local_images.items():
        remote = f"registry.example.org/titan/{name}:{tag.split(':')[1]}"
        assert f"docker tag {tag} {remote}\ndocker push {remote}" in report
    assert "kubectl label node NODE titan/gpu-type=H100" in report
    assert "JupyterHub 5.5.0" in report
    assert "FROM quay.io/jupyterhub/k8s-hub:4.4.0" in (out / HUB_DOCKERFILE).read_text()
    script = (out / SERVICE_SCRIPT).read_text()
    assert "get secret hub -o jsonpath='{.data.hub\\.services\\.titan\\.apiToken}'" in script
    # The container: built if missing, the socket, the volumes and the state dir at their host paths.
    state = str(load_deployment(settings, PROFILES_DIR).settings.state_dir)
    assert (f"docker build --network host --build-arg TITAN_CA_URL=\"${{TITAN_CA_URL:-}}\" "
            f"-f \"$(dirname \"$0\")/{SERVICE_DOCKERFILE}\"") in script
    assert "-v /var/run/docker.sock:/var/run/docker.sock" in script
    assert "-v /var/lib/docker/volumes:/var/lib/docker/volumes" in script
    assert f"-v {state}:{state}" in script and f"-v {settings}:/etc/titan/titan.yaml:ro" in script
    assert 'TITAN_SERVICE_PUBLISH:-8020:8020' in script and "--network host" not in script.split("docker run")[1]
    assert "-e JUPYTERHUB_API_TOKEN " in script and "JUPYTERHUB_API_TOKEN=" not in script.split("docker run")[1]
    # One command: every line of the `docker run` but the last continues it (a comment there would end it).
    run_lines = script.split("exec docker run", 1)[1].splitlines()
    assert all(line.endswith(" \\") for line in run_lines[:-1]) and run_lines[-1] == '  "$IMAGE"'
    assert not any(line.lstrip().startswith("#") for line in run_lines)
    # The service's own configuration file reads titan.yaml (its port 8020); no gateway on the old host.
    dockerfile = (out / SERVICE_DOCKERFILE).read_text()
    assert "FROM titan/base:" in dockerfile and "jupyterlab" not in dockerfile.lower()
    assert "/opt/titan/service/config.py" in dockerfile and "--Operations.gateway_url=" in dockerfile
    assert "TITAN_SETTINGS=/etc/titan/titan.yaml" in dockerfile and "TITAN_ADDRESS=0.0.0.0" in dockerfile
    assert "titan-service.Dockerfile" in report
    assert read(out)["hub"]["services"]["titan"]["url"] == "http://OLD-TITAN-HOST:8020"


def test_every_feature_round_trip(every_feature: tuple[Path, Path, Path]) -> None:
    out, settings, profiles = every_feature
    values = read(out)
    team = overrides(values)["team"]
    assert team["image"].startswith("harbor.acme.example/titan/minimal:")
    assert (team["cpu_limit"], team["mem_limit"], team["mem_guarantee"]) == (0.5, "1.5G", "1.5G")
    assert "--ServerApp.shutdown_no_activity_timeout=2700" in team["args"]
    assert "git clone --quiet https://github.com/acme/handbook.git" in team["lifecycle_hooks"]["postStart"]["exec"][
        "command"][2]
    add_gpu = values["singleuser"]["profileList"][1]["profile_options"]["gpu"]["choices"]
    assert add_gpu["t4"]["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert add_gpu["none"]["kubespawner_override"]["node_selector"] == {"titan/gpu-type": None}
    assert values["singleuser"]["extraEnv"]["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://traefik-dask-gateway.hub:80"
    deployment = load_deployment(settings, profiles)
    ctx = context(deployment, ExportOptions(registry="harbor.acme.example/titan"))
    checks = kubespawner_check.check(deployment.profiles, values["singleuser"]["profileList"],
                                     values["hub"]["extraConfig"], ctx)
    # team: 2 images × 2 CPUs × 1 memory + 1 typed memory; add-gpu: 3; big-gpu: 2 + 2 typed counts
    assert checks[0].startswith("KubeSpawner built 12 pods")


def test_access_callable_keeps_the_profiles_a_user_may_use(every_feature: tuple[Path, Path, Path]) -> None:
    from traitlets.config import Config

    values = read(every_feature[0])
    config = Config()
    config.KubeSpawner.profile_list = values["singleuser"]["profileList"]
    namespace: dict[str, Any] = {"c": config}
    for key in sorted(values["hub"]["extraConfig"]):
        exec(values["hub"]["extraConfig"][key], namespace)  # noqa: S102 - the generated hub config
    profile_list = config.KubeSpawner.profile_list

    def slugs(name: str, *groups: str) -> list[str]:
        user = kubespawner_check.User(name=name, groups=[kubespawner_check.Group(g) for g in groups])
        return [p["slug"] for p in profile_list(type("Spawner", (), {"user": user})())]

    assert slugs("carol") == ["team", "big-gpu"]
    assert slugs("dave", "acme:gpu-users") == ["add-gpu", "big-gpu"]
    assert slugs("erin", "acme:data-team", "acme:gpu-users") == ["team", "add-gpu", "big-gpu"]
    assert slugs("outsider") == ["big-gpu"]
    teams = config.GitHubOAuthenticator.auth_state_groups_key
    assert teams({"teams": [{"organization": {"login": "Acme"}, "slug": "Data-Team"}]}) == ["acme:data-team"]


def test_gateway_options_give_each_group_its_limits(every_feature: tuple[Path, Path, Path]) -> None:
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig
    from dask_gateway_server.models import User
    from traitlets.config import Config

    from gateway.limits import limits_for, parse_limits

    out, settings, profiles = every_feature
    gateway = read(out, GATEWAY_VALUES)["gateway"]
    assert gateway["auth"]["jupyterhub"]["apiTokenFromSecretKey"] == "hub.services.dask-gateway.apiToken"
    config = Config()
    for code in gateway["extraConfig"].values():
        exec(code, {"c": config})  # noqa: S102 - the generated gateway config
    options = config.Backend.cluster_options
    dask = load_deployment(settings, profiles).profiles.dask
    base = parse_limits(dask["limits"])
    for groups in ([], ["acme:data-team"], ["acme:gpu-users"], ["acme:data-team", "acme:gpu-users"]):
        cluster = options.get_configuration({"worker_cores": "2", "worker_gpus": 1, "worker_gpu_type": "T4"},
                                            User("u", groups=groups))
        want = limits_for(base, dask["group_limits"], groups)
        assert (cluster["cluster_max_cores"], cluster["cluster_max_memory"], cluster["cluster_max_workers"]) == (
            want.max_cores, want.max_memory, want.max_workers)
        assert cluster["worker_extra_pod_config"]["nodeSelector"] == {"titan/gpu-type": "T4"}
        assert cluster["worker_memory"] == "4G" and cluster["idle_timeout"] == 900
        KubeClusterConfig(**cluster)  # dask-gateway's own traits take every value
    with pytest.raises(ValueError, match="not offered"):
        options.get_configuration({"worker_gpus": 3}, User("u"))


def test_gateway_and_culling_disabled(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, extra="service: {enabled: false}\n")
    text = settings.read_text().replace("gateway: {idle_timeout: 900}", "gateway: {enabled: false}")
    settings.write_text(text.replace("culling: {timeout: 3h, every: 120}", "culling: {enabled: false}"))
    assert export(tmp_path / "out", "--settings", str(settings), "--profiles", str(PROFILES_DIR)) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([HUB_DOCKERFILE, REPORT, VALUES])
    values = read(tmp_path / "out")
    assert values["cull"] == {"enabled": False}
    assert "services" not in values["hub"] and "extraEnv" not in values["singleuser"]
    assert all("args" not in o and "environment" not in o for o in overrides(values).values())
    assert "Culling is off" in (tmp_path / "out" / REPORT).read_text()


def test_chart_version_and_reexport_into_existing_folder(shipped: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, settings = shipped
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert export(out, "--settings", str(settings), "--profiles", str(PROFILES_DIR), "--chart-version", "4.5.0",
                  "--gateway-chart-version", "2026.4.0", "--titan-service-url", "http://old.acme.example:8020") == 0
    report = (out / REPORT).read_text()
    assert "jupyterhub/jupyterhub --version 4.5.0" in report and "dask/dask-gateway --version 2026.4.0" in report
    assert "checked against the schema of 4.4.0" in report
    assert (out / "notes.txt").read_text() == "mine"
    assert read(out)["hub"]["services"]["titan"]["url"] == "http://old.acme.example:8020"
    assert "read " + str(out / REPORT) in capsys.readouterr().out


def test_without_kubespawner_the_report_says_so(shipped: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _, settings = shipped
    monkeypatch.setattr(export_module, "kubespawner_available", lambda: False)
    assert export(tmp_path / "out", "--settings", str(settings), "--profiles", str(PROFILES_DIR)) == 0
    assert "- NOT checked by KubeSpawner: install jupyterhub-kubespawner" in (tmp_path / "out" / REPORT).read_text()
