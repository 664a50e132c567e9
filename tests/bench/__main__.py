# SPDX-License-Identifier: LGPL-2.1-or-later
"""``python -m tests.bench`` from the repository's top directory."""

import sys

from tests.bench.main import main

sys.exit(main())
