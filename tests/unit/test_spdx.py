# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every source file says which licence it is under (see LICENSE)."""

from __future__ import annotations

import pathlib

import pydevmapper

TREES = [pathlib.Path(pydevmapper.__file__).parent, pathlib.Path(__file__).resolve().parents[1]]


def test_every_python_source_carries_an_spdx_line():
    missing = [str(path) for tree in TREES for path in sorted(tree.rglob("*.py*"))
               if path.suffix in (".py", ".pyi")
               and "SPDX-License-Identifier: LGPL-2.1-or-later" not in path.read_text()[:300]]
    assert not missing
