"""Live dashboards, spawner side: the ``dashboard`` user option and the container it gives."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from core.capacity import HostCapacity
from core.images import catalog
from core.labels import LABEL_DASHBOARD
from core.profiles import ProfileSet
from spawner.container import build_container_settings
from spawner.dashboard import (
    Dashboard,
    DashboardError,
    check_image,
    dashboard_command,
    parse_dashboard,
)
from spawner.options import OptionsError, parse_form, resolve_selection

GIB = 1024**3
HOST = HostCapacity(cpus=2, memory=int(23.5 * GIB))
APPS = {"minimal": (), "datascience": ("voila", "panel")}


def test_the_catalog_says_which_images_serve_dashboards() -> None:
    assert catalog()["datascience"].dashboards == ("voila", "panel")
    assert catalog()["minimal"].dashboards == ()


@pytest.mark.parametrize(("raw", "expected"), [
    ({"app": "voila", "path": "dash.ipynb"}, Dashboard("voila", "dash.ipynb")),
    ({"app": "voila", "path": "reports/2026/Sales Q1.IPYNB"}, Dashboard("voila", "reports/2026/Sales Q1.IPYNB")),
    ({"app": "panel", "path": "apps/app.py"}, Dashboard("panel", "apps/app.py")),
    ({"app": "panel", "path": "apps/explore.ipynb"}, Dashboard("panel", "apps/explore.ipynb")),
    ({"app": "voila", "path": "..dots../x..y.ipynb"}, Dashboard("voila", "..dots../x..y.ipynb")),
    ({"app": "voila", "path": "é/ñ.ipynb"}, Dashboard("voila", "é/ñ.ipynb")),
])
def test_good_dashboards(raw: dict[str, Any], expected: Dashboard) -> None:
    assert parse_dashboard(raw) == expected


@pytest.mark.parametrize(("raw", "message"), [
    ("voila", "must be an object"),
    ({"app": "jupyterlab", "path": "a.ipynb"},
     "Dashboard app 'jupyterlab' is not offered. Choose one of: voila, panel"),
    ({"app": None, "path": "a.ipynb"}, "Dashboard app that is not offered"),
    ({"path": "a.ipynb"}, "is not offered"),
    ({"app": "voila"}, "must be a string, not NoneType"),
    ({"app": "voila", "path": 7}, "must be a string, not int"),
    ({"app": "voila", "path": ""}, "'path' is empty"),
    ({"app": "voila", "path": "../etc/passwd"}, "no empty, '.' or '..' parts"),
    ({"app": "voila", "path": "a/../../b.ipynb"}, "no empty, '.' or '..' parts"),
    ({"app": "voila", "path": "a/./b.ipynb"}, "no empty, '.' or '..' parts"),
    ({"app": "voila", "path": "a//b.ipynb"}, "no empty, '.' or '..' parts"),
    ({"app": "voila", "path": "a/"}, "no empty, '.' or '..' parts"),
    ({"app": "voila", "path": "/abs.ipynb"}, "must be relative to your home"),
    ({"app": "voila", "path": "/etc/passwd"}, "must be relative to your home"),
    ({"app": "voila", "path": "a\\b.ipynb"}, "must be relative to your home"),
    ({"app": "voila", "path": "a\x00.ipynb"}, "control characters"),
    ({"app": "voila", "path": "a\nb.ipynb"}, "control characters"),
    ({"app": "voila", "path": "a\u202eb.ipynb"}, "control characters"),
    ({"app": "voila", "path": "x" * 1020 + ".ipynb"}, "longer than 1024 characters"),
    ({"app": "voila", "path": "app.py"}, "Voila dashboards serve .ipynb files; 'app.py' is not one"),
    ({"app": "panel", "path": "notes.txt"}, "Panel dashboards serve .ipynb or .py files"),
    ({"app": "voila", "path": "reports/.ipynb"}, "is not one"),
    ({"app": "voila", "path": "a.ipynb", "port": 80}, "Unknown dashboard option(s): port"),
])
def test_bad_dashboards(raw: Any, message: str) -> None:
    with pytest.raises(DashboardError) as error:
        parse_dashboard(raw)
    assert message in str(error.value)


def test_a_path_of_exactly_1024_characters_is_accepted() -> None:
    path = "x" * (1024 - len(".ipynb")) + ".ipynb"
    assert parse_dashboard({"app": "voila", "path": path}).path == path


def test_only_images_that_serve_the_app_may_run_it() -> None:
    check_image(Dashboard("voila", "a.ipynb"), "small", "datascience", APPS)
    with pytest.raises(DashboardError) as error:
        check_image(Dashboard("voila", "a.ipynb"), "small", "minimal", APPS)
    assert str(error.value) == ("The image of profile 'small' (minimal) cannot run voila dashboards; "
                                "choose an environment with Voila (datascience).")


def test_the_gate_accepts_a_dashboard_next_to_the_profile(shipped: ProfileSet) -> None:
    options = {"profile": "small", "image": "datascience", "dashboard": {"app": "voila", "path": "dash.ipynb"}}
    selection = resolve_selection(shipped, options, "alice", [], HOST)
    assert selection.dashboard == Dashboard("voila", "dash.ipynb")
    assert selection.image == "datascience"
    plain = resolve_selection(shipped, {"profile": "small", "image": "datascience"}, "alice", [], HOST)
    assert plain.dashboard is None
    assert resolve_selection(shipped, {"profile": "small", "dashboard": None}, "alice", [], HOST).dashboard is None


@pytest.mark.parametrize(("options", "message"), [
    ({"profile": "small", "dashboard": {"app": "voila", "path": "dash.ipynb"}},
     "The image of profile 'small' (minimal) cannot run voila dashboards; choose an environment with Voila"),
    ({"profile": "small", "image": "datascience", "dashboard": {"app": "jupyterlab", "path": "a.ipynb"}},
     "Dashboard app 'jupyterlab' is not offered"),
    ({"profile": "small", "image": "datascience", "dashboard": {"app": "voila", "path": "../etc/passwd"}},
     "'..' parts"),
    ({"profile": "small", "image": "datascience", "dashboard": "dash.ipynb"}, "must be an object"),
])
def test_the_gate_refuses_bad_dashboards(shipped: ProfileSet, options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionsError) as error:
        resolve_selection(shipped, options, "alice", [], HOST)
    assert message in str(error.value)


def test_the_gate_uses_the_image_support_it_is_given(shipped: ProfileSet) -> None:
    options = {"profile": "small", "dashboard": {"app": "panel", "path": "app.py"}}
    selection = resolve_selection(shipped, options, "alice", [], HOST, image_dashboards={"minimal": ["panel"]})
    assert selection.dashboard == Dashboard("panel", "app.py")


def test_the_form_carries_a_dashboard() -> None:
    form = {"profile": ["small"], "profile-option-small--image": ["datascience"],
            "dashboard-app": ["voila"], "dashboard-path": [" reports/sales.ipynb "]}
    assert parse_form(form) == {"profile": "small", "image": "datascience",
                                "dashboard": {"app": "voila", "path": "reports/sales.ipynb"}}
    assert "dashboard" not in parse_form({"profile": ["small"], "dashboard-app": [""], "dashboard-path": [""]})


def test_a_dashboard_server_is_the_same_container_with_another_command(shipped: ProfileSet) -> None:
    base = {"profile": "medium", "image": "datascience"}
    plain = build_container_settings(resolve_selection(shipped, base, "alice", [], HOST), "titan/datascience:abc",
                                     "alice", "dash1", "titan", "titan-home-{username}", network="titan-user-alice")
    selection = resolve_selection(shipped, {**base, "dashboard": {"app": "panel", "path": "apps/app.py"}},
                                  "alice", [], HOST)
    dash = build_container_settings(selection, "titan/datascience:abc", "alice", "dash1", "titan",
                                    "titan-home-{username}", network="titan-user-alice")
    assert plain.command == ()
    assert dash.command == ("titan-dashboard", "--app=panel", "--path=apps/app.py")
    assert dash.labels == {**plain.labels, LABEL_DASHBOARD: "panel"}
    assert dash.environment == {**plain.environment, "TITAN_DASHBOARD_APP": "panel",
                                "TITAN_DASHBOARD_PATH": "apps/app.py"}
    same = {f.name for f in dataclasses.fields(plain)} - {"command", "labels", "environment"}
    assert {name: getattr(dash, name) for name in same} == {name: getattr(plain, name) for name in same}
    assert dash.mem_limit == 8 * GIB and dash.host_config["network_mode"] == "titan-user-alice"
    assert "device_requests" not in dash.host_config


def test_the_command_is_an_argument_list_never_a_shell_line() -> None:
    command = dashboard_command(Dashboard("voila", "a b/$(rm -rf ~);x.ipynb"))
    assert command == ("titan-dashboard", "--app=voila", "--path=a b/$(rm -rf ~);x.ipynb")
