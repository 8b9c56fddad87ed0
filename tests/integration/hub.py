"""A real Titan hub for tests: jupyterhub + configurable-http-proxy on free loopback ports,
with its own state directory, deployment label and home-volume prefix."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.helpers import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]


class HubClient:
    """The hub's REST API with one token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=60, **kwargs)

    def create_user(self, name: str) -> dict[str, Any]:
        """Through Titan's route for the automation token (titan/admin_api.py), as scripts do."""
        response = self.api("POST", f"/titan/users/{name}")
        assert response.status_code in (201, 409), response.text
        return self.api("GET", f"/users/{name}").json()

    def user_token(self, name: str) -> str:
        response = self.api("POST", f"/users/{name}/tokens", json={"note": "test"})
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def server(self, user: str, server: str = "") -> dict[str, Any] | None:
        model = self.api("GET", f"/users/{user}").json()
        found: dict[str, Any] | None = model.get("servers", {}).get(server)
        return found

    def spawn(self, user: str, server: str = "", options: dict[str, Any] | None = None,
              timeout: float = 120) -> dict[str, Any]:
        response = self.api("POST", f"/users/{user}/servers/{server}", json=options or {})
        assert response.status_code in (201, 202), f"{response.status_code} {response.text}"
        return wait_for(lambda: (s := self.server(user, server)) and s.get("ready") and s, timeout,
                        f"{user}/{server} to be ready")

    def stop(self, user: str, server: str = "", timeout: float = 60) -> None:
        response = self.api("DELETE", f"/users/{user}/servers/{server}")
        assert response.status_code in (202, 204), response.text
        wait_for(lambda: self.server(user, server) is None or not self.server(user, server), timeout,
                 f"{user}/{server} to stop")


@dataclass
class Hub:
    root: Path
    deployment: str
    url: str
    process: subprocess.Popen[bytes]
    admin: HubClient
    log_path: Path
    profiles_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def titan_address(self) -> str:
        """The host's address on the deployment's own network, where containers reach the hub API,
        the gateway and the Titan service."""
        return titan_address(self.deployment)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def login(self, username: str, password: str = "any") -> requests.Session:
        """A browser-like session logged in through the dev login form."""
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=30)
        match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        data = {"username": username, "password": password}
        if match:
            data["_xsrf"] = match.group(1)
        response = session.post(f"{self.url}/hub/login", data=data, timeout=30, allow_redirects=True)
        assert response.status_code == 200, response.status_code
        assert any(c.name.startswith("jupyterhub-session") for c in session.cookies), "login failed"
        return session

    def xsrf(self, session: requests.Session) -> str:
        return session.cookies.get("_xsrf") or ""


def write_test_profiles(directory: Path) -> None:
    """The shipped profiles plus two test-only ones: a group-gated one and one with HTML text."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "profiles" / "profiles.yaml", directory / "10-shipped.yaml")
    extra = {
        "profiles": [
            {"display_name": "Team only", "slug": "team-only",
             "description": "Only for the data team.", "image": "minimal",
             "resources": {"cpu": 1, "memory": "1G"}, "access": {"groups": ["data-team"]}},
            {"display_name": "GPU small", "slug": "gpu-small", "description": "One GPU, little else.",
             "image": "minimal", "resources": {"cpu": 1, "memory": "1G", "gpu": {"type": "H100", "count": 1}},
             "profile_options": {
                 "gpu_type": {"display_name": "GPU type", "choices": {
                     "H100": {"display_name": "H100", "default": True,
                              "override": {"resources": {"gpu": {"type": "H100"}}}},
                     "T4": {"display_name": "T4", "override": {"resources": {"gpu": {"type": "T4"}}}}}},
                 "gpu_count": {"display_name": "GPUs", "choices": {
                     "1": {"display_name": "1", "default": True, "override": {"resources": {"gpu": {"count": 1}}}},
                     "2": {"display_name": "2", "override": {"resources": {"gpu": {"count": 2}}}}}}}},
            {"display_name": "Tricky <b>name</b>", "slug": "tricky",
             "description": "<script>alert('titan')</script>", "image": "minimal",
             "resources": {"cpu": 1, "memory": "1G"}},
        ]
    }
    (directory / "20-test.yaml").write_text(yaml.safe_dump(extra, sort_keys=False))


def start_hub(root: Path, settings_overrides: dict[str, Any] | None = None, deployment: str = "") -> Hub:
    """Start a hub in ``root`` (reusing its state when ``deployment`` names an earlier one)."""
    deployment = deployment or "titantest-" + secrets.token_hex(3)
    public_port, hub_port, api_port = free_port(), free_port(), free_port()
    profiles_dir = root / "profiles"
    write_test_profiles(profiles_dir)
    settings: dict[str, Any] = {
        "deployment": deployment,
        "state_dir": str(root / "state"),
        "hub": {"public_url": f"http://127.0.0.1:{public_port}", "hub_port": hub_port,
                "proxy_api_port": api_port, "named_server_limit_per_user": 3},
        "spawner": {"profiles_dir": str(profiles_dir), "home_volume_template": f"{deployment}-home-{{username}}",
                    "start_timeout": 120},
        # The hub starts the Dask gateway and the titan service: free ports, so test hubs never collide.
        "gateway": {"api_port": free_port(), "proxy_port": free_port(), "scheduler_proxy_port": free_port()},
        "service": {"port": free_port()},
    }
    for key, value in (settings_overrides or {}).items():
        settings[key] = {**settings.get(key, {}), **value} if isinstance(value, dict) else value
    (root / "titan.yaml").write_text(yaml.safe_dump(settings))
    return launch_hub(root, deployment, f"http://127.0.0.1:{public_port}", profiles_dir)


def restart_hub(hub: Hub) -> Hub:
    """Start the hub again with the same titan.yaml (same ports, same state), after it stopped or died."""
    return launch_hub(hub.root, hub.deployment, hub.url, hub.profiles_dir)


def launch_hub(root: Path, deployment: str, url: str, profiles_dir: Path) -> Hub:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "JUPYTERHUB_", "TITAN_"))}
    env["TITAN_SETTINGS"] = str(root / "titan.yaml")
    # This checkout's code, in the hub and in its services (JupyterHub keeps PYTHONPATH for them),
    # whichever checkout the venv was installed from.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    log_path = root / "jupyterhub.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(REPO / "jupyterhub_config.py")],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError("the hub exited:\n" + log_path.read_text(errors="replace")[-3000:])
        return requests.get(f"{url}/hub/api", timeout=5).status_code == 200

    wait_for(answering, 60, "the hub to answer")
    token = (root / "state" / "admin-token").read_text().strip()
    return Hub(root=root, deployment=deployment, url=url, process=process, admin=HubClient(url, token),
               log_path=log_path, profiles_dir=profiles_dir)


@contextmanager
def running_hub(root: Path, settings_overrides: dict[str, Any] | None = None) -> Iterator[Hub]:
    """A hub for a module's tests: started, then stopped with every container and volume it made."""
    hub = start_hub(root, settings_overrides)
    try:
        yield hub
    finally:
        stop_hub(hub)
        remove_deployment(hub.deployment)


def stop_hub(hub: Hub) -> None:
    if hub.process.poll() is None:
        hub.process.send_signal(signal.SIGTERM)
        try:
            hub.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(hub.process.pid, signal.SIGKILL)
            hub.process.wait(10)


def containers(deployment: str, all_states: bool = True) -> list[dict[str, Any]]:
    """``docker ps`` for one deployment's containers, as inspect dicts."""
    args = ["docker", "ps", "-q", "--filter", f"label=titan.deployment={deployment}"]
    if all_states:
        args.insert(2, "-a")
    ids = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    if not ids:
        return []
    # A container may go between the listing and the inspection (a Dask worker closing, say):
    # `docker inspect` then prints the others and fails; those it printed are the answer.
    out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=False).stdout
    inspected: list[dict[str, Any]] = json.loads(out or "[]")
    return inspected


def titan_address(deployment: str) -> str:
    out = subprocess.run(["docker", "network", "inspect", f"{deployment}-titan", "--format",
                          "{{range .IPAM.Config}}{{.Gateway}}{{end}}"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def networks(deployment: str) -> list[str]:
    """The names of a deployment's networks (its own and its users')."""
    return subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}", "--filter",
                           f"label=titan.deployment={deployment}"],
                          capture_output=True, text=True, check=True).stdout.split()


def remove_deployment(deployment: str) -> None:
    """Remove every container, volume and network a test deployment made."""
    for container in containers(deployment):
        subprocess.run(["docker", "rm", "-f", container["Id"]], capture_output=True, check=False)
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name={deployment}-"],
                             capture_output=True, text=True, check=False).stdout.split()
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, check=False)
    for name in networks(deployment):
        subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)


def dump_containers(deployment: str) -> Iterator[str]:
    for container in containers(deployment):
        name = container["Name"].lstrip("/")
        logs = subprocess.run(["docker", "logs", "--tail", "40", container["Id"]], capture_output=True,
                              text=True, check=False)
        yield f"--- container {name} ({container['State']['Status']}) ---\n{logs.stdout}{logs.stderr}"
        yield json.dumps({"State": container["State"], "HostConfig": {
            k: container["HostConfig"].get(k) for k in ("Memory", "MemorySwap", "CpuQuota", "NetworkMode")}})


def exec_in(container: str, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    args = ["docker", "exec"] + (["-u", user] if user else []) + [container, *command]
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
