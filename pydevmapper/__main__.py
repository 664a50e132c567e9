# SPDX-License-Identifier: LGPL-2.1-or-later
"""python -m pydevmapper: pydmsetup."""

from pydevmapper.cli import console

console()
