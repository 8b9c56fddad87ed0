"""Dashboard links end to end: the owner publishes a notebook as a Voila dashboard through the
Titan service, which starts her named dashboard server; a viewer the link allows opens the link,
gets a JupyterHub share of that one server and sees the app; others are refused; narrowing,
revoking and expiry end access at once."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
import requests

from tests.helpers import free_port, wait_for
from tests.integration.hub import Hub, running_hub
from tests.integration.test_dashboard import kernel_id_of, kernel_message, kernel_socket, replies, visit
from tests.integration.test_sharing import Api, home_of

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

TIMEOUT = 180
SHARE_ADMIN = "shareadmin"  # a hub admin: shares a server the hub's way (the automation token may not)


def dashboard_notebook() -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Sales dashboard"),
                nbformat.v4.new_code_cell("print('Dashboard says', 6 * 7)")]
    return nbformat.writes(nb)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("dashlinks"), {"service": {"check_interval": 2},
                                                            "hub": {"admin_users": [SHARE_ADMIN]}}) as running:
        yield running


@pytest.fixture(scope="module")
def alice(hub: Hub) -> Api:
    api = Api(hub, "alice")
    notebook = home_of(hub, "alice") / "dash.ipynb"
    notebook.write_text(dashboard_notebook())
    os.chown(notebook, 1000, 1000)
    for name in ("bob", "carol"):
        hub.admin.create_user(name)
    return api


def publish(alice: Api, **extra: Any) -> dict[str, Any]:
    return alice.publish(kind="dashboard", app="voila", path="dash.ipynb", profile="small", image="datascience",
                         **extra)


def server_model(hub: Hub, link: dict[str, Any]) -> dict[str, Any] | None:
    return hub.admin.server("alice", link["server"])


def open_link(hub: Hub, session: requests.Session, link: dict[str, Any]) -> requests.Response:
    """As a browser: the hub asks a viewer once to approve access to a server shared with them."""
    return visit(session, f"{hub.url}{link['url']}")


def shown(response: requests.Response) -> bool:
    return response.status_code == 200 and "Dashboard says 42" in re.sub(r"<[^>]+>", "", response.text)


def test_a_named_viewer_opens_the_dashboard_others_do_not(hub: Hub, alice: Api) -> None:
    link = publish(alice, access={"mode": "users", "users": ["bob"]})
    assert link["kind"] == "dashboard" and link["server"].startswith("dash-")
    wait_for(lambda: (s := server_model(hub, link)) and s.get("ready"), TIMEOUT, "the dashboard server")
    bob = hub.login("bob")
    direct = f"{hub.url}/user/alice/{link['server']}/"
    assert bob.get(direct, timeout=60).status_code == 403  # no share yet: the link is the way in
    page = open_link(hub, bob, link)
    assert shown(page), (page.status_code, page.url, page.text[:400])
    assert page.url.startswith(direct)
    assert shown(visit(bob, direct))  # the share lets bob back in directly, until the link says otherwise
    shares = hub.admin.api("GET", f"/shares/alice/{link['server']}").json()["items"]
    assert [s["user"]["name"] for s in shares if s.get("user")] == ["bob"]
    for path in ("api/contents", "api/kernels", "api/terminals", "lab"):
        assert bob.get(f"{direct}{path}", timeout=60).status_code == 403, path
    carol = hub.login("carol")
    refused = open_link(hub, carol, link)
    assert refused.status_code == 403 and "has not shared this link with you" in refused.text
    assert carol.get(direct, timeout=60).status_code == 403
    assert alice.call("GET", f"/links/{link['id']}").json()["views"] == 1

    # narrowing the access removes bob's share at once
    changed = alice.call("PATCH", f"/links/{link['id']}", json={"access": {"mode": "users", "users": ["carol"]}})
    assert changed.status_code == 200, changed.text
    assert not hub.admin.api("GET", f"/shares/alice/{link['server']}").json()["items"]
    # the dashboard server caches a viewer's access for at most 5 s
    wait_for(lambda: bob.get(direct, timeout=60).status_code == 403, 10, "bob's access to end")
    assert open_link(hub, bob, link).status_code == 403
    assert shown(open_link(hub, carol, link))

    # revoking: the server goes, and with it every way in
    assert alice.call("DELETE", f"/links/{link['id']}").json()["state"] == "revoked"
    wait_for(lambda: server_model(hub, link) is None, 60, "the dashboard server to be removed")
    assert carol.get(direct, timeout=60).status_code != 200
    assert open_link(hub, carol, link).status_code == 410


def test_an_expired_dashboard_link_ends_its_server_and_shares(hub: Hub, alice: Api) -> None:
    started = time.monotonic()
    link = publish(alice, access={"mode": "team"}, expires_at={"in_seconds": 60})
    carol = hub.login("carol")
    assert shown(open_link(hub, carol, link))
    assert time.monotonic() - started < 55, "the dashboard took too long to start for this test's expiry"
    wait_for(lambda: server_model(hub, link) is None, 90, "the expired dashboard's server to be removed")
    assert alice.call("GET", f"/links/{link['id']}").json()["state"] == "expired"
    assert carol.get(f"{hub.url}/user/alice/{link['server']}/", timeout=60).status_code != 200
    assert open_link(hub, carol, link).status_code == 410


def test_starting_a_dashboard_that_runs_already_is_no_error(hub: Hub, alice: Api) -> None:
    """The hub answers 400 to starting a running server; the service reads the server's model to
    tell that from a real refusal (never the message text)."""
    from service.hub import HubClient as ServiceHubClient
    from service.sharing.dashboards import Dashboards
    from service.sharing.errors import Invalid
    from service.sharing.links import SharingConfig
    from service.sharing.models import ShareLink

    link = publish(alice, access={"mode": "team"})
    wait_for(lambda: (s := server_model(hub, link)) and s.get("ready"), TIMEOUT, "the dashboard server")
    client = ServiceHubClient(api_url=f"{hub.url}/hub/api",
                              api_token=(hub.root / "state" / "admin-token").read_text().strip())
    dashboards = Dashboards(SharingConfig(), client)
    row = ShareLink(id=link["id"], owner="alice", server=link["server"], app="voila", path="dash.ipynb",
                    profile="small", image="datascience")
    again = hub.admin.api("POST", f"/users/alice/servers/{link['server']}", json={})
    assert again.status_code == 400, again.text  # the hub's answer to a running server
    asyncio.run(dashboards.start(row))  # no error: the server is running
    with pytest.raises(Invalid, match="could not start"):  # a 400 for a server that is not running is a refusal
        asyncio.run(dashboards.start(ShareLink(id="x" * 32, owner="alice", server="dash-nosuch", app="voila",
                                               path="dash.ipynb", profile="small", image="minimal")))
    hub.admin.api("DELETE", "/users/alice/servers/dash-nosuch", json={"remove": True})
    assert alice.call("DELETE", f"/links/{link['id']}").json()["state"] == "revoked"


def consent_asked(response: requests.Response) -> bool:
    """Whether the hub showed its "Authorize access" page on the way (it is a form of scopes)."""
    return any("/hub/api/oauth2/authorize" in r.url and r.status_code == 200 and 'name="scopes"' in r.text
               for r in (*response.history, response))


def test_a_viewer_goes_straight_to_the_dashboard_but_a_shared_lab_still_asks(hub: Hub, alice: Api) -> None:
    link = publish(alice, access={"mode": "users", "users": ["carol"]})
    wait_for(lambda: (s := server_model(hub, link)) and s.get("ready"), TIMEOUT, "the dashboard server")
    carol = hub.login("carol")
    page = carol.get(f"{hub.url}{link['url']}", timeout=TIMEOUT)  # no consent step answered here
    assert shown(page), (page.status_code, page.url, page.text[:400])
    assert not consent_asked(page)
    # The boundary: a JupyterLab server shared with her the hub's way still asks her first.
    hub.admin.spawn("alice", "lab2", {"profile": "small"}, timeout=TIMEOUT)
    try:
        hub.admin.create_user(SHARE_ADMIN)
        admin = requests.Session()
        admin.headers["Authorization"] = f"token {hub.admin.user_token(SHARE_ADMIN)}"
        shared = admin.post(f"{hub.url}/hub/api/shares/alice/lab2", json={"user": "carol"}, timeout=60)
        assert shared.status_code == 200, shared.text
        lab = carol.get(f"{hub.url}/user/alice/lab2/lab", timeout=TIMEOUT)
        assert consent_asked(lab), (lab.status_code, lab.url)
        assert "/user/alice/lab2/" not in lab.url
    finally:
        hub.admin.api("DELETE", "/users/alice/servers/lab2", json={"remove": True})
    assert alice.call("DELETE", f"/links/{link['id']}").json()["state"] == "revoked"


def test_bad_dashboard_requests_are_400(alice: Api) -> None:
    for body, message in (({"app": "jupyterlab"}, "app must be one of"),
                          ({"path": "app.py"}, "not a notebook"),
                          ({"access": {"mode": "public"}}, "public links are turned off"),
                          ({"image": "minimal"}, "cannot run voila dashboards")):
        request = {"kind": "dashboard", "app": "voila", "path": "dash.ipynb", "profile": "small",
                   "image": "datascience", **body}
        response = alice.call("POST", "/links", json=request)
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["message"], (body, response.text)


@pytest.fixture(scope="module")
def public_hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    port = free_port()
    with running_hub(tmp_path_factory.mktemp("publicdash"),
                     {"sharing": {"public_links": True, "public_dashboard_port": port}}) as running:
        running.extra["public_origin"] = f"http://127.0.0.1:{port}"
        yield running


def test_a_public_dashboard_is_served_on_its_own_origin_and_nothing_else_is(public_hub: Hub) -> None:
    hub = public_hub
    owner = Api(hub, "alice")
    notebook = home_of(hub, "alice") / "dash.ipynb"
    notebook.write_text(dashboard_notebook())
    os.chown(notebook, 1000, 1000)
    link = publish(owner, access={"mode": "public"})
    origin = hub.extra["public_origin"]
    assert link["public_url"] == f"{origin}/d/{link['id']}"
    visitor = requests.Session()  # not logged in anywhere
    page = visitor.get(link["public_url"], timeout=TIMEOUT)
    assert shown(page), (page.status_code, page.url, page.text[:300])
    assert page.url.startswith(f"{origin}/user/alice/{link['server']}/")
    assert not any(c.name.startswith("jupyterhub") for c in visitor.cookies)
    server = f"{origin}/user/alice/{link['server']}/"
    for path in ("api/contents", "api/kernels", "api/terminals", "lab", "files/dash.ipynb"):
        assert visitor.get(server + path, timeout=60).status_code == 403, path
    for path in ("/user/alice/api/contents", "/user/alice/", "/hub/api/users", "/hub/home",
                 "/services/titan/links", f"/user/alice/{link['server']}x/"):
        assert visitor.get(origin + path, timeout=60).status_code == 404, path
    # on the hub's own origin the same dashboard needs a login
    landed = visitor.get(f"{hub.url}/user/alice/{link['server']}/", timeout=60)
    assert "/hub/login" in landed.url and "Dashboard says" not in landed.text
    # the kernel's websocket goes both ways through the origin (core.relay), and closes once the link ends
    kernel = kernel_id_of(page.text)

    async def kernel_socket_then_revoke() -> tuple[list[str], list[str], str]:
        conn = await kernel_socket(f"{server}api/kernels/{kernel}/channels", visitor, origin)
        conn.write_message(kernel_message("kernel_info_request", {}))
        info = await replies(conn, 10)
        state = owner.call("DELETE", f"/links/{link['id']}").json()["state"]  # revoking ends it at once
        return info, await replies(conn, 20), state

    info, after, state = asyncio.run(kernel_socket_then_revoke())
    assert "kernel_info_reply" in info, info
    assert state == "revoked" and after and after[-1] == "<closed>", (state, after)
    assert visitor.get(server, timeout=60).status_code == 404
    assert visitor.get(link["public_url"], timeout=60).status_code == 410
