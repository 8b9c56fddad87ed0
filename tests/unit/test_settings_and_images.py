"""titan.yaml validation, the state directory's secrets, image tags and the port pool."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core.images import build_order, catalog, image_tag, recipe_hash
from core.settings import SettingsError, load_settings
from core.state import secret_file


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.yaml", environ={})
    assert settings.public_url == "http://127.0.0.1:8000"
    assert not settings.github_configured
    assert settings.named_server_limit_per_user == 3


def test_oauth_environment_variables_are_honoured(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.yaml",
                             environ={"OAUTH_CLIENT_ID": "id", "OAUTH_CLIENT_SECRET": "secret"})
    assert settings.github_configured


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "titan.yaml"
    path.write_text("hub:\n  public_url: http://127.0.0.1:9000\n  admn_users: [x]\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={})
    assert str(path) in str(caught.value) and "admn_users" in str(caught.value)


def test_secrets_are_created_0600_and_kept(tmp_path: Path) -> None:
    first = secret_file(tmp_path / "key")
    assert len(first) == 64
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600
    assert secret_file(tmp_path / "key") == first


def test_image_tags_follow_the_recipe() -> None:
    assert build_order(["datascience"]) == ["base", "minimal", "datascience"]
    tag = image_tag("minimal")
    assert tag.startswith("titan/minimal:") and len(tag.split(":")[1]) == 12
    assert recipe_hash("datascience") != recipe_hash("minimal")
    assert set(catalog()) >= {"base", "minimal", "datascience"}
    with pytest.raises(KeyError):
        image_tag("nosuch")


