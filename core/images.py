"""The image catalogue and content-addressed tags: a tag changes exactly when a recipe does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"  # the recipes live in images/, one folder each
CATALOG_FILE = IMAGES_DIR / "catalog.yaml"
TAG_LENGTH = 12


@dataclass(frozen=True)
class Recipe:
    """One image: its folder, its parent and the build arguments that shape it."""

    name: str
    parent: str | None
    builder: str
    display_name: str
    description: str
    suite: str
    dashboards: tuple[str, ...] = ()  # live-dashboard apps the image serves (titan-dashboard)

    @property
    def folder(self) -> Path:
        return IMAGES_DIR / self.name

    @property
    def repository(self) -> str:
        return f"titan/{self.name}"


def hub_version() -> str:
    """The JupyterHub version the single-user servers must match."""
    return version("jupyterhub")


@cache
def catalog() -> dict[str, Recipe]:
    """All recipes from ``catalog.yaml``, in build order (parents first)."""
    raw: dict[str, dict[str, Any]] = yaml.safe_load(CATALOG_FILE.read_text())
    recipes: dict[str, Recipe] = {}
    for name, entry in raw.items():
        parent = entry.get("parent")
        if parent is not None and parent not in recipes:
            raise ValueError(f"{CATALOG_FILE}: image {name!r} names parent {parent!r} before it is defined")
        recipes[name] = Recipe(
            name=name,
            parent=parent,
            builder=entry.get("builder", "docker"),
            display_name=entry.get("display_name", name),
            description=entry.get("description", ""),
            suite=entry.get("suite", "bookworm"),
            dashboards=tuple(str(app) for app in entry.get("dashboards") or ()),
        )
    return recipes


def docker_images() -> list[str]:
    """The images a profile may name: those built with Docker (not the mmdebstrap base)."""
    return [name for name, recipe in catalog().items() if recipe.builder == "docker"]


def build_args(recipe: Recipe) -> dict[str, str]:
    """Build arguments that change the image's content (and therefore its tag)."""
    if recipe.builder == "mmdebstrap":
        return {"SUITE": recipe.suite}
    return {"JUPYTERHUB_VERSION": hub_version()}


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    # What a local build leaves (Python caches, npm's node_modules) is not the recipe.
    for path in sorted(p for p in folder.rglob("*")
                       if p.is_file() and not {"__pycache__", "node_modules"} & set(p.parts)):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def recipe_hash(name: str) -> str:
    """A hash of the recipe folder, its build arguments and its parent's hash."""
    recipe = catalog()[name]
    digest = hashlib.sha256()
    if recipe.parent:
        digest.update(recipe_hash(recipe.parent).encode())
    digest.update(_folder_digest(recipe.folder).encode())
    for key, value in sorted(build_args(recipe).items()):
        digest.update(f"{key}={value}\0".encode())
    return digest.hexdigest()


def image_tag(name: str) -> str:
    """The full Docker tag of an image, e.g. ``titan/minimal:3f2a9c0d1e4b``."""
    if name not in catalog():
        raise KeyError(f"unknown image {name!r}; known: {', '.join(catalog())}")
    return f"{catalog()[name].repository}:{recipe_hash(name)[:TAG_LENGTH]}"


def build_order(names: list[str]) -> list[str]:
    """The named images and all their ancestors, parents first, each once."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        recipe = catalog()[name]
        if recipe.parent:
            visit(recipe.parent)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered
