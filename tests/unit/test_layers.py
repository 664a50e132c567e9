# SPDX-License-Identifier: LGPL-2.1-or-later
"""The package's shape: its import graph has no cycle, nothing in it imports
the tests, and only the channel calls the device-mapper ioctl."""

from __future__ import annotations

import ast
import os

import pydevmapper

PACKAGE = os.path.dirname(pydevmapper.__file__)


def _modules() -> dict[str, str]:
    found = {}
    for root, _dirs, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: str, package: str) -> set[str]:
    """Every module an import statement names, at any depth, except under
    ``if TYPE_CHECKING:`` (annotations only, never run)."""
    tree = ast.parse(open(path).read(), path)
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        graph[module] = {m for m in _imports(path, package) if m in modules and m != module}
    return graph


def test_no_module_imports_the_tests():
    for module, path in _modules().items():
        package = module.rpartition(".")[0]
        assert not [m for m in _imports(path, package) if m == "tests" or m.startswith("tests.")], module


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    # Packages import their own submodules lazily (``__init__`` exports);
    # a submodule's import of its package is the parent's initialisation,
    # not a dependency, so edges from a package into itself are left out.
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                walk(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)


def test_only_the_channel_calls_the_ioctl():
    callers = [m for m, path in _modules().items() if "pydm_dm_ioctl(" in open(path).read()]
    assert callers == ["pydevmapper.channel"]
