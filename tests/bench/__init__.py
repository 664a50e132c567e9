# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmarks: the pydevmapper API against the raw-C floor, libdevmapper and dmsetup.

Started with ``python -m tests.bench [--json FILE]`` from the top of a source
checkout (it needs ``csrc/`` too).  It runs every contender on every
operation in one kernel (booting a guest through ``pydevmapper.sandbox``
when this host has no device-mapper) and prints the ratio table.

- ``contenders``: how each contender performs one operation and is timed;
- ``operations``: the devices the operations need, and the run itself;
- ``report``: statistics, ratios, target checks, the table and the JSON;
- ``main``: the command line, and the hop into a guest.

It lives under tests/ because it runs dmsetup, the baseline it measures,
and libdevmapper: the installed package does not depend on it.
"""
