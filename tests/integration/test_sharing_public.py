"""Public links, on a hub whose admin turned them on (and allows one site to embed reports):
an anonymous visitor sees the public report and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.integration.hub import Hub, running_hub
from tests.integration.test_sharing import Api, home_of, notebook

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

EMBEDDER = "https://intranet.example.org"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("public"),
                        {"sharing": {"public_links": True, "frame_ancestors": [EMBEDDER]}}) as running:
        yield running


@pytest.fixture(scope="module")
def alice(hub: Hub) -> Api:
    api = Api(hub, "alice")
    (home_of(hub, "alice") / "public.ipynb").write_text(notebook("Open data"))
    (home_of(hub, "alice") / "private.ipynb").write_text(notebook("Team only data"))
    return api


def test_an_anonymous_visitor_sees_a_public_report_and_nothing_else(hub: Hub, alice: Api) -> None:
    public = alice.publish(path="public.ipynb", access={"mode": "public"})
    team = alice.publish(path="private.ipynb", access={"mode": "team"})
    anonymous = requests.Session()
    page = anonymous.get(f"{hub.url}{public['url']}", timeout=60, allow_redirects=False)
    assert page.status_code == 200 and "Open data" in page.text
    assert f"frame-ancestors {EMBEDDER}" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    assert not any(c.name.startswith("jupyterhub") for c in anonymous.cookies)  # no session was made
    # nothing else: not the team link, not the owner's pages, not the API, not the hub, not her server
    for path in (team["url"], "/services/titan/links", "/services/titan/shared", "/hub/home",
                 "/user/alice/api/contents", "/hub/api/users"):
        response = anonymous.get(f"{hub.url}{path}", timeout=60, allow_redirects=False)
        assert response.status_code in (302, 403), (path, response.status_code)
        if response.status_code == 302:  # ends on the login page
            landed = anonymous.get(f"{hub.url}{path}", timeout=60)
            assert "/hub/login" in landed.url and "Team only data" not in landed.text, (path, landed.url)
    assert anonymous.get(f"{hub.url}/services/titan/api/links", timeout=60).status_code == 403
    assert anonymous.get(f"{hub.url}{public['url']}", timeout=60).status_code == 200
    assert alice.call("GET", f"/links/{public['id']}").json()["views"] == 2


def test_public_dashboards_are_refused_with_a_reason(alice: Api) -> None:
    response = alice.call("POST", "/links", json={"kind": "dashboard", "path": "public.ipynb",
                                                  "access": {"mode": "public"}})
    assert response.status_code == 400 and "public dashboards" in response.json()["message"]
