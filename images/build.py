"""Build the single-user images that are missing: ``python -m images.build [NAME ...]``.

The base is made with mmdebstrap and ``docker import``; every other image with
``docker build --network host`` FROM its parent. Each is tagged by the hash of its recipe,
so a second run builds nothing unless a recipe changed.

With a registry (``--registry``, else titan.yaml's ``swarm.registry``), every named image and its
ancestors, built now or before, is then tagged ``<registry>/titan/<name>:<tag>`` and pushed there
through this host's engine (which must trust the registry: docs/swarm-registry.md); layers the
registry has already are not sent again. On a swarm (titan.yaml ``engine: swarm``) every ready node
then pulls the named images (core.image_check), so that no user's first start on a node waits for a
pull, and a node that cannot get one is named now rather than at a user's start.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker.errors

from core.images import Recipe, build_args, build_order, catalog, image_tag
from core.registry import RegistryError, check_registry, registry_image
from core.settings import SettingsError, load_settings

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Fixed so that two builds of the same recipe produce the same layers.
SOURCE_DATE_EPOCH = "1735689600"


class BuildError(RuntimeError):
    """An image could not be built; the message says which and why."""


def say(message: str) -> None:
    print(f"[images] {message}", flush=True)


def image_exists(tag: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return result.returncode == 0


def default_ca_bundle() -> str:
    """The CA bundle handed to pip inside builds: explicit settings first, then the system's."""
    for variable in ("TITAN_BUILD_CA_BUNDLE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value:
            return value
    return SYSTEM_CA_BUNDLE if Path(SYSTEM_CA_BUNDLE).exists() else ""


@contextmanager
def serve_file_on_loopback(path: str) -> Iterator[str]:
    """Serve one file on 127.0.0.1 for the length of a build; yields its URL ('' if no file).

    The CA bundle reaches the build this way so that it is never part of a layer.
    """
    if not path:
        yield ""
        return
    source = Path(path).resolve()

    class OneFile(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = source.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneFile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ca.pem"
    finally:
        server.shutdown()
        server.server_close()


def _run_streamed(command: list[str] | str, prefix: str, shell: bool = False) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    process = subprocess.Popen(
        command, shell=shell, executable="/bin/bash" if shell else None, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        if line:
            print(f"  [{prefix}] {line}", flush=True)
    if process.wait() != 0:
        raise BuildError(f"building {prefix} failed (exit {process.returncode}); see the lines above")


def build_base(recipe: Recipe, tag: str, mirror: str) -> None:
    folder = recipe.folder
    packages = [
        line.strip() for line in (folder / "packages.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    excludes = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"]
    command = [
        "mmdebstrap", "--variant=apt", "--format=tar",
        f"--include={','.join(packages)}",
        *[f"--dpkgopt=path-exclude={pattern}" for pattern in excludes],
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        f"--customize-hook=copy-in {folder / 'setup-user.sh'} /tmp",
        '--customize-hook=chroot "$1" sh /tmp/setup-user.sh',
        '--customize-hook=rm -f "$1"/tmp/setup-user.sh',
        recipe.suite, "-", mirror,
    ]
    changes = ["ENV LANG=C.UTF-8", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "USER jovyan", "WORKDIR /home/jovyan", 'CMD ["/bin/bash"]']
    pipeline = (
        "set -o pipefail; "
        + shlex.join(command)
        + " | docker import "
        + " ".join(f"--change {shlex.quote(c)}" for c in changes)
        + f" - {shlex.quote(tag)}"
    )
    _run_streamed(pipeline, recipe.name, shell=True)  # noqa: S604 -- a fixed pipeline, every part shlex-quoted


def build_docker(recipe: Recipe, tag: str, ca_url: str) -> None:
    assert recipe.parent is not None
    args = dict(build_args(recipe), TITAN_PARENT=image_tag(recipe.parent), TITAN_CA_URL=ca_url)
    command = ["docker", "build", "--network", "host", "--rm", "--force-rm", "-t", tag]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    command.append(str(recipe.folder))
    _run_streamed(command, recipe.name)


def build(names: list[str], mirror: str, ca_bundle: str, force: bool = False) -> list[str]:
    """Build each missing image (and missing ancestors). Returns the tags that were built."""
    built: list[str] = []
    for name in build_order(names):
        recipe = catalog()[name]
        tag = image_tag(name)
        if image_exists(tag) and not force:
            say(f"{name}: {tag} is up to date")
            continue
        say(f"{name}: building {tag} ({recipe.builder})")
        started = time.monotonic()
        if recipe.builder == "mmdebstrap":
            build_base(recipe, tag, mirror)
        else:
            with serve_file_on_loopback(ca_bundle) as ca_url:
                build_docker(recipe, tag, ca_url)
        size = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        say(f"{name}: built {tag} in {time.monotonic() - started:.0f} s, {int(size) / 1e6:.0f} MB")
        built.append(tag)
    return built


def push(names: list[str], registry: str) -> dict[str, float]:
    """Tag each named image (and its ancestors) for ``registry`` and push it there through this
    host's engine; the seconds each push took, by the name pushed."""
    spent: dict[str, float] = {}
    for name in build_order(names):
        tag = image_tag(name)
        target = registry_image(tag, registry)
        started = time.monotonic()
        for command in (["docker", "tag", tag, target], ["docker", "push", target]):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BuildError(f"{' '.join(command)} failed (exit {done.returncode}): "
                                 f"{done.stderr.strip()[-500:]} (does this host's engine trust {registry}? "
                                 "docs/swarm-registry.md)")
        spent[target] = time.monotonic() - started
        say(f"{name}: pushed {target} in {spent[target]:.0f} s")
    return spent


def configured_registry() -> str:
    """titan.yaml's ``swarm.registry`` ("" when none)."""
    return str(load_settings().swarm.get("registry", ""))


def configured_manager() -> str | None:
    """titan.yaml's ``swarm.manager`` when its engine is swarm ("": the local engine), else None."""
    settings = load_settings()
    return str(settings.swarm.get("manager", "")) if settings.engine == "swarm" else None


def warm_nodes(names: list[str], registry: str, manager: str, within: float = 1800) -> int:
    """Every ready, active node of the swarm at ``manager`` pulls the images ``names`` from ``registry``
    now (core.image_check); says per node what it has; the number of (node, image) it could not get."""
    from core.image_check import check_images, manager_api, report_lines

    images = [registry_image(image_tag(name), registry) for name in names]
    started = time.monotonic()
    lines, missing = report_lines(check_images(manager_api(manager), images, within))
    for line in lines:
        say(f"nodes: {line}")
    say(f"every node asked to pull {len(images)} image(s) in {time.monotonic() - started:.0f} s"
        + (f"; {missing} missing (docs/swarm-registry.md)" if missing else ""))
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="images to build (default: all in images/catalog.yaml)")
    parser.add_argument("--mirror", default=os.environ.get("TITAN_DEBIAN_MIRROR", DEFAULT_MIRROR),
                        help="Debian mirror for the base image (env TITAN_DEBIAN_MIRROR)")
    parser.add_argument("--ca-bundle", default=None,
                        help="CA bundle pip uses inside builds (env TITAN_BUILD_CA_BUNDLE; default: the system's)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    parser.add_argument("--print-tags", action="store_true", help="print each image's tag and exit")
    parser.add_argument("--registry", default=None,
                        help="push every image there after the build, as host:port (default: titan.yaml's "
                             "swarm.registry; \"\": push nowhere)")
    options = parser.parse_args(argv)
    names = options.names or list(catalog())
    unknown = [n for n in names if n not in catalog()]
    if unknown:
        parser.error(f"unknown image(s): {', '.join(unknown)}; known: {', '.join(catalog())}")
    if options.print_tags:
        for name in build_order(names):
            print(f"{name} {image_tag(name)}")
        return 0
    ca_bundle = options.ca_bundle if options.ca_bundle is not None else default_ca_bundle()
    try:
        registry = check_registry(options.registry if options.registry is not None else configured_registry())
        manager = configured_manager() if registry else None
    except (RegistryError, SettingsError) as error:
        say(f"error: {error}")
        return 2
    try:
        build(names, options.mirror, ca_bundle, force=options.force)
        if registry:
            push(names, registry)
            if manager is not None and warm_nodes(names, registry, manager):
                return 1
    except BuildError as error:
        say(f"error: {error}")
        return 1
    except docker.errors.DockerException as error:
        say(f"error: the swarm's manager ({manager or 'the local engine'}) did not answer: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
