"""Live dashboards through the real hub, proxy and Docker: a named server of the owner that runs
only a Voila or Panel app (titan-dashboard in the datascience image), shared with JupyterHub's
shares.

One hub serves the module, with an admin user whose token creates and revokes the shares (the
default user role may not share). alice owns a JupyterLab server and two dashboard servers,
``dash1`` (Voila) and ``pan1`` (Panel); bob gets shares of both; carol gets none.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from tornado import httpclient, websocket

from tests.helpers import wait_for
from tests.integration.browser import ARTIFACTS, chromium
from tests.integration.hub import Hub, containers, dump_containers, exec_in, remove_deployment, start_hub, stop_hub
from tests.integration.pagecheck import foreign_requests

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

ADMIN = "dashadmin"
TIMEOUT = 120
VOILA_TEXT = "titan-dash-ok-42"  # printed by the notebook's kernel; the source only computes it
PANEL_TEXT = "titan-panel-42"
NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
               "source": ["print('titan-dash' + '-ok-' + str(6 * 7))"]}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}
PANEL_APP = "import panel as pn\n\npn.panel('titan-' + 'panel-' + str(6 * 7)).servable()\n"


@dataclass
class Setup:
    hub: Hub
    alice: str
    bob: str
    carol: str
    lab_container: str
    admin_token: str

    def url(self, path: str) -> str:
        return f"{self.hub.url}{path}"

    def share(self, server: str, user: str) -> None:
        response = requests.post(self.url(f"/hub/api/shares/{self.alice}/{server}"), json={"user": user},
                                 headers={"Authorization": f"token {self.admin_token}"}, timeout=30)
        assert response.status_code == 200, response.text

    def revoke_all(self, server: str) -> None:
        response = requests.delete(self.url(f"/hub/api/shares/{self.alice}/{server}"),
                                   headers={"Authorization": f"token {self.admin_token}"}, timeout=30)
        assert response.status_code == 204, response.text


def body_has(driver: Any, text: str) -> bool:
    """WebDriverWait's condition: the page's body shows ``text``."""
    from selenium.webdriver.common.by import By

    return text in driver.find_element(By.TAG_NAME, "body").text


def dashboard_options(app: str, path: str, profile: str = "small", image: str = "datascience") -> dict[str, Any]:
    options: dict[str, Any] = {"profile": profile, "dashboard": {"app": app, "path": path}}
    if image:
        options["image"] = image
    return options


def container_of(hub: Hub, user: str, server: str) -> dict[str, Any]:
    found = [c for c in containers(hub.deployment) if c["Config"]["Labels"].get("titan.owner") == user
             and c["Config"]["Labels"].get("titan.server") == server]
    assert len(found) == 1, f"expected one container for {user}/{server}, found {len(found)}"
    return found[0]


def write_home_file(container: str, path: str, content: str) -> None:
    encoded = base64.b64encode(content.encode()).decode()
    script = ("import base64, pathlib, sys; p = pathlib.Path('/home/jovyan', sys.argv[1]); "
              "p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(base64.b64decode(sys.argv[2]))")
    written = exec_in(container, "python3", "-c", script, path, encoded)
    assert written.returncode == 0, written.stderr


def visit(session: requests.Session, url: str, **kwargs: Any) -> requests.Response:
    """GET ``url`` as a browser would, approving the hub's OAuth consent page if it shows one."""
    response = session.get(url, timeout=TIMEOUT, **kwargs)
    if "/hub/api/oauth2/authorize" in response.url and response.status_code == 200 and 'name="scopes"' in response.text:
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', response.text)
        assert xsrf is not None
        scopes = [html.unescape(s) for s in re.findall(r'name="scopes" value="([^"]+)"', response.text)]
        response = session.post(response.url, data={"_xsrf": html.unescape(xsrf.group(1)), "scopes": scopes},
                                timeout=TIMEOUT, **kwargs)
    return response


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str],
          request: pytest.FixtureRequest) -> Iterator[Setup]:
    root: Path = tmp_path_factory.mktemp("dashhub")
    hub = start_hub(root, settings_overrides={"hub": {"admin_users": [ADMIN]}, "gateway": {"enabled": False},
                                              "service": {"enabled": False}})
    failed_before = request.session.testsfailed
    try:
        suffix = secrets.token_hex(2)
        alice, bob, carol = f"alice{suffix}", f"bob{suffix}", f"carol{suffix}"
        for name in (ADMIN, alice, bob, carol):
            hub.admin.create_user(name)
        admin_token = hub.admin.user_token(ADMIN)
        hub.admin.spawn(alice, "", {"profile": "small"}, timeout=TIMEOUT)  # her JupyterLab
        lab = container_of(hub, alice, "")["Name"].lstrip("/")
        write_home_file(lab, "dash.ipynb", json.dumps(NOTEBOOK))
        write_home_file(lab, "apps/app.py", PANEL_APP)
        yield Setup(hub=hub, alice=alice, bob=bob, carol=carol, lab_container=lab, admin_token=admin_token)
    finally:
        if request.session.testsfailed > failed_before:
            print("\n".join(dump_containers(hub.deployment)))
            print("--- hub log ---\n" + hub.log_tail(120))
        stop_hub(hub)
        remove_deployment(hub.deployment)


@pytest.fixture(scope="module")
def voila(setup: Setup) -> Setup:
    setup.hub.admin.spawn(setup.alice, "dash1", dashboard_options("voila", "dash.ipynb"), timeout=TIMEOUT)
    setup.share("dash1", setup.bob)
    return setup


@pytest.fixture(scope="module")
def panel(setup: Setup) -> Setup:
    setup.hub.admin.spawn(setup.alice, "pan1", dashboard_options("panel", "apps/app.py"), timeout=TIMEOUT)
    setup.share("pan1", setup.bob)
    return setup


@pytest.fixture(scope="module")
def bob_session(setup: Setup) -> requests.Session:
    return setup.hub.login(setup.bob)


# ---------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(("options", "message"), [
    (dashboard_options("jupyterlab", "dash.ipynb"), "Dashboard app 'jupyterlab' is not offered"),
    (dashboard_options("voila", "../etc/passwd"), "no empty, '.' or '..' parts"),
    (dashboard_options("voila", "/abs.ipynb"), "must be relative to your home"),
    (dashboard_options("voila", "app.py"), "Voila dashboards serve .ipynb files"),
    (dashboard_options("voila", "dash.ipynb", image=""),
     "The image of profile 'small' (minimal) cannot run voila dashboards; choose an environment with Voila"),
    (dashboard_options("panel", "apps/app.py", image="minimal"), "cannot run panel dashboards"),
])
def test_bad_dashboard_options_get_400_and_no_container(setup: Setup, options: dict[str, Any], message: str) -> None:
    response = setup.hub.admin.api("POST", f"/users/{setup.alice}/servers/bad", json=options)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert not [c for c in containers(setup.hub.deployment) if c["Config"]["Labels"].get("titan.server") == "bad"]
    server = setup.hub.admin.server(setup.alice, "bad")
    assert not server or not server.get("ready")


# ---------------------------------------------------------------------------- voila


def test_the_dashboard_container_runs_titan_dashboard_with_the_profiles_settings(voila: Setup) -> None:
    container = container_of(voila.hub, voila.alice, "dash1")
    assert container["Config"]["Cmd"] == ["titan-dashboard", "--app=voila", "--path=dash.ipynb"]
    labels = container["Config"]["Labels"]
    assert labels["titan.dashboard"] == "voila" and labels["titan.profile"] == "small"
    assert container["HostConfig"]["Memory"] == 2 * 1024**3
    assert container["HostConfig"]["NetworkMode"] == f"{voila.hub.deployment}-user-{voila.alice}"
    assert {m["Name"] for m in container["Mounts"] if m["Type"] == "volume"} == {
        f"{voila.hub.deployment}-home-{voila.alice}"}
    processes = exec_in(container["Name"].lstrip("/"), "ps", "-eo", "args")
    assert "jupyterhub-singleuser" not in processes.stdout and "jupyter-lab" not in processes.stdout


def test_the_shared_viewer_sees_the_rendered_dashboard(voila: Setup, bob_session: requests.Session) -> None:
    page = visit(bob_session, voila.url(f"/user/{voila.alice}/dash1/"))
    assert page.status_code == 200, page.text[:500]
    assert page.url.rstrip("/").endswith(f"/user/{voila.alice}/dash1")
    assert VOILA_TEXT in page.text
    assert "print(" not in page.text  # sources are stripped: the text came from the kernel


JUPYTER_PATHS = ["api/contents", "api/contents/dash.ipynb", "api/kernels", "api/sessions", "api/terminals",
                 "api/kernelspecs", "api/status", "terminals/1", "lab", "tree", "files/dash.ipynb",
                 "edit/dash.ipynb", "nbconvert/html/dash.ipynb", "voila/files/dash.ipynb"]


def test_the_viewer_gets_403_on_the_jupyter_api_of_the_dashboard_server(voila: Setup,
                                                                          bob_session: requests.Session) -> None:
    visit(bob_session, voila.url(f"/user/{voila.alice}/dash1/"))  # signed in to the server
    base = voila.url(f"/user/{voila.alice}/dash1/")
    for path in JUPYTER_PATHS:
        response = bob_session.get(base + path, timeout=30, allow_redirects=False)
        assert response.status_code == 403, (path, response.status_code, response.text[:200])
        assert '"content"' not in response.text
    assert bob_session.post(base + "api/kernels", json={"name": "python3"}, timeout=30).status_code == 403
    assert bob_session.put(base + "api/contents/x.txt", json={"type": "file", "format": "text", "content": "x"},
                           timeout=30).status_code in (403, 405)
    # The same with a token instead of the cookie, and for the owner herself.
    tokens = []
    for user in (voila.bob, voila.alice):
        tokens.append(voila.hub.admin.user_token(user))
        headers = {"Authorization": f"token {tokens[-1]}"}
        assert requests.get(base, headers=headers, timeout=TIMEOUT).status_code == 200
        for path in ("api/contents", "api/kernels", "api/terminals", "lab"):
            response = requests.get(base + path, headers=headers, timeout=30, allow_redirects=False)
            assert response.status_code == 403, (user, path, response.status_code)
    assert requests.get(base + "api", timeout=30).json().keys() == {"version"}  # the hub's readiness check
    assert requests.get(f"{base}?token={tokens[0]}", timeout=30, allow_redirects=False).status_code in (302, 403)
    logs = subprocess.run(["docker", "logs", container_of(voila.hub, voila.alice, "dash1")["Id"]],
                          capture_output=True, text=True, check=False)
    assert "oauth_callback" in logs.stderr + logs.stdout  # the log is there ...
    assert not [t for t in tokens if t in logs.stderr + logs.stdout]  # ... with no credential in it
    assert "code=" not in logs.stderr + logs.stdout


def test_the_viewer_cannot_reach_the_owners_other_server(voila: Setup, bob_session: requests.Session) -> None:
    token = voila.hub.admin.user_token(voila.bob)
    for path in ("api/contents", "api/kernels", "api/terminals", "lab"):
        url = voila.url(f"/user/{voila.alice}/{path}")
        by_token = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30, allow_redirects=False)
        assert by_token.status_code == 403, (path, by_token.status_code)
        by_cookie = visit(bob_session, url)
        assert by_cookie.status_code == 403, (path, by_cookie.status_code, by_cookie.url)
        assert '"content"' not in by_cookie.text


def test_a_user_without_a_share_gets_403(voila: Setup) -> None:
    carol = voila.hub.login(voila.carol)
    page = visit(carol, voila.url(f"/user/{voila.alice}/dash1/"))
    assert page.status_code == 403
    assert VOILA_TEXT not in page.text
    anonymous = requests.get(voila.url(f"/user/{voila.alice}/dash1/"), timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 403)
    assert VOILA_TEXT not in anonymous.text


def kernel_id_of(page: str) -> str:
    match = re.search(r'"kernelId"\s*:\s*"([0-9a-f-]{36})"', page)
    assert match, "no kernel id in the voila page"
    return match.group(1)


def kernel_message(msg_type: str, content: dict[str, Any]) -> str:
    msg_id = uuid.uuid4().hex
    return json.dumps({"header": {"msg_id": msg_id, "msg_type": msg_type, "username": "", "session": "t",
                                  "version": "5.3", "date": "2026-01-01T00:00:00Z"},
                       "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []})


async def kernel_socket(url: str, session: requests.Session, host_url: str) -> websocket.WebSocketClientConnection:
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    request = httpclient.HTTPRequest(url.replace("http://", "ws://"), headers={"Cookie": cookies, "Origin": host_url})
    return await websocket.websocket_connect(request)


async def replies(conn: websocket.WebSocketClientConnection, seconds: float) -> list[str]:
    """The msg_types the kernel sent back within ``seconds``; stops early if the socket closes."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(conn.read_message(), left)
        except TimeoutError:
            break
        if message is None:
            seen.append("<closed>")
            break
        if isinstance(message, str):
            seen.append(json.loads(message)["header"]["msg_type"])
    return seen


def test_the_kernel_socket_carries_widgets_but_no_code_and_closes_when_the_share_goes(
        voila: Setup, bob_session: requests.Session) -> None:
    """The last voila test: it revokes bob's share."""
    base = voila.url(f"/user/{voila.alice}/dash1/")
    page = visit(bob_session, base)
    kernel = kernel_id_of(page.text)

    async def scenario() -> tuple[list[str], list[str], list[str], float]:
        conn = await kernel_socket(f"{base}api/kernels/{kernel}/channels", bob_session, voila.hub.url)
        conn.write_message(kernel_message("kernel_info_request", {}))
        info = await replies(conn, 10)
        code = "open('/home/jovyan/pwned', 'w').write('x')"
        conn.write_message(kernel_message("execute_request", {"code": code, "silent": False}))
        executed = await replies(conn, 5)
        voila.revoke_all("dash1")
        revoked_at = time.monotonic()
        after = await replies(conn, 20)
        return info, executed, after, time.monotonic() - revoked_at

    info, executed, after, closed_in = asyncio.run(scenario())
    assert "kernel_info_reply" in info
    assert "execute_reply" not in executed and "execute_input" not in executed
    assert exec_in(voila.lab_container, "test", "-e", "/home/jovyan/pwned").returncode == 1
    assert after and after[-1] == "<closed>", after
    assert closed_in < 15
    wait_for(lambda: bob_session.get(base, timeout=30, allow_redirects=False).status_code == 403, 10,
             "bob to be refused once the share is revoked")
    assert VOILA_TEXT not in bob_session.get(base, timeout=30).text


# ---------------------------------------------------------------------------- panel


def test_a_panel_app_is_served_to_the_shared_viewer(panel: Setup, bob_session: requests.Session) -> None:
    container = container_of(panel.hub, panel.alice, "pan1")
    assert container["Config"]["Cmd"] == ["titan-dashboard", "--app=panel", "--path=apps/app.py"]
    assert container["Config"]["Labels"]["titan.dashboard"] == "panel"
    base = panel.url(f"/user/{panel.alice}/pan1/")
    page = visit(bob_session, base)
    assert page.status_code == 200, page.text[:500]
    assert page.url.endswith("/pan1/app"), page.url
    assert "bokeh" in page.text.lower()
    for path in ("api/contents", "api/kernels", "api/terminals", "terminals/1", "lab"):
        assert bob_session.get(base + path, timeout=30, allow_redirects=False).status_code == 403, path
    carol = visit(panel.hub.login(panel.carol), base)
    assert carol.status_code == 403


def test_a_browser_renders_both_dashboards(voila: Setup, panel: Setup) -> None:
    """Headless chromium (Debian's, through chromedriver) signs in and opens both dashboards; the
    Panel text only appears once Bokeh's websocket through titan-dashboard works."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    setup = panel
    viewer = "dave" + secrets.token_hex(2)
    setup.hub.admin.create_user(viewer)
    setup.share("pan1", viewer)
    setup.share("dash1", viewer)
    with chromium(TIMEOUT) as driver:
        driver.get(setup.url("/hub/login"))
        driver.find_element(By.NAME, "username").send_keys(viewer)
        driver.find_element(By.NAME, "password").send_keys("any")
        driver.find_element(By.CSS_SELECTOR, "form").submit()
        WebDriverWait(driver, 30).until(lambda d: "/hub/login" not in d.current_url)
        ARTIFACTS.mkdir(exist_ok=True)
        for server, text in (("dash1", VOILA_TEXT), ("pan1", PANEL_TEXT)):
            driver.get(setup.url(f"/user/{setup.alice}/{server}/"))
            if "/hub/api/oauth2/authorize" in driver.current_url:
                driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            # the page replaces its body while it loads: a stale element means "not yet"
            WebDriverWait(driver, TIMEOUT, ignored_exceptions=(StaleElementReferenceException,)).until(
                partial(body_has, text=text))
            time.sleep(2)  # let the page's websockets connect
            assert driver.save_screenshot(str(ARTIFACTS / f"dashboard-{server}.png"))
            # Nothing but the hub's host was asked for anything (Voila's Font Awesome comes from Voila).
            assert foreign_requests(driver, setup.hub.url) == [], server
            # Nothing the page asked of the server was refused or failed, and every websocket opened.
            # (The pages also log errors of their own, the same without titan-dashboard: the pyviz
            # extension's "Comm not found", Bokeh's 404 favicon.)
            severe = [e.get("message", "") for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            refused = [m for m in severe if "WebSocket" in m or (setup.hub.url in m and re.search(
                r"status of (40[13]|5\d\d)", m))]
            assert not refused, refused
