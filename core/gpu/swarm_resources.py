"""A Swarm node's GPUs as generic resources: what its engine and the NVIDIA runtime are told.

On a Docker Swarm a service cannot ask for GPUs by uuid (no ``--gpus``); each node announces its
GPUs as **named generic resources** in its engine's ``daemon.json``::

    "node-generic-resources": ["h100=GPU-18eaba93-88f3-2a85-643f-427bd2819efb"]

one resource **kind** per GPU type of the profiles (``swarm_kind``: the type name in lower case,
``"H100"`` → ``"h100"``), one value per unit (a whole GPU's ``GPU-...`` uuid, a MIG instance's
``MIG-...`` uuid). A service reserves ``{"h100": 1}``; Swarm picks a unit and gives the task
``DOCKER_RESOURCE_H100=<uuid>``. The NVIDIA container runtime reads the devices from that variable
instead of ``NVIDIA_VISIBLE_DEVICES`` when its ``/etc/nvidia-container-runtime/config.toml`` says
``swarm-resource = "DOCKER_RESOURCE_H100"`` (several kinds: comma-separated), so the container gets
exactly the GPUs Swarm assigned.

What Swarm accepts (measured on a one-node test bed, Docker 20.10; swarmkit's ``genericresource``):

- ``kind=value`` with one ``=``; a value that parses as an integer makes a *discrete* resource (a
  count), not a named one, so a unit's id must never be only digits (uuids never are);
- any kind: ``4090``, ``H100``, ``a100-80gb`` and ``gpu.t4`` were all announced and assigned. But the
  task's variable is ``DOCKER_RESOURCE_`` + the kind in upper case, verbatim: ``a100-80gb`` gives
  ``DOCKER_RESOURCE_A100-80GB``, a name a POSIX shell drops from its children's environment
  (measured: ``sh -c env`` in the task did not show it). So a kind is kept to ``[a-z0-9_]``:
  ``"A100 80GB"`` → ``"a100_80gb"``, ``"4090"`` → ``"4090"`` (``DOCKER_RESOURCE_4090``).

``python -m core.gpu.swarm_resources --types '{"H100": "H100"}' [--xml FILE]`` prints the node's
settings as JSON (Ansible's titan_swarm role runs it on each node). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.gpu.inventory import GpuUnit, InventoryError, parse_nvidia_smi_xml, run_nvidia_smi
from core.gpu.types import match_types

#: The variable Swarm sets in a task for each generic resource kind it assigned.
RESOURCE_VARIABLE_PREFIX = "DOCKER_RESOURCE_"
_KIND = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def swarm_kind(type_name: str) -> str:
    """The Swarm generic resource kind of a profiles' GPU type: ``"H100"`` → ``"h100"``.

    Lower case; each run of characters other than ASCII letters and digits becomes one ``_``
    (``"A100 80GB"`` → ``"a100_80gb"``), so that Swarm's ``DOCKER_RESOURCE_<KIND>`` is a valid
    variable name. Raises ``ValueError`` when nothing is left (``"---"``).
    """
    kind = re.sub(r"[^a-z0-9]+", "_", type_name.strip().lower()).strip("_")
    if not _KIND.match(kind):
        raise ValueError(f"GPU type {type_name!r} cannot be a Swarm resource kind: name it with letters or digits")
    return kind


def resource_variable(kind: str) -> str:
    """``"h100"`` → ``"DOCKER_RESOURCE_H100"``: the variable a task is given its units in."""
    return RESOURCE_VARIABLE_PREFIX + kind.upper()


@dataclass(frozen=True)
class NodeGpuResources:
    """What one node's engine and NVIDIA runtime are told about its GPUs."""

    kinds: Mapping[str, tuple[str, ...]]  # kind → unit ids, only kinds the node has units of
    unmatched: tuple[GpuUnit, ...]  # units of no profile GPU type (announced to nobody)

    @property
    def generic_resources(self) -> list[str]:
        """``daemon.json``'s ``node-generic-resources``: ``["h100=GPU-...", ...]``."""
        return [f"{kind}={unit}" for kind, units in sorted(self.kinds.items()) for unit in units]

    @property
    def swarm_resource(self) -> str:
        """``config.toml``'s ``swarm-resource``: ``"DOCKER_RESOURCE_H100"``; ``""`` with no GPU."""
        return ",".join(resource_variable(kind) for kind in sorted(self.kinds))

    def as_json(self) -> dict[str, object]:
        return {
            "node_generic_resources": self.generic_resources,
            "swarm_resource": self.swarm_resource,
            "kinds": {kind: list(units) for kind, units in sorted(self.kinds.items())},
            "unmatched": [f"{unit.index} {unit.model} ({unit.uuid})" for unit in self.unmatched],
        }


def node_resources(units: Sequence[GpuUnit], gpu_types: Mapping[str, str]) -> NodeGpuResources:
    """Group a node's units by the profiles' GPU types (``{"H100": "<regex on the model>"}``).

    Raises ``ValueError`` for a type name that is not a valid kind, two types with the same kind
    (``"a100"`` and ``"A100"``), an invalid regex, or a unit id Swarm would read as a count.
    """
    kinds: dict[str, str] = {}
    for name in gpu_types:
        kind = swarm_kind(name)
        if kind in kinds:
            raise ValueError(f"GPU types {kinds[kind]!r} and {name!r} are the same Swarm resource kind {kind!r}")
        kinds[kind] = name
    grouped = match_types(list(units), gpu_types)
    matched = {unit.uuid for members in grouped.values() for unit in members}
    result: dict[str, tuple[str, ...]] = {}
    for kind, name in kinds.items():
        ids = tuple(unit.uuid for unit in grouped[name])
        for unit_id in ids:
            if unit_id.strip().lstrip("-").isdigit() or "=" in unit_id or "," in unit_id:
                raise ValueError(f"GPU unit id {unit_id!r} cannot be a Swarm named resource (a number, '=' or ',')")
        if ids:
            result[kind] = ids
    return NodeGpuResources(kinds=result, unmatched=tuple(unit for unit in units if unit.uuid not in matched))


def parse_types(text: str) -> dict[str, str]:
    """``--types``: a JSON object of type name → regex, or → ``{"match": regex, ...}`` (the
    profiles' ``gpu_types`` as they are). Raises ``ValueError``."""
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("--types must be a JSON object of GPU type name → regex (or {\"match\": regex})")
    rules: dict[str, str] = {}
    for name, rule in document.items():
        pattern = rule.get("match") if isinstance(rule, dict) else rule
        if not isinstance(pattern, str):
            raise ValueError(f"--types: GPU type {name!r} has no regex (a string, or {{\"match\": regex}})")
        rules[str(name)] = pattern
    return rules


def read_units(xml_file: str | None, listing_file: str | None = None) -> list[GpuUnit]:
    """The node's units: from ``xml_file`` (``nvidia-smi -q -x`` output; ``-``: stdin), else from the
    node's ``nvidia-smi`` (none on PATH: a CPU node, no units). Raises ``InventoryError``."""
    if xml_file:
        xml = sys.stdin.read() if xml_file == "-" else Path(xml_file).read_text()
        listing = Path(listing_file).read_text() if listing_file else None
    elif shutil.which("nvidia-smi") is None:
        return []
    else:
        xml = run_nvidia_smi("-q", "-x")
        listing = run_nvidia_smi("-L") if "<mig_device>" in xml else None
    try:
        return parse_nvidia_smi_xml(xml, listing)
    except ValueError as error:
        raise InventoryError(f"unreadable nvidia-smi XML ({error})") from error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.gpu.swarm_resources",
        description="Print this node's GPUs as Swarm generic resources (JSON: node_generic_resources for "
                    "daemon.json, swarm_resource for the NVIDIA runtime's config.toml).")
    parser.add_argument("--types", required=True,
                        help='the profiles\' GPU types as JSON, name → regex on the model: \'{"H100": "H100"}\' '
                             '(or the profiles\' own {"H100": {"match": "H100"}})')
    parser.add_argument("--xml", help="read this `nvidia-smi -q -x` output ('-': stdin) instead of running nvidia-smi")
    parser.add_argument("--listing", help="with --xml: `nvidia-smi -L` output (MIG profiles and uuids)")
    args = parser.parse_args(argv)
    try:
        resources = node_resources(read_units(args.xml, args.listing), parse_types(args.types))
    except (ValueError, OSError, InventoryError) as error:
        print(f"swarm_resources: {error}", file=sys.stderr)
        return 1
    print(json.dumps(resources.as_json(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
