"""The layers hold: kernel ← realms ← gateway / api / workers. The three processes never
import each other, kernel imports no realm and no process, realms import no process, and no
package has an import circle (type-checking imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ("gateway", "api", "workers")
PACKAGES = ("kernel", "realms", *PROCESSES)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of the file (functions and
    TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }
    return {
        name: {imported for imported in imports_of(path) if imported in modules}
        for name, path in modules.items()
    }


def top(module: str) -> str:
    return module.partition(".")[0]


@pytest.mark.parametrize("package", PROCESSES)
def test_a_process_imports_no_other_process(package: str) -> None:
    crossing = {
        (module, imported)
        for module, targets in graph().items()
        if top(module) == package
        for imported in targets
        if top(imported) in PROCESSES and top(imported) != package
    }
    assert crossing == set()


def test_the_kernel_imports_no_realm_and_no_process() -> None:
    upward = {
        (module, imported)
        for module, targets in graph().items()
        if top(module) == "kernel"
        for imported in targets
        if top(imported) != "kernel"
    }
    assert upward == set()


def test_realms_import_no_process() -> None:
    upward = {
        (module, imported)
        for module, targets in graph().items()
        if top(module) == "realms"
        for imported in targets
        if top(imported) in PROCESSES
    }
    assert upward == set()


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_inside_a_package(package: str) -> None:
    edges = {
        module: {t for t in targets if top(t) == package and t != module}
        for module, targets in graph().items()
        if top(module) == package
    }
    # A package's __init__ importing its own submodules is how a package exposes them, not a
    # circle between modules: leave those edges out.
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not t.startswith(module + ".")}
    seen: set[str] = set()
    on_path: list[str] = []

    def visit(module: str) -> None:
        if module in on_path:
            circle = [*on_path[on_path.index(module) :], module]
            raise AssertionError("import circle: " + " -> ".join(circle))
        if module in seen:
            return
        on_path.append(module)
        for imported in sorted(edges.get(module, ())):
            visit(imported)
        on_path.pop()
        seen.add(module)

    for module in sorted(edges):
        visit(module)
