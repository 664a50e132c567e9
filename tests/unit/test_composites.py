# SPDX-License-Identifier: LGPL-2.1-or-later
"""The composite devices' checks, before anything reaches the kernel: the
devices against the kernel are in tests/root/test_composite_*.py."""

from __future__ import annotations

import pytest

import pydevmapper as dm
from pydevmapper.composites import Segment, ThinPoolStack


class NoKernel:
    """A Control stand-in that fails the test on any command."""

    def __getattr__(self, name):
        pytest.fail(f"ctl.{name} was called before the input was checked")


META = [Segment("7:0", 0, 8192)]
DATA = [Segment("7:1", 0, 65536)]


@pytest.mark.parametrize("kwargs, complaint", [
    ({"metadata": []}, "at least one segment"),
    ({"metadata": [("7:0", 0)]}, "a segment is"),
    ({"data": [Segment("7:1", -1, 8)]}, "offset is a sector number"),
    ({"data": [Segment("7:1", 0, 0)]}, "length is a positive number"),
    ({"data": [Segment("7:1", 0, 8.5)]}, "length is a positive number"),
    ({"data": [Segment("7:1", 0, 64)]}, "no whole 128-sector block"),
    ({"block_size": 100}, "multiple of 128"),
    ({"error_if_no_space": True, "zeroing": False}, "unknown pool feature"),
    ({"data": [Segment("not a device", 0, 65536)]}, "block device"),
])
@pytest.mark.parametrize("make", [ThinPoolStack.create, ThinPoolStack.setup])
def test_a_bad_layout_is_refused_before_anything_is_sent(make, kwargs, complaint):
    args = {"metadata": META, "data": DATA, **kwargs}
    with pytest.raises(dm.ValidationError, match=complaint):
        make(NoKernel(), "pool", **args)


def test_the_default_low_water_mark_is_a_tenth_of_the_data_blocks():
    layout = ThinPoolStack._layout("pool", META, DATA, 128, None, {})
    assert layout.params.low_water_mark == 51 and layout.length == 65536
    table = layout.pool({"pool_tmeta": dm.DevNo(253, 0), "pool_tdata": dm.DevNo(253, 1)})
    assert str(table).strip() == "0 65536 thin-pool 253:0 253:1 128 51 0"


@pytest.mark.parametrize("kwargs, complaint", [
    ({"metadata": []}, "at least one segment"),
    ({"block_size": 100}, "multiple of 64"),
    ({"io_mode": "sometimes"}, "io_mode"),
    ({"policy": "cleaner", "policy_args": {"sequential_threshold": "4"}}, "takes no"),
])
@pytest.mark.parametrize("make", ["create", "setup"])
def test_a_bad_cache_is_refused_before_anything_is_sent(make, kwargs, complaint):
    from pydevmapper.composites import CacheStack

    args = {"metadata": META, "cache": DATA, **kwargs}
    if make == "setup":
        args["origin"] = [Segment("7:2", 0, 65536)]
    with pytest.raises(dm.ValidationError, match=complaint):
        getattr(CacheStack, make)(NoKernel(), "vol", **args)


@pytest.mark.parametrize("origin, complaint", [
    ([], "at least one segment"),
    ([dm.Target(0, 8, "linear", "7:0 0"), ("7:1", 0, 8)], "a segment is"),
    ("0 x linear 7:0 0", "length|number|sector"),
    ("", "at least one target"),
])
def test_a_bad_cache_origin_is_refused_before_anything_is_sent(origin, complaint):
    from pydevmapper.composites import CacheStack

    with pytest.raises(dm.ValidationError, match=complaint):
        CacheStack.setup(NoKernel(), "vol", origin=origin, metadata=META, cache=DATA)


def test_a_cache_origin_may_be_a_table_its_text_targets_or_segments():
    from pydevmapper.composites import CacheStack

    with pytest.raises(dm.ValidationError, match="readonly is True or False"):
        CacheStack.setup(NoKernel(), "vol", origin="0 8 linear 7:0 0", metadata=META, cache=DATA, readonly=1)
    for origin in ("0 8 linear 7:0 0", dm.Table.parse("0 8 linear 7:0 0"), [dm.Target(0, 8, "linear", "7:0 0")],
                   [Segment("7:0", 0, 8)]):
        # Past the checks, the first thing sent is the lookup of a stack device.
        with pytest.raises(pytest.fail.Exception, match=r"ctl\.info was called"):
            CacheStack.setup(NoKernel(), "vol", origin=origin, metadata=META, cache=DATA)
