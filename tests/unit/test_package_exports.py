# SPDX-License-Identifier: LGPL-2.1-or-later
"""The package's top-level names: imported lazily at run time (``_EXPORTS``,
``_SUBMODULES`` and ``__getattr__``), seen by type checkers through the
literal ``__all__`` and the ``if TYPE_CHECKING:`` imports.  The three must
name the same things."""

from __future__ import annotations

import ast
import subprocess
import sys

import pydevmapper


def _type_checking_imports() -> dict[str, str]:
    """name -> the module the ``if TYPE_CHECKING:`` block imports it from."""
    with open(pydevmapper.__file__) as f:
        tree = ast.parse(f.read())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module and imp.module.startswith("pydevmapper"):
                    found.update((a.asname or a.name, imp.module) for a in imp.names)
    return found


def test_all_is_the_export_table():
    expected = [*pydevmapper._EXPORTS, *pydevmapper._SUBMODULES, "__version__"]
    assert sorted(pydevmapper.__all__) == sorted(expected)
    assert len(set(pydevmapper.__all__)) == len(pydevmapper.__all__)


def test_type_checkers_see_every_export_from_its_module():
    imported = _type_checking_imports()
    for name, module in pydevmapper._EXPORTS.items():
        assert imported.get(name) == f"pydevmapper.{module}", name
    for name in pydevmapper._SUBMODULES:
        assert imported.get(name) == "pydevmapper", name
    assert set(imported) == set(pydevmapper._EXPORTS) | pydevmapper._SUBMODULES


def test_every_name_resolves_to_its_modules_object():
    for name, module in pydevmapper._EXPORTS.items():
        __import__(f"pydevmapper.{module}")
        assert getattr(pydevmapper, name) is getattr(sys.modules[f"pydevmapper.{module}"], name)
    assert pydevmapper.targets is sys.modules["pydevmapper.targets"]


def test_no_exported_name_is_also_a_submodule():
    """Importing pydevmapper.X sets the package's attribute X to the module,
    which would hide an exported function X from __getattr__ for good."""
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(pydevmapper.__path__)}
    assert not (set(pydevmapper.__all__) & modules) - pydevmapper._SUBMODULES


def test_a_function_survives_the_import_of_every_submodule():
    code = ("import pydevmapper as dm\n"
            "dm.Control  # imports pydevmapper.tables and the rest of the core\n"
            "assert callable(dm.table), dm.table\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_names_are_imported_on_first_use():
    code = ("import sys, pydevmapper as dm\n"
            "assert 'pydevmapper.targets' not in sys.modules and 'pydevmapper.deptree' not in sys.modules\n"
            "dm.targets.ThinPool, dm.dependency_graph\n"
            "assert 'pydevmapper.targets' in sys.modules and 'pydevmapper.deptree' in sys.modules\n"
            "from pydevmapper import *\n"
            "assert Control is dm.Control and targets is dm.targets\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
