"""The project's import graph, read from the source (no module is imported): which in-package
module imports which, at module level or inside functions. The structure tests use it to
refuse import circles and to check that each DVC stage names the code it runs."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "vaeinpaint"


def module_name(path: Path) -> str:
    """src/vaeinpaint/apps/server.py -> vaeinpaint.apps.server; a package's __init__.py -> the package."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def _resolve(name: str) -> str | None:
    """The in-package module a dotted import name lands on: the longest known prefix."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports_of(path: Path, module_level_only: bool) -> frozenset[str]:
    """The in-package modules `path` imports (`from a.b import c` counts a.b.c when c is a module,
    else a.b). Imports under `if TYPE_CHECKING:` are not imports at run time and are left out."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    here = module_name(path) if path.is_relative_to(SRC) else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import) and (top or not module_level_only):
                found.update(filter(None, (_resolve(alias.name) for alias in child.names)))
            elif isinstance(child, ast.ImportFrom) and (top or not module_level_only):
                base = child.module or ""
                if child.level:  # relative import
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    target = _resolve(f"{base}.{alias.name}") or _resolve(base)
                    if target:
                        found.add(target)
            visit(child, inner)

    visit(tree, True)
    found.discard(here)
    return frozenset(found)


def graph(module_level_only: bool = False) -> dict[str, frozenset[str]]:
    return {name: imports_of(path, module_level_only) for name, path in modules().items()}


def reachable(path: Path, module_level_only: bool) -> set[str]:
    """Every in-package module that importing (or running) `path` can import, transitively."""
    seen: set[str] = set()
    todo = list(imports_of(path, module_level_only))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imports_of(modules()[name], module_level_only))
        parent = name.rpartition(".")[0]  # importing a.b.c runs a/__init__ and a/b/__init__ first
        while parent:
            if parent not in seen:
                todo.append(parent)
            parent = parent.rpartition(".")[0]
    return seen


def cycles(edges: dict[str, frozenset[str]] | dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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
            connect(node)
    return found


def subpackage(name: str) -> str:
    """vaeinpaint.apps.server -> vaeinpaint.apps; top-level modules (vaeinpaint.params) stay themselves."""
    parts = name.split(".")
    if len(parts) >= 2 and is_package(".".join(parts[:2])):
        return ".".join(parts[:2])
    return name
