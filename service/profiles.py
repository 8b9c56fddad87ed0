"""The profiles' ``clone`` lists for the service, reloaded when a profile file changes (as the
spawner reloads its profiles)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("titan.service")


class ProfileClones:
    """``()`` -> (the default profile's slug, profile slug -> repositories its servers clone)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._stamp: tuple[float, ...] | None = None
        self._value: tuple[str, dict[str, tuple[str, ...]]] = ("", {})

    def __call__(self) -> tuple[str, dict[str, tuple[str, ...]]]:
        from images.recipes import catalog
        from spawner.profiles import load_profiles, profile_files

        if not str(self.directory) or not self.directory.is_dir():
            return ("", {})
        files = profile_files(self.directory)
        stamp = tuple(f.stat().st_mtime for f in files)
        if stamp != self._stamp:
            try:
                profiles = load_profiles(files, images=[n for n, r in catalog().items() if r.builder == "docker"])
            except ValueError as error:
                log.warning("Profiles not loaded: %s", error)
                return self._value
            self._value = (profiles.default.slug, {p.slug: p.clone for p in profiles.profiles if p.clone})
            self._stamp = stamp
        return self._value
