"""The exported Titan service, end to end: `titan-service.sh` as generated builds the image from
`titan-service.Dockerfile` and runs the container; a JupyterHub configured with the generated
`hub.services` entry and `hub.loadRoles` (as the Zero to JupyterHub chart turns them into config)
routes users to it, and the service answers through that hub with the hub's tokens.

Kubernetes cannot run here: `kubectl` is the one stand-in, a script that answers the one call the
generated script makes (the service's token from the chart's `hub` Secret). The hub is a stock
JupyterHub, as the chart's hub image is.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from core.profiles import PROFILES_DIR
from images.build import default_ca_bundle, serve_file_on_loopback
from kubernetes_export.__main__ import main
from kubernetes_export.report import SERVICE_SCRIPT
from tests.helpers import free_port, wait_for
from tests.integration.hub import REPO
from tests.unit.k8s_export_fixtures import SETTINGS

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The part of Zero to JupyterHub's jupyterhub_config.py that matters here: hub.services and
# hub.loadRoles from values.yaml, each service's token as the chart's Secret holds it.
HUB_CONFIG = """\
import json, os
c = get_config()  # noqa: F821
values = json.loads(os.environ["TEST_VALUES"])
tokens = json.loads(os.environ["TEST_TOKENS"])
state = os.environ["TEST_STATE"]
c.JupyterHub.bind_url = os.environ["TEST_PUBLIC_URL"]
c.JupyterHub.hub_bind_url = os.environ["TEST_HUB_URL"]
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/cookie_secret"
c.JupyterHub.pid_file = f"{state}/jupyterhub.pid"
c.ConfigurableHTTPProxy.api_url = os.environ["TEST_PROXY_API_URL"]
c.ConfigurableHTTPProxy.command = [os.environ["TEST_PROXY"]]
c.ConfigurableHTTPProxy.pid_file = f"{state}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
services = []
for name, service in values["hub"]["services"].items():
    if name == "dask-gateway":  # the gateway chart's own service: not part of this test
        continue
    entry = {"name": name, "api_token": tokens[name]}
    entry.update({k: v for k, v in service.items() if k in ("url", "display", "info", "oauth_no_confirm")})
    services.append(entry)
services.append({"name": "test-admin", "api_token": tokens["test-admin"]})
c.JupyterHub.services = services
roles = [{"name": n, **r} for n, r in values["hub"]["loadRoles"].items()]
for role in roles:
    role["scopes"] = [s for s in role["scopes"] if "dask-gateway" not in s]
roles.append({"name": "test-admin", "scopes": ["admin:users", "tokens"], "services": ["test-admin"]})
c.JupyterHub.load_roles = roles
"""


@pytest.fixture
def service_network() -> Iterator[tuple[str, str]]:
    """A Docker network of the test's own: its name and the host's address on it (the hub's address
    as the service container sees it)."""
    name = f"titantest-svc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "network", "create", name], check=True, capture_output=True)
    try:
        inspected = json.loads(subprocess.run(["docker", "network", "inspect", name], check=True,
                                              capture_output=True, text=True).stdout)
        yield name, inspected[0]["IPAM"]["Config"][0]["Gateway"]
    finally:
        subprocess.run(["docker", "network", "rm", name], capture_output=True)


def _fake_kubectl(folder: Path, namespace: str, token: str) -> Path:
    """`kubectl` for the one call titan-service.sh makes; anything else fails loudly."""
    folder.mkdir()
    script = folder / "kubectl"
    expected = f"--namespace {namespace} get secret hub -o jsonpath={{.data.hub\\.services\\.titan\\.apiToken}}"
    encoded = base64.b64encode(token.encode()).decode()
    script.write_text(f"""#!/bin/sh
if [ "$*" = '{expected}' ]; then printf %s '{encoded}'; exit 0; fi
echo "kubectl stand-in: unexpected call: $*" >&2; exit 3
""")
    script.chmod(0o755)
    return folder


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def _start_stock_hub(root: Path, values: dict[str, Any], tokens: dict[str, str],
                     public_url: str) -> subprocess.Popen[bytes]:
    root.mkdir()
    (root / "jupyterhub_config.py").write_text(HUB_CONFIG)
    env = {**os.environ, "TEST_VALUES": json.dumps(values), "TEST_TOKENS": json.dumps(tokens),
           "TEST_STATE": str(root), "TEST_PUBLIC_URL": public_url,
           "TEST_HUB_URL": f"http://127.0.0.1:{free_port()}",
           "TEST_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
           "TEST_PROXY": str(REPO / "node_modules" / ".bin" / "configurable-http-proxy")}
    log = (root / "hub.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py")],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_generated_service_container_serves_through_the_hub(
        built_images: dict[str, str], tmp_path: Path, service_network: tuple[str, str]) -> None:
    network, host_address = service_network
    public_url = f"http://{host_address}:{free_port()}"
    service_port = free_port()
    settings = tmp_path / "titan.yaml"
    state = tmp_path / "state"
    settings.write_text(SETTINGS.replace("https://titan.acme.example", public_url) + f"state_dir: {state}\n")
    out = tmp_path / "out"
    assert main(["--settings", str(settings), "--profiles", str(PROFILES_DIR), "--out", str(out),
                 "--titan-service-url", f"http://127.0.0.1:{service_port}", "--namespace", "jhub"]) == 0
    values = yaml.safe_load((out / "values.yaml").read_text())
    tokens = {"titan": secrets.token_hex(24), "test-admin": secrets.token_hex(24)}
    script_text = (out / SERVICE_SCRIPT).read_text()
    assert tokens["titan"] not in script_text

    tag = f"titan/service-test:{uuid.uuid4().hex[:8]}"
    container = f"titantest-service-{uuid.uuid4().hex[:8]}"
    hub = _start_stock_hub(tmp_path / "hub", values, tokens, public_url)
    script: subprocess.Popen[str] | None = None
    script_log = tmp_path / "titan-service.log"
    try:
        with serve_file_on_loopback(default_ca_bundle()) as ca_url:
            kubectl = _fake_kubectl(tmp_path / "bin", "jhub", tokens["titan"])
            env = {**os.environ, "PATH": f"{kubectl}:{os.environ['PATH']}",
                   "TITAN_SERVICE_IMAGE": tag, "TITAN_CA_URL": ca_url,
                   "TITAN_SERVICE_PUBLISH": f"127.0.0.1:{service_port}:8020",
                   "TITAN_SERVICE_NETWORK": network, "TITAN_SERVICE_CONTAINER": container}
            started = time.monotonic()
            script = subprocess.Popen(["bash", str(out / SERVICE_SCRIPT)], env=env, text=True,
                                      stdout=script_log.open("w"), stderr=subprocess.STDOUT)
            # The script builds the image first (it is missing), then runs the container.
            wait_for(lambda: subprocess.run(["docker", "container", "inspect", container],
                                            capture_output=True).returncode == 0 or script.poll() is not None,
                     900, "the service container to be created")
        assert script.poll() is None, script_log.read_text()[-3000:]
        size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag], check=True,
                                  capture_output=True, text=True).stdout)
        print(f"titan-service image: built and started in {time.monotonic() - started:.0f} s, {size / 1e6:.0f} MB")
        no_lab = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                                 "/opt/venv/bin/python", tag, "-c", "import jupyterlab"], capture_output=True)
        assert no_lab.returncode != 0, "JupyterLab in the service image"

        admin = requests.Session()
        admin.headers["Authorization"] = f"token {tokens['test-admin']}"
        api = f"{public_url}/hub/api"
        # JupyterHub 6 waits up to a service's `timeout` (30 s) for an external service before it routes
        # anything through its proxy: a container made within that time finds the hub not routing yet.
        wait_for(lambda: _answers(f"{api}/"), 90, "the hub to route its API through the proxy")
        for user in ("alice", "bob"):
            assert admin.post(f"{api}/users/{user}", timeout=30).status_code in (201, 409)
        alice = admin.post(f"{api}/users/alice/tokens", json={"note": "test"}, timeout=30).json()["token"]
        bob = admin.post(f"{api}/users/bob/tokens", json={"note": "test"}, timeout=30).json()["token"]
        narrow = admin.post(f"{api}/users/alice/tokens", json={"note": "no service access",
                                                               "scopes": ["read:users:name!user=alice"]},
                            timeout=30).json()["token"]

        service = f"{public_url}/services/titan"

        def get(path: str, token: str | None) -> requests.Response:
            headers = {"Authorization": f"token {token}"} if token else {}
            return requests.get(f"{service}/{path}", headers=headers, timeout=10, allow_redirects=False)

        def answers() -> requests.Response | None:
            response = get("api/openapi.json", alice)
            return response if response.status_code == 200 else None

        logs = lambda: subprocess.run(["docker", "logs", container], capture_output=True,  # noqa: E731
                                      text=True).stderr[-3000:]
        try:
            assert "paths" in wait_for(answers, 90, "the service to answer through the hub").json()
        except AssertionError:
            raise AssertionError(logs()) from None
        # The service checks every token with the hub it was given: whose settings, whose token.
        own = get("api/users/alice/autosave", alice)
        assert own.status_code == 200, (own.text, logs())
        assert get("api/users/alice/autosave", bob).status_code == 403
        assert get("api/users/alice/autosave", narrow).status_code == 403
        assert get("api/users/alice/autosave", None).status_code in (302, 401, 403)
        # Its database is the state dir's, at the newest migration.
        database = state / "service" / "titan-service.sqlite"
        assert database.exists(), logs()
        with sqlite3.connect(database) as db:
            assert db.execute("select version_num from alembic_version").fetchone() == ("r0002",)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        if script is not None:
            try:
                script.wait(timeout=30)
            except subprocess.TimeoutExpired:
                script.kill()
        hub.terminate()
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            hub.kill()
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
