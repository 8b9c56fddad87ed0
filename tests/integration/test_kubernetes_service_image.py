"""The exported Titan service container: built from the generated Dockerfile with the repository as
context, run with a temporary state dir and titan.yaml, its migrations run and its port answers."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from core.profiles import PROFILES_DIR
from core.settings import REPO_ROOT
from images.build import default_ca_bundle, serve_file_on_loopback
from kubernetes_export.__main__ import main
from kubernetes_export.titan_service import DOCKERFILE, SETTINGS_IN_CONTAINER
from tests.unit.k8s_export_fixtures import write_settings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PORT = 18020


def test_service_image_builds_and_serves(built_images: dict[str, str], tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    out = tmp_path / "out"
    assert main(["--settings", str(settings), "--profiles", str(PROFILES_DIR), "--out", str(out)]) == 0
    tag = f"titan/service-test:{uuid.uuid4().hex[:8]}"
    name = f"titan-service-test-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    state.mkdir()
    started = time.monotonic()
    try:
        with serve_file_on_loopback(default_ca_bundle()) as ca_url:
            subprocess.run(["docker", "build", "--network", "host", "-q", "--build-arg", f"TITAN_CA_URL={ca_url}",
                            "-f", str(out / DOCKERFILE), "-t", tag, str(REPO_ROOT)], check=True, timeout=600)
        build_s = time.monotonic() - started
        size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag], check=True,
                                  capture_output=True, text=True).stdout)
        print(f"titan-service image: built in {build_s:.0f} s, {size / 1e6:.0f} MB")
        no_lab = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                                 "/opt/venv/bin/python", tag, "-c", "import jupyterlab"], capture_output=True)
        assert no_lab.returncode != 0, "JupyterLab in the service image"
        # A network of its own: the default bridge is not there on every engine that runs these tests.
        subprocess.run(["docker", "network", "create", name], check=True, capture_output=True)
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", name, "-p", f"127.0.0.1:{PORT}:8020",
                        "-e", "JUPYTERHUB_API_TOKEN=test-token", "-e", "JUPYTERHUB_API_URL=http://127.0.0.1:1/hub/api",
                        "-e", "JUPYTERHUB_SERVICE_PREFIX=/services/titan/", "-e", f"TITAN_STATE_DIR={state}",
                        "-v", "/var/run/docker.sock:/var/run/docker.sock",
                        "-v", f"{state}:{state}", "-v", f"{settings}:{SETTINGS_IN_CONTAINER}:ro", tag],
                       check=True, capture_output=True, timeout=60)
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/services/titan/api/openapi.json",
                                            timeout=2) as response:
                    answer = json.load(response)
            except OSError:
                time.sleep(1)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        assert answer is not None, logs[-3000:]
        assert "paths" in answer
        databases = [p for p in state.rglob("*") if p.suffix in (".sqlite", ".db")]
        assert databases, logs[-3000:]
        with sqlite3.connect(databases[0]) as db:
            assert db.execute("select version_num from alembic_version").fetchone()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        subprocess.run(["docker", "network", "rm", name], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
