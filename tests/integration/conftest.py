"""Fixtures for tests against the real Docker engine and a real hub behind the real proxy."""

from __future__ import annotations

import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from core.images import image_tag
from tests.integration.hub import Hub, dump_containers, remove_deployment, start_hub, stop_hub


def _docker_ready() -> None:
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail("No Docker engine answers. `make test` starts one; run the tests through it.")


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    _docker_ready()
    tags = {name: image_tag(name) for name in ("minimal", "datascience")}
    missing = [tag for tag in tags.values()
               if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode != 0]
    if missing:
        pytest.fail(f"Images not built: {', '.join(missing)}. `make test` builds them (make images).")
    return tags


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, str]) -> Iterator[Hub]:
    root: Path = tmp_path_factory.mktemp("hub")
    running = start_hub(root)
    try:
        yield running
    finally:
        stop_hub(running)
        remove_deployment(running.deployment)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def dump_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """When a test that used the hub fails, print its containers' logs and the hub log."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or "hub" not in request.fixturenames:
        return
    running: Hub = request.getfixturevalue("hub")
    print("\n".join(dump_containers(running.deployment)))
    print("--- hub log ---\n" + running.log_tail())
