"""The image registry of a Swarm deployment: how Titan's images reach every node with no outside
registry (issue 16).

On a swarm, a node runs a service's task only if its own engine has the image. Titan's images are
built on one host (``scripts/titan.sh images``); with ``swarm.registry`` set in titan.yaml (e.g.
``10.0.0.11:5000``, Debian's ``docker-registry`` on the manager), the build pushes each image there
as ``<registry>/titan/<name>:<tag>`` and every service names the image so, so that a node pulls it
the first time it runs one (docs/swarm-registry.md says how the registry is run and trusted).
``swarm.registry: ""`` (the default): no registry, services name the plain tag and the images are
put on each node by other means (``docker save | docker load``).

Pure where it can be: :func:`registry_image` (the name a service uses), :func:`check_registry`
(a setting's value), :func:`registry_config` (the registry's own config file). Then two small
looks at a registry over its HTTP API (v2): :func:`registry_answers` and :func:`registry_has`.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import yaml

__all__ = ["RegistryError", "check_registry", "registry_answers", "registry_config", "registry_digest", "registry_has",
           "registry_image"]

#: host[:port]: a DNS name or an IPv4 address, and a port. Docker reads the first part of an image
#: name as a registry only if it has a "." or a ":" or is "localhost" (else: a Docker Hub namespace).
_REGISTRY = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>[0-9]{1,5}))?$")
#: What a registry answers to a manifest lookup when asked for any of the formats Docker pushes.
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


class RegistryError(ValueError):
    """A registry address that Docker would not read as one (the message says why)."""


def check_registry(registry: str) -> str:
    """``registry`` if Docker reads it as a registry's ``host[:port]`` ("" too: no registry), else
    :class:`RegistryError` saying what is wrong with it."""
    if registry == "":
        return registry
    match = _REGISTRY.match(registry)
    if match is None:
        raise RegistryError(f"{registry!r} is not a registry address: write host:port (e.g. 10.0.0.11:5000), "
                            "no scheme, no path")
    host, port = match["host"], match["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise RegistryError(f"{registry!r}: port {port} is out of range")
    if port is None and "." not in host and host != "localhost":
        raise RegistryError(f"{registry!r}: Docker would read a name with no '.' and no port as a Docker Hub "
                            f"namespace; write {host}:5000 (or its full DNS name)")
    return registry


def registry_image(tag: str, registry: str) -> str:
    """The image a service names for Titan's image ``tag`` (``core.images.image_tag``, e.g.
    ``titan/minimal:3f2a9c0d1e4b``): ``<registry>/<tag>`` (``10.0.0.11:5000/titan/minimal:3f2a9c0d1e4b``),
    or ``tag`` unchanged when ``registry`` is "" (no registry: the image is on each node already).
    A tag already in ``registry`` is returned as it is."""
    if not registry or tag.startswith(check_registry(registry) + "/"):
        return tag
    return f"{registry}/{tag}"


def registry_config(listen: str, storage: str) -> str:
    """The YAML config of a ``docker-registry serve`` (docker/distribution 2.8, Debian's package)
    listening on ``listen`` (``address:port``; plain HTTP: the engines must trust it, see
    docs/swarm-registry.md) and keeping images in the directory ``storage``."""
    config = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": True},
            # Uploads a client gave up on are removed after a week.
            "maintenance": {"uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False}},
        },
        "http": {"addr": listen, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _status(registry: str, path: str, method: str, timeout: float) -> int:
    """The HTTP status of ``method <registry><path>`` (0: no answer at all)."""
    return _answer(registry, path, method, timeout)[0]


def _answer(registry: str, path: str, method: str, timeout: float) -> tuple[int, str]:
    """(HTTP status, Docker-Content-Digest header) of ``method <registry><path>`` (0: no answer at all):
    over plain HTTP, and over HTTPS (the system's CAs) when the registry answers plain HTTP with 400
    (it speaks TLS)."""
    for scheme in ("http", "https"):
        url = f"{scheme}://{check_registry(registry)}{path}"
        request = urllib.request.Request(url, method=method, headers={"Accept": MANIFEST_TYPES})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 -- http(s), built here
                return int(response.status), str(response.headers.get("Docker-Content-Digest") or "")
        except urllib.error.HTTPError as error:
            if error.code != 400 or scheme == "https":
                return int(error.code), ""
        except (OSError, ValueError):
            return 0, ""
    return 0, ""


def registry_answers(registry: str, timeout: float = 5) -> bool:
    """Whether a registry (API v2) answers at ``registry`` (``host:port``), with or without a login."""
    return _status(registry, "/v2/", "GET", timeout) in (200, 401)


def _manifest_path(tag: str) -> str:
    repository, _, reference = tag.rpartition(":")
    if not repository or "/" in reference:
        raise ValueError(f"{tag!r} is not repository:tag")
    return f"/v2/{repository}/manifests/{reference}"


def registry_has(registry: str, tag: str, timeout: float = 5) -> bool:
    """Whether the registry at ``registry`` holds Titan's image ``tag`` (``titan/minimal:3f2a...``)."""
    return _status(registry, _manifest_path(tag), "HEAD", timeout) == 200


def registry_digest(registry: str, tag: str, timeout: float = 5) -> str:
    """The digest (``sha256:...``) of what ``tag`` names in the registry now; "" when the registry does
    not hold it or names no digest. Blocking (HTTP)."""
    status, digest = _answer(registry, _manifest_path(tag), "HEAD", timeout)
    return digest if status == 200 and digest.startswith("sha256:") else ""


def without_digest(image: str) -> str:
    """``image`` without a pinned digest (``r:5000/titan/base:1@sha256:ab...`` -> ``r:5000/titan/base:1``)."""
    return image.split("@", 1)[0]


def split_registry(image: str) -> tuple[str, str]:
    """(registry, the rest) of an image name, as Docker reads it: the first part is a registry when
    it has a "." or a ":" or is "localhost" (``10.0.0.11:5000/titan/base:1`` -> (``10.0.0.11:5000``,
    ``titan/base:1``)); ("", image) when it names none."""
    first, slash, rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", image


def pull_diagnosis(image: str, timeout: float = 2) -> str:
    """Why a node may have failed to get ``image`` (Swarm says only "No such image"), as the hub host
    sees the image's registry now: one sentence for the user and the admin. Blocking (HTTP)."""
    registry, rest = split_registry(without_digest(image))
    if not registry:
        return ("no registry is named in it (titan.yaml swarm.registry is empty): the image must be loaded on "
                "that node (docker load), or set swarm.registry and run scripts/titan.sh images")
    try:
        answer = _status(registry, "/v2/", "GET", timeout)
        if answer == 401:
            return f"the registry {registry} asks for a login, and Titan's services carry none (docs/swarm-registry.md)"
        if answer != 200:
            return f"the registry {registry} does not answer (is docker-registry running there?)"
        if not registry_has(registry, rest, timeout):
            return f"the registry {registry} does not have {rest} (push it: scripts/titan.sh images)"
    except ValueError as error:  # RegistryError too
        return f"its name is not one a registry serves: {error}"
    return (f"the registry {registry} has it, so that node could not reach the registry or does not trust it "
            f"(insecure-registries in its daemon.json, or TLS); its engine's log says which")
