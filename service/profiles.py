"""The profiles' ``clone`` lists for the service, reloaded when a profile file changes (through
core.profiles' one cached loader, as the spawner and the gateway)."""

from __future__ import annotations

import logging
from pathlib import Path

from core.profiles import ProfileError, profiles_in

log = logging.getLogger("titan.service")


class ProfileClones:
    """``()`` -> (the default profile's slug, profile slug -> repositories its servers clone)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._value: tuple[str, dict[str, tuple[str, ...]]] = ("", {})

    def __call__(self) -> tuple[str, dict[str, tuple[str, ...]]]:
        if not str(self.directory) or not self.directory.is_dir():
            return ("", {})
        try:
            profiles = profiles_in(self.directory)
        except ProfileError as error:
            log.warning("Profiles not loaded: %s", error)
            return self._value
        self._value = (profiles.default.slug, {p.slug: p.clone for p in profiles.profiles if p.clone})
        return self._value
