# SPDX-License-Identifier: LGPL-2.1-or-later
"""CacheStack against the kernel: a writeback cache put in front of a
device that runs and is written, flushed through the cleaner policy and
removed, the device keeping its name and number and the origin holding
every write; a refused step leaves nothing."""

from __future__ import annotations

import time

import pytest

import pydevmapper as dm
from pydevmapper import targets as t
from pydevmapper.composites import CacheStack, Segment
from pydevmapper.testing.sweep import leftover_devices, remove_devices
from tests.root.helpers import dm_block_node
from tests.root.target_helpers import MIB, direct_read, write

pytestmark = pytest.mark.dm_root

MIB_BYTES = 1024 * 1024


@pytest.fixture
def origin(dm_control, dm_make_loop, dm_name):
    """<name>, linear over a 64 MiB loop device, and a 24 MiB loop device
    to cache on; nothing of the test's prefix left afterwards."""
    disk, fast = dm_make_loop(64), dm_make_loop(24)
    dev = dm_control.create_device(dm_name, dm.Table.single(64 * MIB, t.Linear(disk.devno, 0)))
    yield dev, disk, fast
    left = [n for n in leftover_devices(dm_control, dm_name) if n != dm_name]
    remove_devices(dm_control, [*left, dm_name])
    assert left == [], f"left behind: {left}"


def _write_dirty(cache, dev, byte):
    """Write the first MiB so that it stays in the cache as dirty blocks."""
    node = dm_block_node(dev.devno)
    for _ in range(64):  # hits, so that the policy promotes the blocks and later writes stay in the cache
        for offset in range(0, MIB_BYTES, 65536):
            direct_read(node, offset, 65536)
    # The policy promotes in the background: wait for it, so that the
    # writes land in the cache as dirty blocks.
    deadline = time.monotonic() + 120
    while cache.status().used_cache_blocks == 0:
        assert time.monotonic() < deadline, "nothing was promoted into the cache"
        time.sleep(0.05)
    write(dev, 0, byte * MIB_BYTES)
    assert cache.status().dirty > 0


def test_a_cache_put_in_front_flushed_and_removed(dm_control, dm_name, origin):
    dev, disk, fast = origin
    ctl = dm_control
    table = ctl.table(dm_name)
    write(dev, 0, b"\x01" * MIB_BYTES)
    cache = CacheStack.create(ctl, dm_name, metadata=[Segment(fast.devno, 0, 4 * MIB)],
                              cache=[Segment(fast.devno, 4 * MIB, 16 * MIB)], io_mode="writeback",
                              # smq writes dirty blocks back once the device is idle for a
                              # second; with no migration bandwidth they stay dirty until the
                              # flush (the cleaner policy gets the default bandwidth).
                              policy_args={"migration_threshold": "0"})
    assert ctl.info(dm_name).devno == dev.devno and ctl.table(dm_name)[0].type == "cache"
    assert sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(dm_name)) == sorted(
        [dm_name, f"{dm_name}_cmeta", f"{dm_name}_cdata", f"{dm_name}_corig"])
    _write_dirty(cache, dev, b"\x02")
    assert cache.status().io_mode == "writeback"
    flushed = cache.flush(timeout=300)
    assert flushed.dirty == 0 and ctl.table(dm_name)[0].parsed().policy == "smq"
    # The flush wrote every dirty block to the origin's own disk (read past
    # the loop device's page cache, which udev's probe filled earlier).
    assert direct_read(disk.path, 0, MIB_BYTES) == b"\x02" * MIB_BYTES
    # The blocks the flush cleaned stay in the cache: written again, they
    # are dirty again, for uncache to write back.  (Only those the policy
    # promoted are cached, so the whole MiB is written, not one block.)
    write(dev, 0, b"\x03" * MIB_BYTES)
    assert cache.status().dirty > 0
    cache.uncache(timeout=300)
    assert ctl.info(dm_name).devno == dev.devno and ctl.table(dm_name) == table
    assert sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(dm_name)) == [dm_name]
    assert direct_read(disk.path, 0, MIB_BYTES) == b"\x03" * MIB_BYTES


def test_a_refused_cache_leaves_the_device_as_it_was(dm_control, dm_name, origin):
    dev, disk, fast = origin
    ctl = dm_control
    table = ctl.table(dm_name)
    with pytest.raises(dm.ValidationError):
        CacheStack.create(ctl, dm_name, metadata=[Segment(fast.devno, 0, 4 * MIB)],
                          cache=[Segment(fast.devno, 4 * MIB, 16 * MIB)], io_mode="sometimes")
    # The cache device longer than its loop device: refused as it resumes.
    with pytest.raises(dm.DMError):
        CacheStack.create(ctl, dm_name, metadata=[Segment(fast.devno, 0, 4 * MIB)],
                          cache=[Segment(fast.devno, 4 * MIB, 64 * MIB)])
    # Metadata too small for the cache's mapping: the cache table is refused.
    with pytest.raises(dm.DMError):
        CacheStack.create(ctl, dm_name, metadata=[Segment(fast.devno, 0, 8)],
                          cache=[Segment(fast.devno, 4 * MIB, 16 * MIB)])
    assert ctl.table(dm_name) == table and not ctl.info(dm_name).suspended
    assert sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(dm_name)) == [dm_name]


def test_a_torn_down_cache_comes_back_by_its_layout_with_its_dirty_blocks(dm_control, dm_name, origin):
    dev, disk, fast = origin
    ctl = dm_control
    table = ctl.table(dm_name)
    layout = dict(origin=table, metadata=[Segment(fast.devno, 0, 4 * MIB)],
                  cache=[Segment(fast.devno, 4 * MIB, 16 * MIB)], io_mode="writeback")
    names = sorted([dm_name, f"{dm_name}_cmeta", f"{dm_name}_cdata", f"{dm_name}_corig"])
    # A device that runs without a cache is not this layout: create puts one in front.
    with pytest.raises(dm.StackConflictError, match=f"{dm_name}: exists, but {dm_name}_cmeta"):
        CacheStack.setup(ctl, dm_name, **layout)
    assert ctl.table(dm_name) == table
    cache = CacheStack.create(ctl, dm_name, metadata=layout["metadata"], cache=layout["cache"],
                              io_mode="writeback")
    again, done = CacheStack.setup(ctl, dm_name, **layout)
    assert done.created == [] and sorted(done.adopted) == names
    with pytest.raises(dm.StackConflictError, match=f"{dm_name}_cdata: target 0"):
        CacheStack.setup(ctl, dm_name, **{**layout, "cache": [Segment(fast.devno, 4 * MIB, 8 * MIB)]})
    # smq writes dirty blocks back once the device is idle for a second;
    # with no migration bandwidth it writes none, so they stay dirty.  (A
    # message, not a policy argument: the layout above is what setup adopts.)
    ctl.message(dm_name, 0, "migration_threshold 0")
    _write_dirty(cache, dev, b"\x07")
    dirty = cache.status().dirty
    assert dirty > 0
    assert sorted(cache.teardown()) == names
    assert not any(d.name.startswith(dm_name) for d in ctl.list_devices(uuids=False))
    assert direct_read(disk.path, 0, MIB_BYTES) != b"\x07" * MIB_BYTES  # the dirty blocks only in the cache
    back, done = CacheStack.setup(ctl, dm_name, **layout, policy_args={"migration_threshold": "0"})
    assert sorted(done.created) == names
    assert back.status().dirty == dirty
    assert direct_read(dm_block_node(ctl.info(dm_name).devno), 0, MIB_BYTES) == b"\x07" * MIB_BYTES
    back.uncache(timeout=300)  # through the cleaner policy, with the default bandwidth
    assert ctl.table(dm_name) == table
    assert direct_read(disk.path, 0, MIB_BYTES) == b"\x07" * MIB_BYTES
