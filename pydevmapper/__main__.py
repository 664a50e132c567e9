# SPDX-License-Identifier: LGPL-2.1-or-later
"""python -m pydevmapper: pydmsetup."""

import sys

from pydevmapper.cli import main

sys.exit(main())
