# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydevmapper/_dm_cffi.pyi, the type checkers' view of the compiled binding,
names what the binding holds: every constant and function of ``lib`` (so a
cdef change without a stub change fails here) and the ``ffi`` methods the
package uses."""

from __future__ import annotations

import ast
import os

import pydevmapper
from pydevmapper._dm import ffi, lib

STUB = os.path.join(os.path.dirname(pydevmapper.__file__), "_dm_cffi.pyi")


def _stub_class(name: str) -> tuple[set[str], set[str]]:
    """The annotated attributes and the methods of a class of the stub."""
    with open(STUB) as f:
        tree = ast.parse(f.read())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    attributes = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    return attributes, methods


def test_lib_names_every_constant_and_function_as_what_it_is():
    constants, functions = _stub_class("Lib")
    assert constants | functions == {n for n in dir(lib) if not n.startswith("_")}
    for name in constants:
        assert type(getattr(lib, name)) is int, name
    for name in functions:
        assert callable(getattr(lib, name)), name


def test_ffi_has_what_the_stub_says():
    attributes, methods = _stub_class("FFI")
    for name in attributes | methods:
        assert hasattr(ffi, name), name
