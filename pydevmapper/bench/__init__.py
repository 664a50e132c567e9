"""``python -m pydevmapper.bench``: the benchmark's entry point.

The benchmark itself lives in the source checkout's ``tests/bench``, with
the other comparisons against command-line tools, and builds ``csrc/``'s C
floor; see its package docstring.
"""
