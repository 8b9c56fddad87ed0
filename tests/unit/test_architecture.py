"""The shape of the code: who may import whom, no import cycles, small modules.

Imports are read with ``ast`` from every module of Titan's packages, function-level and
``TYPE_CHECKING`` imports included (a cycle hidden in a function is still a cycle)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "spawner", "gateway", "service", "titan", "images", "kubernetes_export")
#: The parts that meet only in core (and over HTTP): each imports core and itself, nothing else of Titan.
PARTS = ("spawner", "gateway", "service")
#: Import cycles that are known and being removed. Each entry is the set of modules of one cycle.
ALLOWED_CYCLES: list[frozenset[str]] = []
MAX_LINES = 400
#: Modules longer than MAX_LINES today; each is to be split (issue 15), and then leaves this list.
LONG_MODULES: set[str] = set()


def _module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if package == "images" and len(relative.parts) > 2:
                continue  # images/<name>/...: code baked into the images, not Titan's own modules
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _module_files()


def _imported(module: str, path: Path) -> Iterator[str]:
    """The Titan modules ``module`` imports (a name imported from a package counts as its
    submodule when there is one)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - (node.level - (1 if is_package else 0))]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


@cache
def graph() -> dict[str, frozenset[str]]:
    return {module: frozenset(_imported(module, path)) for module, path in MODULES.items()}


def _cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _path_within(component: list[str], edges: dict[str, frozenset[str]]) -> list[str]:
    """One cycle through the component's first module, to show in the failure."""
    start = component[0]
    members = set(component)
    trail = [start]
    seen = {start}
    while True:
        nexts = sorted(t for t in edges[trail[-1]] if t in members)
        if start in nexts and len(trail) > 1:
            return [*trail, start]
        step = next((t for t in nexts if t not in seen), None)
        if step is None:
            return [*trail, "..."]
        trail.append(step)
        seen.add(step)


def test_the_modules_are_found() -> None:
    assert {"core.labels", "core.profiles", "spawner.docker", "gateway.backend", "service.app"} <= set(MODULES)
    assert "core.profiles" in graph()["spawner.docker"]  # function-level and top-level imports alike


def test_no_import_cycle() -> None:
    edges = graph()
    cycles = [c for c in _cycles(edges) if frozenset(c) not in ALLOWED_CYCLES]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(_path_within(c, edges)) for c in cycles)


def test_the_allowed_cycles_still_exist() -> None:
    """An allowed cycle that is gone must leave the allow-list."""
    present = {frozenset(c) for c in _cycles(graph())}
    assert [sorted(c) for c in ALLOWED_CYCLES if c not in present] == []


def _outside(package: str, allowed: tuple[str, ...]) -> list[str]:
    return sorted(f"{module} imports {target}" for module, targets in graph().items()
                  if module.split(".")[0] == package
                  for target in targets if target.split(".")[0] not in allowed)


def test_core_imports_nothing_of_titan_outside_core() -> None:
    assert _outside("core", ("core",)) == []


@pytest.mark.parametrize("part", PARTS)
def test_the_parts_meet_only_in_core(part: str) -> None:
    assert _outside(part, ("core", part)) == []


def test_modules_stay_small() -> None:
    long = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
            for module, path in MODULES.items() if module.split(".")[0] != "images"}
    over = sorted(f"{name} ({lines} lines)" for name, lines in long.items()
                  if lines > MAX_LINES and name not in LONG_MODULES)
    assert over == [], f"modules over {MAX_LINES} lines: split them"


def test_the_long_modules_list_names_only_long_modules() -> None:
    """A module split below the limit leaves LONG_MODULES."""
    short = sorted(name for name in LONG_MODULES
                   if len((ROOT / name).read_text().splitlines()) <= MAX_LINES)
    assert short == []
