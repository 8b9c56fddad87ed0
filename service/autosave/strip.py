"""Notebook output stripping for snapshots: a git *clean* filter, never applied to the user's files.

When a user turns "strip notebook outputs" on, snapshots of their repositories are built with
``*.ipynb filter=titan-strip`` in the store's ``info/attributes`` (which outranks the user's
``.gitattributes``) and ``filter.titan-strip.clean`` pointing at this file, run as a script: git
pipes each changed notebook through it while staging into the store's private index. The
working tree is only read. Because it is a clean filter, the private index keeps the file's stat
data, so an unchanged notebook is not read again on the next pass.

Outputs and execution counts of code cells are cleared (the notebook's format version kept);
anything that is not a readable notebook passes through unchanged.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

FILTER = "titan-strip"
ATTRIBUTES = f"*.ipynb filter={FILTER}\n"


def strip_notebook(data: bytes) -> bytes:
    """``data`` (a notebook's bytes) with code cells' outputs and execution counts cleared.

    A JSON transform rather than nbformat: importing nbformat (and jsonschema) takes seconds, far
    too long for a filter run once per changed notebook. The result is written the way nbformat
    writes notebooks (``indent=1``, sorted keys, no ASCII escaping, a final newline); a notebook
    with nothing to clear, or anything that is not a notebook, passes through byte for byte.
    """
    try:
        notebook: Any = json.loads(data)
        cells = notebook["cells"] if isinstance(notebook, dict) else None
    except (ValueError, KeyError):
        return data
    if not isinstance(cells, list):
        return data
    changed = False
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            if cell.get("outputs"):
                cell["outputs"] = []
                changed = True
            if cell.get("execution_count") is not None:
                cell["execution_count"] = None
                changed = True
    if not changed:
        return data
    ending = "\n" if data.endswith(b"\n") else ""  # as the notebook had it
    return (json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + ending).encode("utf-8")


def filter_options() -> tuple[str, ...]:
    """``git -c`` options that define the filter (this file, run by this Python)."""
    command = f"{shlex.quote(sys.executable)} -I {shlex.quote(str(Path(__file__).resolve()))}"
    return ("-c", f"filter.{FILTER}.clean={command}", "-c", f"filter.{FILTER}.required=true")


def main() -> int:
    sys.stdout.buffer.write(strip_notebook(sys.stdin.buffer.read()))
    return 0


if __name__ == "__main__":  # pragma: no cover - run by git
    sys.exit(main())
