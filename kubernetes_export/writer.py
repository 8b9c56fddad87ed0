"""Output files: YAML rendered for people, written all at once or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the generated Python) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(data: Mapping[str, Any], header: str = "") -> str:
    return header + yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def write_all(out: Path, files: Mapping[str, str], executable: frozenset[str] = frozenset()) -> None:
    """Write ``files`` (name → text) into ``out``: first into a folder beside it, then moved in, so a
    failure leaves ``out`` as it was."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, text in files.items():
            path = staging / name
            path.write_text(text)
            if name in executable:
                path.chmod(0o755)
        if not out.exists():
            staging.chmod(0o755)
            staging.rename(out)
            return
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
