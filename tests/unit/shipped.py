"""The shipped profile data for unit tests: ``profiles/*.yaml`` through the one cached loader
(core.profiles.profiles_in), and the images a profile may name. Tests that need profiles of their
own write them to ``tmp_path`` and call ``load_profiles`` with :data:`IMAGES`."""

from __future__ import annotations

from core.images import docker_images
from core.profiles import PROFILES_DIR, ProfileSet, profiles_in

#: The catalogue's Docker images: what a profile may name.
IMAGES = docker_images()


def shipped_profiles() -> ProfileSet:
    """The validated profiles of ``profiles/`` (read once per change of the files)."""
    return profiles_in(PROFILES_DIR)
