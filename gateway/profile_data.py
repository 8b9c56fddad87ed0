"""The profile data as the gateway reads it: every profile file of a directory, re-read when one
changes; its ``dask`` section normalised once (gateway.options.dask_settings)."""

from __future__ import annotations

from pathlib import Path

from core.images import catalog
from core.profiles import ProfileSet, load_profiles, profile_files
from gateway.options import DaskSettings, dask_settings


class ProfileData:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: tuple[tuple[tuple[str, float], ...], DaskSettings, ProfileSet] | None = None

    def _load(self) -> tuple[DaskSettings, ProfileSet]:
        files = profile_files(self.directory)
        stamp = tuple((str(p), p.stat().st_mtime) for p in files)
        if self._cache is None or self._cache[0] != stamp:
            images = [name for name, recipe in catalog().items() if recipe.builder == "docker"]
            profiles = load_profiles(files, images=images)
            self._cache = (stamp, dask_settings(profiles.dask, profiles.gpu_types), profiles)
        return self._cache[1], self._cache[2]

    def dask_settings(self) -> DaskSettings:
        """The ``dask`` section, every default filled in."""
        return self._load()[0]

    def profiles(self) -> ProfileSet:
        """All of the profile data (the GPU types, the servers' profiles)."""
        return self._load()[1]
