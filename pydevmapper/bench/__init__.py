"""Benchmarks: the pydevmapper API against the raw-C floor, libdevmapper and dmsetup.

``python -m pydevmapper.bench [--json FILE]`` runs every contender on every
operation in one kernel (booting a guest through ``pydevmapper.sandbox``
when this host has no device-mapper) and prints the ratio table.

- ``contenders``: how each contender performs one operation and is timed;
- ``operations``: the devices the operations need, and the run itself;
- ``report``: statistics, ratios, target checks, the table and the JSON.
"""
