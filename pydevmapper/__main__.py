"""python -m pydevmapper: pydmsetup."""

import sys

from pydevmapper.cli import main

sys.exit(main())
