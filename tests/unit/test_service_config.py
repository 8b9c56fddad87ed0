"""The Titan service assembled from its configuration file: the hub starts ``python -m service -f
service/config.py``, which reads titan.yaml; each setting lands on the one documented trait of the
part that owns it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitType
from traitlets.config import Configurable

from core.settings import load_settings
from service import hubconfig
from service.app import TitanService

TITAN_YAML = """
deployment: cfgtest
hub: {public_url: "https://titan.example.org"}
service:
  port: 8123
  check_interval: 3
  interval: 900
  min_interval: 30
  max_file_size_mb: 2
  max_body_mb: 4
  branch_template: "saved/{user}/{server}"
  log_level: DEBUG
sharing: {public_links: true, guess_limit: 7, public_dashboard_port: 8130}
gateway: {api_port: 8111}
"""


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings = tmp_path / "titan.yaml"
    settings.write_text(TITAN_YAML)
    monkeypatch.setenv("TITAN_SETTINGS", str(settings))
    monkeypatch.setenv("TITAN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TITAN_ADDRESS", "10.213.0.1")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "unused")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://10.213.0.1:8081/hub/api")
    return tmp_path


def test_the_service_is_assembled_from_its_config_file(service_env: Path) -> None:
    app = TitanService()
    app.initialize(["-f", str(hubconfig.CONFIG_FILE)])
    assert (app.ip, app.port, app.max_body_mb) == ("10.213.0.1", 8123, 4.0)
    assert app.state_dir == str(service_env / "state" / "service")
    assert app.db_url == f"sqlite:///{service_env / 'state' / 'service' / 'titan-service.sqlite'}"
    assert app.public_links and app.guess_limit == 7 and app.public_dashboard_port == 8130
    assert app.hub_public_url == "https://titan.example.org"
    assert app.log_level == 10  # DEBUG
    assert app.watcher.interval == 3.0
    assert (app.autosave.default_interval, app.autosave.min_interval) == (900, 30)
    assert app.autosave.max_file_size == 2 * 1024 * 1024
    assert app.autosave.branch_template == "saved/{user}/{server}"
    assert app.autosave.github_url == "https://github.com"
    assert app.docker.deployment == "cfgtest"
    assert app.docker.home_volume_template == "cfgtest-home-{username}"  # nothing recorded yet: the default
    assert app.hub.api_url == "http://10.213.0.1:8081/hub/api"
    assert app.operations.gateway_url == "http://127.0.0.1:8111"
    # one hub client and one Docker client, shared by every part
    assert app.autosave.hub is app.hub and app.operations.hub is app.hub and app.sharing.dashboards.hub is app.hub
    assert app.watcher.hub is app.hub


def test_the_command_line_wins_over_the_file(service_env: Path) -> None:
    app = TitanService()
    app.initialize(["-f", str(hubconfig.CONFIG_FILE), "--TitanService.port=8124", "--HubWatcher.interval=1"])
    assert app.port == 8124 and app.watcher.interval == 1.0


def test_the_hub_starts_the_service_with_its_config_file_and_no_settings_flags(service_env: Path) -> None:
    settings = load_settings()
    entry = hubconfig.service(settings, "10.213.0.1")
    command = entry["command"]
    assert command[-4:] == ["-m", "service", "-f", str(hubconfig.CONFIG_FILE)]
    assert not [word for word in command if word.startswith(("--TitanService", "--Operations"))]
    assert entry["environment"]["TITAN_ADDRESS"] == "10.213.0.1"
    assert entry["environment"]["TITAN_SETTINGS"] == settings.source
    assert entry["url"] == "http://10.213.0.1:8123"


def test_every_setting_of_the_service_has_a_real_help_string() -> None:
    for part in [TitanService, *TitanService.classes]:
        assert isinstance(part, type) and issubclass(part, Configurable)
        traits: dict[str, TraitType[Any, Any]] = part.class_own_traits(config=True)
        for name, trait in traits.items():
            assert len(trait.help.split()) >= 5, f"{part.__name__}.{name} has no real help string"
