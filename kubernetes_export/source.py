"""What the export reads: titan.yaml and the profiles, through Titan's own loaders, and the images."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.images import catalog, image_tag
from core.profiles import ProfileError, ProfileSet, load_profiles, profile_files
from core.settings import Settings, SettingsError, load_settings
from kubernetes_export.errors import ExportError


@dataclass(frozen=True)
class Deployment:
    """A Titan deployment as the export sees it: validated and normalised once."""

    settings: Settings
    profiles: ProfileSet
    profiles_dir: Path  # where the profiles were read from
    local_images: Mapping[str, str]  # catalog name → the tag Titan builds locally (titan/minimal:<hash>)


def load_deployment(settings_file: Path | None = None, profiles_dir: Path | None = None,
                    environ: Mapping[str, str] | None = None) -> Deployment:
    """Load and validate ``titan.yaml`` (Titan's schema) and the profiles (the profiles' schema)."""
    env = os.environ if environ is None else environ
    if settings_file is not None and not settings_file.is_file():
        raise ExportError(f"{settings_file}: no such settings file")
    try:
        settings = load_settings(settings_file, env)
    except SettingsError as error:
        raise ExportError(str(error)) from None
    directory = profiles_dir or settings.profiles_dir
    if not directory.is_dir():
        raise ExportError(f"{directory}: no such profiles directory")
    files = profile_files(directory)
    if not files:
        raise ExportError(f"{directory}: no profile files (*.yaml)")
    try:
        profiles = load_profiles(files, catalog())
    except ProfileError as error:
        raise ExportError(str(error)) from None
    used = {str(block["image"]) for p in profiles.profiles
            for block in [p.settings, *(c.override for o in p.options for c in o.choices)] if "image" in block}
    return Deployment(settings=settings, profiles=profiles, profiles_dir=directory,
                      local_images={name: image_tag(name) for name in sorted(used)})
