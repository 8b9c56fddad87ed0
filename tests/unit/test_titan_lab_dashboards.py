"""titan_lab's relay of the Dask sidebar's dashboard panels: where a request goes, and where the
scheduler's redirects send the browser (the relay itself runs against a real hub and gateway in
tests/integration/test_lab_features.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "minimal" / "titan_lab"))

from titan_lab.dashboards import gateway_cluster_name, local_location, routes, upstream_url  # noqa: E402

GATEWAY = "http://10.213.4.1:8000/services/dask-gateway"
LOCAL = "/user/alice/dask/dashboard/9cf26473-8dff-4e27-95bf-9948ea51977d"


def test_a_panel_goes_to_the_gateways_route_for_the_cluster_keeping_its_path_and_query() -> None:
    assert upstream_url(GATEWAY, "9cf2647", "/individual-progress") == f"{GATEWAY}/clusters/9cf2647/individual-progress"
    assert upstream_url(GATEWAY + "/", "9cf2647", "/static/js/bokeh.min.js", "v=abc") == \
        f"{GATEWAY}/clusters/9cf2647/static/js/bokeh.min.js?v=abc"
    assert upstream_url(GATEWAY, "9cf2647", "") == f"{GATEWAY}/clusters/9cf2647/"


def test_a_name_or_path_cannot_climb_out_of_the_clusters_route() -> None:
    assert upstream_url(GATEWAY, "../api", "/x") == f"{GATEWAY}/clusters/..%2Fapi/x"
    assert upstream_url(GATEWAY, "c1", "/a b?c") == f"{GATEWAY}/clusters/c1/a%20b%3Fc"


def test_the_schedulers_redirects_land_on_this_route() -> None:
    upstream = f"{GATEWAY}/clusters/9cf2647"
    assert local_location("/status", upstream, LOCAL) == f"{LOCAL}/status"
    assert local_location(f"{upstream}/workers", upstream, LOCAL) == f"{LOCAL}/workers"
    assert local_location("status", upstream, LOCAL) == "status"  # relative: the browser resolves it here
    assert local_location("https://dask.org/", upstream, LOCAL) == "https://dask.org/"
    assert local_location("//elsewhere.example/x", upstream, LOCAL) == "//elsewhere.example/x"


def test_the_route_takes_dask_labextensions_path_and_only_sidebar_clusters_of_the_gateway() -> None:
    [(matcher, _)] = routes("/user/alice/")
    assert matcher.regex.pattern.startswith("/user/alice/dask/dashboard/")
    assert matcher.regex.match(f"{LOCAL}/individual-progress")
    assert matcher.regex.match(LOCAL)
    assert not matcher.regex.match("/user/alice/dask/dashboard/not-a-uuid/status")
    # No sidebar here (dask-labextension is not installed on the host): no cluster is a Gateway's.
    assert gateway_cluster_name("9cf26473-8dff-4e27-95bf-9948ea51977d") is None
