"""What a JupyterLab user expects in Titan's images, on a real hub and real servers: widgets that work
in a Voila dashboard for its viewer, the Dask sidebar making and scaling clusters through Titan's
gateway, the server's memory against the profile's limit, the git panel, and pages that ask no
host but the hub's. Headless Debian chromium; screenshots in test-artifacts/."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from core.units import parse_memory
from tests.helpers import wait_for
from tests.integration.browser import ARTIFACTS, chromium, dev_login
from tests.integration.hub import Hub, containers, exec_in, running_hub
from tests.integration.pagecheck import foreign_requests

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

TIMEOUT = 180
ADMIN = "labadmin"
SLIDER_START = 5
WIDGETS_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "w1", "metadata": {}, "outputs": [],
               "source": [
                   "import ipywidgets as widgets\n",
                   f"slider = widgets.IntSlider(value={SLIDER_START}, min=0, max=20, description='n')\n",
                   "label = widgets.Label(value=f'double is {2 * slider.value}')\n",
                   "slider.observe(lambda change: setattr(label, 'value', f'double is {2 * change.new}'), "
                   "names='value')\n",
                   "widgets.VBox([slider, label])\n"]}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@dataclass
class Lab:
    hub: Hub
    alice: str
    bob: str
    alice_token: str
    admin_token: str

    def user_api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {token or self.alice_token}"}
        return requests.request(method, f"{self.hub.url}/user/{self.alice}/{path}", headers=headers,
                                timeout=TIMEOUT, **kwargs)


def server_container(hub: Hub, user: str, server: str) -> str:
    found = [c["Name"].lstrip("/") for c in containers(hub.deployment)
             if (c["Config"]["Labels"].get("titan.owner"), c["Config"]["Labels"].get("titan.server")) == (user, server)]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    """The module's hub (its containers' logs are printed when a test fails: conftest.dump_on_failure)."""
    with running_hub(tmp_path_factory.mktemp("labhub"), {"hub": {"admin_users": [ADMIN]},
                                                         "service": {"check_interval": 2}}) as running:
        yield running


@pytest.fixture(scope="module")
def lab(hub: Hub) -> Lab:
    suffix = secrets.token_hex(2)
    alice, bob = f"alice{suffix}", f"bob{suffix}"
    for name in (ADMIN, alice, bob):
        hub.admin.create_user(name)
    hub.admin.spawn(alice, "", {"profile": "small", "image": "datascience"}, timeout=TIMEOUT)
    return Lab(hub=hub, alice=alice, bob=bob, alice_token=hub.admin.user_token(alice),
               admin_token=hub.admin.user_token(ADMIN))


def test_the_server_reports_its_memory_against_the_profiles_limit(lab: Lab) -> None:
    metrics = wait_for(lambda: (r := lab.user_api("GET", "api/metrics/v1")).status_code == 200 and r.json(),
                       60, "the resource-usage metrics")
    assert metrics["limits"]["memory"]["rss"] == parse_memory("2G")  # the small profile's limit
    assert 0 < metrics["rss"] < parse_memory("2G")
    assert metrics["limits"]["memory"]["warn"] is False  # an idle server is no warning
    assert metrics["limits"]["cpu"] == {"cpu": 1.0} and metrics["cpu_count"] >= 1  # the profile's 1 CPU
    assert metrics["cpu_percent"] >= 0
    # Nobody else reads it: bob's token is refused by alice's server.
    bob_token = lab.hub.admin.user_token(lab.bob)
    assert lab.user_api("GET", "api/metrics/v1", token=bob_token).status_code == 403


def test_lab_loads_the_git_dask_widgets_and_resource_extensions(lab: Lab) -> None:
    page = lab.user_api("GET", "lab")
    assert page.status_code == 200
    config = json.loads(page.text.split('id="jupyter-config-data"', 1)[1].split(">", 1)[1].split("</script>", 1)[0])
    names = {extension["name"] for extension in config["federated_extensions"]}
    assert {"@jupyterlab/git", "dask-labextension", "@jupyter-widgets/jupyterlab-manager",
            "@jupyter-server/resource-usage"} <= names, sorted(names)
    settings = lab.user_api("GET", "git/settings", params={"version": "0.55.0"})
    assert settings.status_code == 200 and "gitVersion" in settings.json(), settings.text[:300]


def test_the_dask_sidebar_makes_scales_and_closes_a_gateway_cluster(lab: Lab) -> None:
    assert lab.user_api("GET", "dask/clusters").json() == []
    created = lab.user_api("PUT", "dask/clusters")
    assert created.status_code == 200, created.text[:500]
    cluster = created.json()
    try:
        # A Titan gateway cluster: its dashboard through the gateway's authenticated route.
        assert f"{lab.hub.url}/services/dask-gateway/clusters/" in cluster["dashboard_link"], cluster
        assert [c["id"] for c in lab.user_api("GET", "dask/clusters").json()] == [cluster["id"]]
        scaled = lab.user_api("PATCH", f"dask/clusters/{cluster['id']}", data=json.dumps({"workers": 2}))
        assert scaled.status_code == 200, scaled.text[:500]
        wait_for(lambda: lab.user_api("GET", f"dask/clusters/{cluster['id']}").json()["workers"] == 2, 120,
                 "two workers")
        # The gateway's own list (alice's token) shows the same cluster, as the owner's.
        gateway = requests.get(f"{lab.hub.url}/services/dask-gateway/api/v1/clusters/",
                               headers={"Authorization": f"jupyterhub {lab.alice_token}"}, timeout=60).json()
        assert len(gateway) == 1, gateway
        # Bob's token cannot reach alice's sidebar.
        bob_token = lab.hub.admin.user_token(lab.bob)
        assert lab.user_api("GET", "dask/clusters", token=bob_token).status_code == 403
    finally:
        closed = lab.user_api("DELETE", f"dask/clusters/{cluster['id']}")
    assert closed.status_code == 204, closed.text[:300]
    wait_for(lambda: not requests.get(f"{lab.hub.url}/services/dask-gateway/api/v1/clusters/",
                                      headers={"Authorization": f"jupyterhub {lab.alice_token}"}, timeout=60).json(),
             60, "the cluster to be gone")


def test_the_dask_sidebar_lists_a_cluster_made_from_a_notebook(lab: Lab) -> None:
    made = exec_in(server_container(lab.hub, lab.alice, ""), "python3", "-c",
                   "from dask_gateway import GatewayCluster\n"
                   "cluster = GatewayCluster(shutdown_on_close=False)\n"
                   "print(cluster.name)", user="jovyan")
    assert made.returncode == 0, made.stderr[-2000:]
    name = made.stdout.strip().splitlines()[-1]
    sidebar_id = str(uuid.UUID(hex=name))  # the sidebar's routes take UUID-shaped ids
    listed = wait_for(lambda: [c for c in lab.user_api("GET", "dask/clusters").json() if c["id"] == sidebar_id],
                      60, "the notebook's cluster in the sidebar")
    assert f"/services/dask-gateway/clusters/{name}/" in listed[0]["dashboard_link"], listed
    # Shutting it down from the sidebar shuts the cluster down, not only the sidebar's connection.
    assert lab.user_api("DELETE", f"dask/clusters/{sidebar_id}").status_code == 204
    wait_for(lambda: not requests.get(f"{lab.hub.url}/services/dask-gateway/api/v1/clusters/",
                                      headers={"Authorization": f"jupyterhub {lab.alice_token}"}, timeout=60).json(),
             60, "the cluster to be gone")
    assert lab.user_api("GET", "dask/clusters").json() == []


def test_lab_in_a_browser_shows_memory_git_and_dask(lab: Lab) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(TIMEOUT) as driver:
        dev_login(driver, lab.hub.url, lab.alice)
        driver.get(f"{lab.hub.url}/user/{lab.alice}/lab")
        # jupyter-resource-usage's status bar item: "Mem: <used> / <limit> MB" (the profile's 2 GiB).
        memory = WebDriverWait(driver, TIMEOUT).until(
            lambda d: next((e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-StatusBar-Widget")
                            if "Mem" in e.text and "/" in e.text), None))
        assert "2048" in memory.replace(",", "") or "2.00 GB" in memory or "2 GB" in memory, memory
        tabs: list[str] = WebDriverWait(driver, TIMEOUT).until(
            lambda d: [t.get_attribute("title") or "" for t in d.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab")])
        assert any("Git" in t for t in tabs) and any("Dask" in t for t in tabs), tabs
        time.sleep(2)
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "lab-status-bar.png"))
        assert "Jupyter news" not in driver.find_element(By.TAG_NAME, "body").text  # no news feed offered
        assert foreign_requests(driver, lab.hub.url) == []


def test_a_widget_dashboard_answers_its_viewer(lab: Lab) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    lab_container = server_container(lab.hub, lab.alice, "")
    written = exec_in(lab_container, "python3", "-c",
                      "import json, sys; open('/home/jovyan/widgets.ipynb', 'w').write(sys.argv[1])",
                      json.dumps(WIDGETS_NOTEBOOK))
    assert written.returncode == 0, written.stderr
    lab.hub.admin.spawn(lab.alice, "wid1", {"profile": "small", "image": "datascience",
                                            "dashboard": {"app": "voila", "path": "widgets.ipynb"}}, timeout=TIMEOUT)
    shared = requests.post(f"{lab.hub.url}/hub/api/shares/{lab.alice}/wid1", json={"user": lab.bob},
                           headers={"Authorization": f"token {lab.admin_token}"}, timeout=30)
    assert shared.status_code == 200, shared.text
    with chromium(TIMEOUT) as driver:
        dev_login(driver, lab.hub.url, lab.bob)
        driver.get(f"{lab.hub.url}/user/{lab.alice}/wid1/")
        if "/hub/api/oauth2/authorize" in driver.current_url:
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        label = f"double is {2 * SLIDER_START}"
        # After the authorize form the page reloads: a body read during the reload goes stale.
        WebDriverWait(driver, TIMEOUT, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: label in d.find_element(By.TAG_NAME, "body").text)
        handle = WebDriverWait(driver, 30).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".widget-slider .noUi-handle, .noUi-handle")), None))
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        moved = f"double is {2 * (SLIDER_START + 1)}"
        WebDriverWait(driver, 30).until(lambda d: moved in d.find_element(By.TAG_NAME, "body").text)
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "voila-widgets.png"))
        assert foreign_requests(driver, lab.hub.url) == []
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert any("fontawesome/css/all.min.css" in url for url in loaded), loaded


# ---------------------------------------------------------------------------- Titan inside Lab (titan-lab)

SHARE_NOTEBOOK = {
    "cells": [{"cell_type": "markdown", "id": "m1", "metadata": {},
               "source": ["# Quarterly numbers, shared from Lab"]}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def write_in_home(lab: Lab, path: str, text: str) -> None:
    written = exec_in(server_container(lab.hub, lab.alice, ""), "python3", "-c",
                      "import pathlib, sys; p = pathlib.Path('/home/jovyan', sys.argv[1]); "
                      "p.parent.mkdir(parents=True, exist_ok=True); p.write_text(sys.argv[2])", path, text,
                      user="jovyan")
    assert written.returncode == 0, written.stderr


def open_in_lab(driver: Any, lab: Lab, path: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    dev_login(driver, lab.hub.url, lab.alice)
    driver.get(f"{lab.hub.url}/user/{lab.alice}/lab/tree/{path}")
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".titan-lab-share-button"))


def status_text(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return str(found[0].text) if found else ""


def test_lab_shows_the_servers_profile_and_limits(lab: Lab) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    model = lab.user_api("GET", "titan/api/server").json()
    assert (model["profile"], model["cpu"], model["memory"]) == ("small", 1.0, parse_memory("2G")), model
    bob_token = lab.hub.admin.user_token(lab.bob)
    assert lab.user_api("GET", "titan/api/server", token=bob_token).status_code == 403
    with chromium(TIMEOUT) as driver:
        dev_login(driver, lab.hub.url, lab.alice)
        driver.get(f"{lab.hub.url}/user/{lab.alice}/lab")
        shown = WebDriverWait(driver, TIMEOUT).until(lambda d: status_text(d, ".titan-lab-server"))
        assert shown == "small · 1 CPU · 2 GB", shown


def test_share_in_lab_makes_a_link_another_user_opens(lab: Lab) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    write_in_home(lab, "reports/q3.ipynb", json.dumps(SHARE_NOTEBOOK))
    with chromium(TIMEOUT) as driver:
        open_in_lab(driver, lab, "reports/q3.ipynb")
        driver.find_element(By.CSS_SELECTOR, ".titan-lab-share-button").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".titan-lab-share-form"))
        Select(driver.find_element(By.NAME, "expiry")).select_by_value("86400")
        driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
        anchor = WebDriverWait(driver, TIMEOUT).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".titan-lab-link")), None))
        url = anchor.get_attribute("href")
        access = status_text(driver, ".titan-lab-link-access")
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "lab-share-link.png"))
        assert url.startswith(f"{lab.hub.url}/services/titan/"), url
        assert access.startswith("Open to everyone who can log in, until "), access
        driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()

        # The service's refusal, in its own words: a dashboard needs an image with Voila, and the
        # small profile's own image (minimal) has none.
        driver.find_element(By.CSS_SELECTOR, ".titan-lab-share-button").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".titan-lab-share-form"))
        Select(driver.find_element(By.NAME, "kind")).select_by_value("dashboard")
        driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
        refusal = WebDriverWait(driver, TIMEOUT).until(
            lambda d: next((e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog-content")
                            if "Not shared" in e.text), None))
        assert "cannot run voila dashboards" in refusal, refusal
        assert foreign_requests(driver, lab.hub.url) == []
    bob = lab.hub.login(lab.bob)
    report = bob.get(url, timeout=60)
    assert report.status_code == 200 and "Quarterly numbers, shared from Lab" in report.text, report.status_code
    assert requests.get(url, timeout=60, allow_redirects=False).status_code in (302, 401, 403)  # not anonymous


def test_the_autosave_status_follows_a_snapshot(lab: Lab) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    container = server_container(lab.hub, lab.alice, "")
    made = exec_in(container, "bash", "-c",
                   "set -e; mkdir -p ~/proj && cd ~/proj && git init -q -b main && "
                   "git -c user.email=a@b -c user.name=a commit -q --allow-empty -m start", user="jovyan")
    assert made.returncode == 0, made.stderr
    write_in_home(lab, "proj/notes.ipynb", json.dumps(SHARE_NOTEBOOK))
    service = requests.Session()
    service.headers["Authorization"] = f"token {lab.alice_token}"
    api = f"{lab.hub.url}/services/titan/api/users/{lab.alice}/autosave"
    saved = service.put(api, json={"enabled": True, "interval": 3600, "repositories": [{"path": "proj"}]}, timeout=60)
    assert saved.status_code == 200, saved.text
    repo = saved.json()["repositories"][0]
    with chromium(TIMEOUT) as driver:
        open_in_lab(driver, lab, "proj/notes.ipynb")

        def shown_commit(d: Any) -> str:
            found = d.find_elements(By.CSS_SELECTOR, ".titan-lab-autosave")
            return str(found[0].get_attribute("data-last-commit") or "") if found else ""

        # The service's first pass snapshots at once; the item follows the notebook's repository.
        first = WebDriverWait(driver, TIMEOUT).until(shown_commit)
        write_in_home(lab, "proj/notes.ipynb", json.dumps({**SHARE_NOTEBOOK, "metadata": {"changed": True}}))
        snapshot = service.post(f"{api}/repos/{repo['id']}/snapshot", timeout=120)
        assert snapshot.status_code == 200, snapshot.text
        second = snapshot.json()["last_commit"]
        assert second and second != first, snapshot.json()
        WebDriverWait(driver, 30).until(lambda d: shown_commit(d) == second)
        after = status_text(driver, ".titan-lab-autosave")
        assert after.startswith("Autosave: saved "), after
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "lab-autosave-status.png"))
    # A dev login holds no GitHub token: the snapshot stays on the server, and the item says why.
    assert after.endswith("· sign in again to push"), after


# ---------------------------------------------------------------------------- the Dask sidebar's dashboard panels

#: A cluster with one worker, some work done and a minute and a half of sleeps left running after the
#: notebook's client goes (what the Progress panel then shows).
MAKE_CLUSTER_WITH_WORK = """
import time
from dask_gateway import GatewayCluster
from distributed import fire_and_forget
import dask.array as da
cluster = GatewayCluster(shutdown_on_close=False)
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=90)
print(float(da.ones((2000, 2000), chunks=250).sum().compute()))
fire_and_forget(client.map(time.sleep, [1.0] * 90, pure=False))
time.sleep(1)
print(cluster.name)
"""

#: From inside a server: the Gateway's answer to its token asking for a cluster's plots (argv[1]).
ASK_GATEWAY_FOR_PLOTS = """
import os, sys, urllib.request, urllib.error
url = f"{os.environ['DASK_GATEWAY__ADDRESS']}/clusters/{sys.argv[1]}/individual-plots.json"
request = urllib.request.Request(url, headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]})
try:
    print(urllib.request.urlopen(request, timeout=30).status)
except urllib.error.HTTPError as error:
    print(error.code)
"""

#: Run inside the panel's iframe: true once it holds a rendered bokeh document: Bokeh loaded (its
#: scripts came through the relay), a document made from the server's session (its websocket works)
#: and a canvas drawn in the root's shadow DOM.
BOKEH_RENDERED = """
if (!window.Bokeh || !window.Bokeh.documents || window.Bokeh.documents.length === 0) return false;
const canvas = (node) => {
  if (!node) return false;
  if (node.tagName === 'CANVAS') return true;
  if (node.shadowRoot && canvas(node.shadowRoot)) return true;
  return Array.from(node.children || []).some(canvas);
};
return window.Bokeh.documents[0].roots().length > 0 && canvas(document.body);
"""

#: Run inside the panel's iframe: the names of the document's data columns that hold a task named
#: "sleep" (live data from the scheduler, through the session's websocket).
COLUMNS_WITH_SLEEP = """
const found = [];
for (const model of window.Bokeh.documents[0].all_models) {
  const data = model.data;
  if (!data || typeof data !== 'object') continue;
  for (const [key, values] of (data instanceof Map ? [...data.entries()] : Object.entries(data))) {
    if (Array.isArray(values) && values.some(v => typeof v === 'string' && v.includes('sleep'))) found.push(key);
  }
}
return found;
"""


@pytest.fixture(scope="module")
def cluster_with_work(lab: Lab) -> Iterator[tuple[str, str]]:
    """A Gateway cluster of alice's made from a notebook, one worker, some work done: (name, sidebar id)."""
    made = exec_in(server_container(lab.hub, lab.alice, ""), "python3", "-c", MAKE_CLUSTER_WITH_WORK, user="jovyan")
    assert made.returncode == 0, made.stderr[-2000:]
    assert made.stdout.splitlines()[-2] == str(2000.0 * 2000.0), made.stdout
    name = made.stdout.strip().splitlines()[-1]
    sidebar_id = str(uuid.UUID(hex=name))
    wait_for(lambda: [c for c in lab.user_api("GET", "dask/clusters").json() if c["id"] == sidebar_id], 60,
             "the notebook's cluster in the sidebar")
    yield name, sidebar_id
    lab.user_api("DELETE", f"dask/clusters/{sidebar_id}")
    wait_for(lambda: not requests.get(f"{lab.hub.url}/services/dask-gateway/api/v1/clusters/",
                                      headers={"Authorization": f"jupyterhub {lab.alice_token}"}, timeout=60).json(),
             60, "the cluster to be gone")


def test_the_dask_sidebar_opens_a_gateway_clusters_dashboard_panel(lab: Lab,
                                                                   cluster_with_work: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.integration.pagecheck import enable_network_log, requests_seen

    _, sidebar_id = cluster_with_work
    # The plots the panel offers, through this server's relay to the Gateway (alice's own token).
    plots = lab.user_api("GET", f"dask/dashboard/{sidebar_id}/individual-plots.json")
    assert plots.status_code == 200, plots.text[:500]
    assert plots.json()["Individual Progress"] == "/individual-progress", plots.json()
    # The scheduler's redirect from its root lands on this route, not on the hub's root.
    root = lab.user_api("GET", f"dask/dashboard/{sidebar_id}/", allow_redirects=False)
    assert root.status_code in (301, 302), root.status_code
    assert root.headers["Location"] == f"/user/{lab.alice}/dask/dashboard/{sidebar_id}/status", root.headers
    with chromium(TIMEOUT) as driver:
        enable_network_log(driver)
        dev_login(driver, lab.hub.url, lab.alice)
        driver.get(f"{lab.hub.url}/user/{lab.alice}/lab")
        tab = WebDriverWait(driver, TIMEOUT).until(
            lambda d: next((t for t in d.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab")
                            if "Dask" in (t.get_attribute("title") or "")), None))
        if "lm-mod-current" not in (tab.get_attribute("class") or ""):  # the sidebar may be open already
            tab.click()
        item = WebDriverWait(driver, TIMEOUT).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR,
                                                f'.dask-ClusterListingItem[data-cluster-id="{sidebar_id}"]')), None))
        item.click()
        progress = WebDriverWait(driver, 60).until(
            lambda d: next((b for b in d.find_elements(By.CSS_SELECTOR, ".dask-DashboardListing-item button")
                            if b.get_attribute("value") == "Progress" and b.is_enabled()), None))
        requests_seen(driver)  # from here on: the panel's requests
        clicked = time.monotonic()
        progress.click()
        frame = WebDriverWait(driver, 30).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, ".dask-DaskDashboard-widget iframe")), None))
        src = frame.get_attribute("src")
        assert src.endswith(f"/user/{lab.alice}/dask/dashboard/{sidebar_id}/individual-progress"), src
        driver.switch_to.frame(frame)
        try:
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(BOKEH_RENDERED))
            load_seconds = time.monotonic() - clicked
            title = driver.execute_script("return document.title")  # driver.title: the top page's
            columns = WebDriverWait(driver, 30).until(lambda d: d.execute_script(COLUMNS_WITH_SLEEP))
        finally:
            driver.switch_to.default_content()
        assert title == "Dask: TaskProgress", title
        assert "name" in columns, columns  # the progress bars of the running sleeps
        time.sleep(1)
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "lab-dask-progress-panel.png"))
        seen = requests_seen(driver)
        panel = [r for r in seen if f"/dask/dashboard/{sidebar_id}/" in r.url]
        assert any("/static/js/bokeh" in r.url and r.status == 200 for r in panel), [r.url for r in panel]
        # (dask-labextension sets the iframe's address twice: the first loads are aborted, not failed.)
        failed = [(r.url, r.status, r.error) for r in panel if (r.error and "ERR_ABORTED" not in r.error)
                  or (r.status or 0) >= 400]
        assert failed == []
        assert [r.url for r in seen if r.host != urlsplit(lab.hub.url).netloc] == []
    print(f"Progress panel rendered {load_seconds:.1f} s after the click")
    assert load_seconds < 30


def test_bob_cannot_open_alices_dashboard_through_a_server(lab: Lab, cluster_with_work: tuple[str, str]) -> None:
    name, sidebar_id = cluster_with_work
    bob_token = lab.hub.admin.user_token(lab.bob)
    # Alice's server, bob's token: jupyter_server refuses him before any relay.
    assert lab.user_api("GET", f"dask/dashboard/{sidebar_id}/individual-plots.json", token=bob_token).status_code == 403
    # Bob's own server knows no such cluster (his sidebar lists his clusters only): dask-labextension's 404.
    lab.hub.admin.spawn(lab.bob, "", {"profile": "small", "image": "datascience"}, timeout=TIMEOUT)
    try:
        mine = requests.get(f"{lab.hub.url}/user/{lab.bob}/dask/dashboard/{sidebar_id}/individual-plots.json",
                            headers={"Authorization": f"token {bob_token}"}, timeout=60)
        assert mine.status_code == 404, (mine.status_code, mine.text[:300])
        assert "Individual Progress" not in mine.text
        # And the Gateway itself, asked by bob's server with its own token (what the relay sends), refuses.
        asked = exec_in(server_container(lab.hub, lab.bob, ""), "python3", "-c", ASK_GATEWAY_FOR_PLOTS, name,
                        user="jovyan")
        assert asked.stdout.strip() == "403", (asked.stdout, asked.stderr[-500:])
    finally:
        lab.hub.admin.stop(lab.bob)
