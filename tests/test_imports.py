"""The import graph of the packages (issue 16): no cycle among `chaos` modules, and no import of
`airisk`, the composition root, from `chaos`, `monitor`, `probes` or `dashboard`.

Read from the source with `ast`, not by importing, so that an import inside a function (a lazy
one, made to dodge a cycle or a heavy dependency) counts as much as one at the top. An import
under ``if TYPE_CHECKING:`` never runs and makes no cycle; it still may not name `airisk`.

Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first, so an edge to a module is
also an edge to each package above it, except the packages above the importer itself (those are
being imported already when it runs: a package's ``__init__`` importing its own modules is no cycle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chaos", "monitor", "probes", "dashboard")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in ``tree`` (in functions too), and whether it runs only for a type checker."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), typing_only)
        else:
            yield from _imports(node, typing_only)


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (``from pkg import mod`` names ``pkg.mod`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _with_packages(importer: str, target: str) -> list[str]:
    """``target`` and the packages importing it runs first, but not those above ``importer``."""
    parts = target.split(".")
    above_importer = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    found = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [m for m in found if m in MODULES and m not in above_importer and m != importer]


def _graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """The runtime import graph among `MODULES`, and every module named by any import (type-only ones too)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    named: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, typing_only in _imports(tree):
            for target in _targets(module, path, node):
                named.setdefault(module, []).append(target)
                if not typing_only:
                    graph[module].update(_with_packages(module, target))
    return graph, named


GRAPH, NAMED = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one cycle through them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(c)) for c in components]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path from the component's first module back to itself, inside the component (breadth first)."""
    start = min(component)
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in came:
                    came[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def test_the_graph_sees_the_modules_and_their_lazy_imports():
    assert len(MODULES) > 100 and "chaos.emulator" in MODULES and "chaos.control.api" in MODULES
    assert "chaos.speakers" in GRAPH["chaos.asks"]  # a top-level import
    assert "chaos.control.aiohttpmount" in GRAPH["chaos.control"]  # `chaos.control.__getattr__`'s lazy one


def test_the_cycle_finder_names_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_chaos_modules():
    chaos = {m: {t for t in targets if t.split(".")[0] == "chaos"}
             for m, targets in GRAPH.items() if m.split(".")[0] == "chaos"}
    cycles = [" -> ".join(cycle) for cycle in _cycles(chaos)]
    assert cycles == [], "import cycles among chaos modules:\n" + "\n".join(cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_airisk(package):
    importing = [f"{MODULES[m].relative_to(ROOT)} imports {t}" for m, targets in sorted(NAMED.items())
                 if m.split(".")[0] == package for t in targets if t.split(".")[0] == "airisk"]
    assert importing == [], "\n".join(importing)
