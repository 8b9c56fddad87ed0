"""Reports: notebooks rendered once per publication into versions kept in the service's storage,
so they stay up while the owner's servers are stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from service.sharing.errors import Gone, Invalid
from service.sharing.links import SharingConfig
from service.sharing.models import ReportVersion, ShareLink
from service.sharing.render import Rendered, open_in_home, render_report
from service.sharing.storage import ReportStore

RENDERS_AT_ONCE = 2


class Reports:
    def __init__(self, config: SharingConfig, store: ReportStore, home_of: Callable[[str], Path]) -> None:
        self.config = config
        self.store = store
        self.home_of = home_of
        self._render_lock = asyncio.Semaphore(RENDERS_AT_ONCE)

    def notebook(self, owner: str, relative: str) -> bytes:
        """The file's bytes from the owner's home (it must stay inside it, and not be too big)."""
        try:
            home = self.home_of(owner)
        except LookupError as error:
            raise Invalid(str(error)) from None
        return open_in_home(home, relative, self.config.max_notebook_bytes)

    async def render(self, owner: str, relative: str, hide_code: bool) -> Rendered:
        data = self.notebook(owner, relative)
        async with self._render_lock:
            return await asyncio.to_thread(render_report, data, name=relative, hide_code=hide_code,
                                           static_url=self.config.static_url)

    def add_version(self, session: Session, row: ShareLink, rendered: Rendered) -> None:
        """Store a new version and serve it; versions older than ``versions_kept`` go."""
        row.version = (row.version or 0) + 1
        self.store.write(row.id, row.version, rendered.html)
        session.add(ReportVersion(link_id=row.id, version=row.version, size=len(rendered.html),
                                  render_seconds=rendered.seconds, sha256=rendered.sha256))
        old = [v for v in row.versions if v.version <= row.version - self.config.versions_kept]
        for version in old:
            row.versions.remove(version)
        self.store.delete_versions(row.id, [v.version for v in old])

    def page(self, link_id: str, version: int) -> bytes:
        html = self.store.read(link_id, version)
        if html is None:
            raise Gone("this report's page is missing from storage; ask its owner to publish it again")
        return html
