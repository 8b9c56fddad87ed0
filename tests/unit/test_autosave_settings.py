"""User input (settings form and JSON), exclude rules, the hub wiring and the OpenAPI document."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from core.profiles import ProfileError, load_profiles
from core.settings import load_settings
from service.autosave.excludes import check_file, format_size, secret_in, secret_name
from service.hubconfig import SERVICE_SCOPES, with_service_roles
from service.openapi import openapi_document
from service.settings import SettingsError, UserSettings, parse_form, parse_json


def test_json_settings_are_validated() -> None:
    assert parse_json({"enabled": True, "interval": 120, "repositories": ["project", {"path": "~/work/x/"}]}) == (
        True, 120, [{"path": "project", "remote": "origin"}, {"path": "work/x", "remote": "origin"}], None, None)
    parsed = parse_json({"clone": ["https://github.com/o/data.git", {"url": "https://github.com/o/x", "path": "w/x"}],
                         "strip_outputs": True})
    assert parsed.clone == [{"url": "https://github.com/o/data.git", "path": "data"},
                            {"url": "https://github.com/o/x", "path": "w/x"}]
    assert parsed.strip_outputs is True
    bad: Any
    for bad in ({"repositories": ["../etc"]}, {"repositories": ["/etc"]}, {"interval": "soon"}, {"enabled": "yes"},
                {"surprise": 1}, {"repositories": [{"path": "x", "remote": "a b"}]}, [],
                {"clone": ["ssh://github.com/o/x"]}, {"clone": ["https://ghp_x@github.com/o/x"]},
                {"clone": ["https://github.com/"]}, {"clone": [{"url": "https://github.com/o/x", "path": "../x"}]},
                {"clone": "https://github.com/o/x"}, {"strip_outputs": "yes"}):
        with pytest.raises(SettingsError):
            parse_json(bad)


def test_form_settings() -> None:
    form = {"enabled": ["on"], "interval_minutes": ["2.5"], "repositories": ["project\r\n\r\nnotes\n"],
            "clone": ["https://github.com/o/data.git\r\nhttps://github.com/o/x  work/x\n"], "strip_outputs": ["on"]}
    assert parse_form(form) == UserSettings(
        True, 150, [{"path": "project", "remote": "origin"}, {"path": "notes", "remote": "origin"}],
        [{"url": "https://github.com/o/data.git", "path": "data"}, {"url": "https://github.com/o/x", "path": "work/x"}],
        True)
    assert parse_form({}) == UserSettings(False, None, [], [], False)
    with pytest.raises(SettingsError):
        parse_form({"clone": ["https://github.com/o/x a b"]})


def test_a_profile_may_list_repositories_to_clone(tmp_path: Path) -> None:
    base = "profiles:\n  - display_name: Course\n    image: minimal\n    resources: {cpu: 1, memory: 1G}\n"
    (tmp_path / "p.yaml").write_text(base + "    clone: [https://github.com/course/material.git]\n")
    profiles = load_profiles([tmp_path / "p.yaml"], images=["minimal"])
    assert profiles.get("course") is not None and profiles.profiles[0].clone == ("https://github.com/course/material.git",)
    (tmp_path / "p.yaml").write_text(base)
    assert load_profiles([tmp_path / "p.yaml"], images=["minimal"]).profiles[0].clone == ()
    (tmp_path / "p.yaml").write_text(base + "    clone: [git@github.com:course/material.git]\n")
    with pytest.raises(ProfileError, match="clone"):
        load_profiles([tmp_path / "p.yaml"], images=["minimal"])


def test_exclude_rules() -> None:
    assert secret_name("config/.env") and secret_name(".env.production") and secret_name("keys/server.pem")
    assert not secret_name(".env.example") and not secret_name("id_rsa.pub") and not secret_name("env.py")
    assert secret_in(b"x = 'github_pat_" + b"a" * 30 + b"'") == "GitHub token"
    assert secret_in(b"print('hello')") is None
    assert check_file("a.csv", 20 * 1024 * 1024, lambda: b"") is not None
    assert check_file("a.csv", 10, lambda: b"1,2") is None
    assert format_size(10 * 1024 * 1024) == "10 MB" and format_size(1536) == "1.5 KB"


def test_service_role_is_least_privilege_and_users_get_access() -> None:
    roles = with_service_roles([{"name": "titan-admin", "scopes": ["admin:users"], "services": ["titan-admin"]}])
    service = next(r for r in roles if r["name"] == "titan-service")
    assert service["scopes"] == SERVICE_SCOPES == ["read:users", "list:users", "read:servers", "admin:auth_state",
                                                   "servers", "delete:servers", "shares", "access:servers",
                                                   "read:users:name"]
    assert service["services"] == ["titan"]
    user = next(r for r in roles if r["name"] == "user")
    assert "access:services!service=titan" in user["scopes"] and "self" in user["scopes"]


def test_autosave_settings_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "missing.yaml", environ={})
    assert settings.service["interval"] == 600 and settings.service["max_file_size_mb"] == 10
    (tmp_path / "titan.yaml").write_text("service:\n  intervall: 5\n")
    with pytest.raises(ValueError, match="intervall"):
        load_settings(tmp_path / "titan.yaml", environ={})


def test_the_old_autosave_section_is_read_as_service_with_a_warning(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "titan.yaml").write_text("autosave:\n  port: 8123\n  check_interval: 2\n")
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        settings = load_settings(tmp_path / "titan.yaml", environ={})
    assert settings.service["port"] == 8123 and settings.service["check_interval"] == 2
    assert settings.service["interval"] == 600  # the other defaults filled in as for service:
    assert any("autosave:" in r.getMessage() and "service:" in r.getMessage() for r in caplog.records)
    (tmp_path / "titan.yaml").write_text("autosave:\n  intervall: 5\n")  # validated like service:
    with pytest.raises(ValueError, match="intervall"):
        load_settings(tmp_path / "titan.yaml", environ={})
    (tmp_path / "titan.yaml").write_text("autosave:\n  port: 8123\nservice:\n  port: 8124\n")
    with pytest.raises(ValueError, match="keep only service:"):
        load_settings(tmp_path / "titan.yaml", environ={})


def test_openapi_document_lists_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = openapi_document("/services/titan/")
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/users/{user}/autosave", "/users/{user}/autosave/repos/{repo_id}",
                                 "/users/{user}/autosave/repos/{repo_id}/snapshot",
                                 "/users/{user}/autosave/repos/{repo_id}/restore",
                                 "/links", "/links/{link_id}", "/links/{link_id}/publish", "/shared",
                                 "/users/{user}/usage", "/admin/overview"}
    # every route of the running app under api/ is documented (the document's paths are under api/)
    from service.app import TitanService

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "unused")
    app = TitanService()
    app.db = app.autosave = None  # type: ignore[assignment]  # make_web_app only builds routes
    documented = {re.sub(r"\{[^}]+\}", "X", path) for path in doc["paths"]}
    routed = {re.sub(r"\([^)]*\)", "X", spec.matcher.regex.pattern.rstrip("$"))
              .removeprefix("/services/titan/api") for spec in app.make_web_app().default_router.rules[0]
              .target.rules if "/services/titan/api/" in spec.matcher.regex.pattern}
    assert routed - {"/openapi.json"} == documented
