"""The chart's own check: values merged over the chart's defaults as Helm merges them, then its
``values.schema.yaml`` (JSON Schema draft 7), both vendored from the pinned chart version."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kubernetes_export.errors import ExportError

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
CHART_DIR = VENDOR_DIR / "z2jh"


def vendored_version() -> str:
    """The chart version vendor/README.md says the files are from."""
    match = re.search(r"^VENDORED_CHART_VERSION: (\S+)$", (VENDOR_DIR / "README.md").read_text(), re.MULTILINE)
    if not match:
        raise ExportError(f"{VENDOR_DIR / 'README.md'}: no VENDORED_CHART_VERSION line")
    return match.group(1)


@cache
def _load(name: str) -> Any:
    return yaml.safe_load((CHART_DIR / name).read_text())


def helm_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge of user values over chart values: maps merged, anything else replaced, null removes."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_values(values: Mapping[str, Any]) -> None:
    """Raise :class:`ExportError` naming the key of the first violation of the chart's schema."""
    merged = helm_merge(_load("values.yaml"), values)
    validator = jsonschema.Draft7Validator(_load("values.schema.yaml"))
    errors = sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ExportError(f"values.yaml: at {where}: the Zero to JupyterHub chart's schema refuses it: "
                          f"{error.message[:300]}")
