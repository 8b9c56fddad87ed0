"""Rendered reports on disk: ``<root>/<link id>/<version>.html``, written atomically, with the
newest pages kept in memory so serving a popular report does not read the disk each time."""

from __future__ import annotations

import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path

LINK_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class ReportStore:
    def __init__(self, root: Path, cache_entries: int = 64) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._cache_entries = cache_entries

    def _path(self, link_id: str, version: int) -> Path:
        if not LINK_ID.match(link_id):
            raise ValueError("bad link id")
        return self.root / link_id / f"{int(version)}.html"

    def write(self, link_id: str, version: int, html: bytes) -> None:
        path = self._path(link_id, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".tmp-") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
        self._remember((link_id, version), html)

    def read(self, link_id: str, version: int) -> bytes | None:
        key = (link_id, version)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            html = self._path(link_id, version).read_bytes()
        except FileNotFoundError:
            return None
        self._remember(key, html)
        return html

    def delete_versions(self, link_id: str, versions: list[int]) -> None:
        for version in versions:
            self._cache.pop((link_id, version), None)
            self._path(link_id, version).unlink(missing_ok=True)

    def _remember(self, key: tuple[str, int], html: bytes) -> None:
        self._cache[key] = html
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
