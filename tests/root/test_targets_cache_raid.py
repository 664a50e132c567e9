# SPDX-License-Identifier: LGPL-2.1-or-later
"""Typed targets against the real kernel: cache, writecache, era, raid,
mirror and snapshot-merge (targets whose kernel does work in the
background: promotion, writeback, resync, merge)."""

from __future__ import annotations

import errno
import os

import pytest

import pydevmapper as dm
from pydevmapper import targets as t
from tests.root.helpers import dm_block_node, kernel_at_least, sectors_of
from tests.root.target_helpers import (
    MIB,
    agrees,
    capture,
    direct_read,
    loaded_equal,
    status,
    wait_until,
    write,
)

pytestmark = pytest.mark.dm_root


def test_cache_read_hits_rise_on_rereads(dm_make_loop, dm_make_device):
    meta, fast, origin = dm_make_loop(4), dm_make_loop(8), dm_make_loop(16)
    size = sectors_of(origin.path)
    params = t.Cache(meta, fast, origin, block_size=128, io_mode="writethrough",
                     policy_args={"migration_threshold": 2048})
    dev = dm_make_device(dm.Table.single(size, params))
    loaded_equal(dev, params)
    first = status(dev)
    assert (first.cache_block_size, first.io_mode, first.policy, first.migration_threshold) == (
        128, "writethrough", "smq", 2048)
    assert first.total_cache_blocks == sectors_of(fast.path) // 128
    path = dm_block_node(dev.devno)
    direct_read(path, 0, 1 << 20)
    cold = status(dev)
    assert cold.read_misses > 0  # the first read finds an empty cache

    def reread_hits() -> bool:
        direct_read(path, 0, 1 << 20)
        return status(dev).read_hits > 0

    # smq promotes blocks it sees used again; re-reads then hit.
    assert wait_until(reread_hits, timeout=60)
    later = status(dev)
    assert later.promotions > 0 and later.used_cache_blocks > 0


def test_cache_cleaner_policy_round_trips(dm_make_loop, dm_make_device):
    meta, fast, origin = dm_make_loop(4), dm_make_loop(8), dm_make_loop(8)
    size = sectors_of(origin.path)
    params = t.Cache(meta, fast, origin, 256, metadata2=True, no_discard_passdown=True, policy="cleaner")
    dev = dm_make_device(dm.Table.single(size, params))
    loaded_equal(dev, params)
    st = status(dev)
    assert st.policy == "cleaner" and "metadata2" in st.features and "no_discard_passdown" in st.features


def test_writecache_free_blocks_fall_then_recover_after_flush(dm_make_loop, dm_make_device):
    origin, ssd = dm_make_loop(16), dm_make_loop(8)
    size = sectors_of(origin.path)
    params = t.Writecache("s", origin, ssd, 4096, high_watermark=90, low_watermark=80, autocommit_time=1000)
    dev = dm_make_device(dm.Table.single(size, params))
    loaded_equal(dev, params)
    before = status(dev)
    assert not before.error and before.free_blocks == before.total_blocks
    write(dev, 0, b"\x12" * (256 * 1024))  # 64 blocks, below the watermark: they stay
    during = status(dev)
    assert during.free_blocks <= before.free_blocks - 64
    # The I/O counters came with 5.15; before, the status has four fields.
    assert (during.writes is not None) == kernel_at_least(5, 15)
    dev.message(t.Writecache.flush())
    after = status(dev)
    assert after.free_blocks == after.total_blocks and after.writeback_blocks == 0
    assert direct_read(origin.path, 0, 4096) == b"\x12" * 4096
    if kernel_at_least(5, 15):
        dev.message(t.Writecache.clear_stats())
        assert status(dev).writes == 0
    else:  # no counters, no message to clear them: the kernel's refusal, typed
        with pytest.raises(dm.DMError, match="unrecognised message received: clear_stats") as err:
            dev.message(t.Writecache.clear_stats())
        assert err.value.errno == errno.EINVAL


def test_era_advances_on_checkpoint(dm_make_loop, dm_make_device):
    meta, origin = dm_make_loop(4), dm_make_loop(8)
    size = sectors_of(origin.path)
    params = t.Era(meta, origin, 128)
    dev = dm_make_device(dm.Table.single(size, params))
    loaded_equal(dev, params)
    era = status(dev).current_era
    dev.message(t.Era.checkpoint())
    assert status(dev).current_era == era + 1
    dev.message(t.Era.take_metadata_snap())
    assert status(dev).held_metadata_root is not None
    dev.message(t.Era.drop_metadata_snap())
    assert status(dev).held_metadata_root is None


def test_raid1_syncs_and_a_failed_leg_shows_d(dm_make_loop, dm_make_device, dm_control):
    metas = [dm_make_loop(4) for _ in range(2)]
    datas = [dm_make_loop(8) for _ in range(2)]
    size = sectors_of(datas[0].path) - MIB  # room for dm-raid's own data offset
    # The legs' data devices are linear devices, so one can fail later.
    legs = [dm_make_device(dm.Table.single(sectors_of(d.path), t.Linear(d, 0))) for d in datas]
    params = t.Raid("raid1", 0, [(m, leg) for m, leg in zip(metas, legs)], region_size=1024)
    raid = dm_make_device(dm.Table.single(size, params))
    loaded_equal(raid, params)
    assert wait_until(lambda: status(raid).in_sync, timeout=120)
    st = status(raid)
    assert (st.raid_type, st.devices, st.health, st.sync_current) == ("raid1", 2, "AA", st.sync_total)
    # Make the legs differ behind md's back: a check then counts mismatches.
    with open(datas[1].backing_file, "r+b") as fh:
        fh.seek(st.data_offset * 512)
        fh.write(b"\x5e" * 65536)
    raid.message(t.Raid.sync_action("check"))

    def checked() -> bool:
        now = status(raid)
        return now.sync_action == "idle" and now.mismatch_count > 0

    assert wait_until(checked, timeout=120)
    # Leg 1 starts failing every I/O: after a write md marks it dead.
    legs[1].reload(dm.Table.single(sectors_of(datas[1].path), t.Error()))
    write(raid, 0, b"\x34" * 65536)
    assert wait_until(lambda: status(raid).health == "AD", timeout=120)


def test_raid5_round_trips(dm_make_loop, dm_make_device):
    datas = [dm_make_loop(8) for _ in range(3)]
    size = 2 * (sectors_of(datas[0].path) - MIB)
    params = t.Raid("raid5_ls", 64, [(None, d) for d in datas], nosync=True, stripe_cache=256,
                    region_size=4096)
    raid = dm_make_device(dm.Table.single(size, params))
    loaded_equal(raid, params)
    st = status(raid)
    assert st.raid_type == "raid5_ls" and st.devices == 3 and st.sync_current == st.sync_total


def test_mirror_syncs(dm_make_loop, dm_make_device):
    a, b = dm_make_loop(8), dm_make_loop(8)
    size = sectors_of(a.path)
    params = t.Mirror(1024, [(a, 0), (b, 0)], handle_errors=True)
    dev = dm_make_device(dm.Table.single(size, params))
    loaded_equal(dev, params)
    assert wait_until(lambda: status(dev).in_sync, timeout=120)
    st = status(dev)
    assert st.legs == (dm.DevNo(*a.devno), dm.DevNo(*b.devno)) and st.log == ("core",)
    disk_log = t.Mirror(1024, [(a, 0), (b, 0)], log_device=dm_make_loop(1), sync="nosync")
    dev2 = dm_make_device(dm.Table.single(size, disk_log))
    loaded_equal(dev2, disk_log)
    assert status(dev2).log[0] == "disk"


def test_snapshot_merge_folds_the_cow_back(dm_make_loop, dm_make_device, dm_control):
    origin_loop, cow_loop = dm_make_loop(8), dm_make_loop(4)
    size = sectors_of(origin_loop.path)
    origin = dm_make_device(dm.Table.single(size, t.SnapshotOrigin(origin_loop)))
    snap = dm_make_device(dm.Table.single(size, t.Snapshot(origin_loop, cow_loop, "P", 8)))
    write(snap, 0, b"\x56" * 65536)  # lands in the COW only
    assert direct_read(origin_loop.path, 0, 4096) == b"\0" * 4096
    dm_control.remove(snap.devno, retry=30.0)
    merge = t.SnapshotMerge(origin_loop, cow_loop, "P", 8)
    origin.reload(dm.Table.single(size, merge))
    loaded_equal(origin, merge)
    def merged() -> bool:
        st = status(origin)
        return st.allocated_sectors == st.metadata_sectors

    assert wait_until(merged, timeout=60)
    assert direct_read(origin_loop.path, 0, 4096) == b"\x56" * 4096


def test_integrity_counts_mismatches_after_corruption(dm_make_loop, dm_make_device):
    loop = dm_make_loop(16)
    params = t.Integrity(loop, 0, 4, "D", internal_hash=("crc32c",), buffer_sectors=128)
    # The kernel formats an all-zero device on load; the size it then
    # provides is in its status, and the table comes back normalised.
    probe = dm_make_device(dm.Table.single(8, params))
    provided = status(probe).provided_data_sectors
    dm_probe_table = probe.table()[0]
    capture("table", dm_probe_table.type, dm_probe_table.params)
    agrees(params, dm_probe_table.parsed())
    assert dm_probe_table.parsed().format() == dm_probe_table.params
    probe.remove(retry=30.0)
    dev = dm_make_device(dm.Table.single(provided, params))
    path = dm_block_node(dev.devno)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, b"\x78" * provided * 512, 0)  # every tag written
        os.fsync(fd)
    finally:
        os.close(fd)
    # udev's probe may have read sectors before their tags were written:
    # count from here.
    assert direct_read(path, 0, provided * 512) == b"\x78" * provided * 512
    before = status(dev).mismatches
    # Corrupt the backing data behind the device's back, past the metadata.
    with open(loop.backing_file, "r+b") as fh:
        fh.seek(4 << 20)
        fh.write(b"\xff" * (4 << 20))
    fd = os.open(loop.path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    failures = 0
    for offset in range(0, provided * 512, 1 << 20):
        try:
            direct_read(path, offset, 1 << 20)
        except OSError:
            failures += 1
    assert failures > 0
    assert status(dev).mismatches > before
