"""Which node of the swarm cannot get which of Titan's images, before a user finds out:
``python -m core.image_check [--registry HOST:PORT] [--manager URL] [NAME ...]``.

For each image (Titan's current tags, ``core.images.image_tag``, named as services name them:
``core.registry.registry_image``), a short global service runs ``true`` once on every ready, active
node: a node that has the image or pulls it completes the task; a node that cannot gets its task
rejected ("No such image"). So the check is real (each node's own engine, its own trust of the
registry, its own route to it) and it leaves each image pulled on every node that could pull it (a
first start there is then as fast as a second). It takes as long as the slowest first pull.

:func:`node_report` (pure) reads the outcome from the tasks; :func:`check_images` runs the services.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import docker
import docker.errors
from docker.types import ContainerSpec, RestartPolicy, ServiceMode, TaskTemplate

from core.images import catalog, image_tag
from core.registry import pull_diagnosis, registry_image

#: Task states after which a check task will not change (Swarm's, lower case).
FINAL = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
CHECK_LABEL = "titan.check"


def node_report(nodes: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """For each ready, active node (by hostname): "" when its check task completed (the node has the
    image), else what stopped it ("No such image: ..."; "no task yet"; "still pulling (preparing)")."""
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    for task in tasks:
        by_node.setdefault(str(task.get("NodeID", "")), []).append(task)
    report: dict[str, str] = {}
    for node in nodes:
        ready = (node.get("Status") or {}).get("State") == "ready"
        if not ready or (node.get("Spec") or {}).get("Availability") != "active":
            continue  # a global service runs nothing there
        hostname = str((node.get("Description") or {}).get("Hostname") or node["ID"])
        mine = sorted(by_node.get(str(node["ID"]), []), key=lambda t: str(t.get("CreatedAt", "")))
        if not mine:
            report[hostname] = "no task yet"
            continue
        status = mine[-1].get("Status") or {}
        state = str(status.get("State", ""))
        if state == "complete":
            report[hostname] = ""
        elif state in FINAL:
            report[hostname] = str(status.get("Err") or status.get("Message") or state)
        else:
            report[hostname] = f"still pulling ({state})" if state == "preparing" else f"not done ({state})"
    return report


#: How :func:`node_report` says that a node has not finished yet.
PENDING = ("no task yet", "still pulling", "not done")


def _done(report: Mapping[str, str]) -> bool:
    return all(not why.startswith(PENDING) for why in report.values())


def check_images(api: docker.APIClient, images: Sequence[str], within: float = 600,
                 poll: float = 0.5) -> dict[str, dict[str, str]]:
    """image -> :func:`node_report` (node -> "" or why not), once every node has finished with every
    image or after ``within`` seconds. The images are checked at once (one global service each, so the
    nodes pull them side by side); the services are removed after."""
    template = {image: TaskTemplate(ContainerSpec(image, command=["true"]), restart_policy=RestartPolicy("none"))
                for image in images}
    stamp = f"{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    services: dict[str, str] = {}
    try:
        for n, image in enumerate(images):
            created = api.create_service(template[image], name=f"titan-image-check-{stamp}-{n}",
                                         mode=ServiceMode("global"), labels={CHECK_LABEL: "images"})
            services[image] = str(created["ID"])
        deadline = time.monotonic() + within
        while True:
            nodes = api.nodes()
            reports = {image: node_report(nodes, api.tasks(filters={"service": service}))
                       for image, service in services.items()}
            if all(_done(report) for report in reports.values()) or time.monotonic() > deadline:
                return reports
            time.sleep(poll)
    finally:
        for service in services.values():
            try:
                api.remove_service(service)
            except docker.errors.NotFound:
                pass


def report_lines(reports: Mapping[str, Mapping[str, str]]) -> tuple[list[str], int]:
    """One line per node and image ("<node>: ok <image>" or "<node>: MISSING <image>: <why>; <the
    registry's side>"), and how many are missing."""
    lines, missing = [], 0
    for image, report in reports.items():
        for node, why in sorted(report.items()):
            if why:
                missing += 1
                lines.append(f"{node}: MISSING {image}: {why}; {pull_diagnosis(image)}")
            else:
                lines.append(f"{node}: ok {image}")
    return lines, missing


def manager_api(manager: str) -> docker.APIClient:
    """The Docker API of the swarm's manager (``manager``: a DOCKER_HOST URL; "": DOCKER_HOST or the
    local socket)."""
    return docker.DockerClient(base_url=manager).api if manager else docker.from_env().api


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.image_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="Titan images to check (default: every one in images/catalog.yaml)")
    parser.add_argument("--registry", default=None, help="host:port (default: titan.yaml's swarm.registry)")
    parser.add_argument("--manager", default=None, help="the manager's DOCKER_HOST URL (default: titan.yaml's "
                                                        "swarm.manager, else DOCKER_HOST)")
    parser.add_argument("--within", type=float, default=600, help="seconds to wait for each image (default 600)")
    options = parser.parse_args(argv)
    registry, manager = options.registry, options.manager
    if registry is None or manager is None:
        from core.settings import load_settings  # only when titan.yaml is asked for

        swarm = load_settings().swarm
        registry = swarm["registry"] if registry is None else registry
        manager = swarm["manager"] if manager is None else manager
    names = options.names or list(catalog())
    images = [registry_image(image_tag(name), registry) for name in names]
    lines, missing = report_lines(check_images(manager_api(manager), images, options.within))
    print("\n".join(lines))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
