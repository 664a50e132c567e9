# SPDX-License-Identifier: LGPL-2.1-or-later
"""ThinPoolStack against the kernel: a pool on linear metadata and data
devices over loop devices, a hundred volumes and snapshots, ids through
the transaction id, growth under a mounted filesystem, the low-water
event, adoption after a teardown, and nothing left behind."""

from __future__ import annotations

import os
import subprocess

import pytest

import pydevmapper as dm
from pydevmapper.composites import Segment, ThinPoolStack
from pydevmapper.testing.sweep import leftover_devices, remove_devices
from tests.root.helpers import dm_block_node
from tests.root.target_helpers import MIB, direct_read, read, write, write_path

pytestmark = pytest.mark.dm_root


@pytest.fixture
def pool_disks(dm_control, dm_make_loop, dm_name):
    """A metadata and a data loop device; afterwards, no device of the
    test's prefix may be left (each test tears its pool down itself)."""
    meta, data = dm_make_loop(8), dm_make_loop(64)
    yield meta, data
    left = leftover_devices(dm_control, dm_name)
    remove_devices(dm_control, left)
    assert left == [], f"left behind: {left}"


def _ours(ctl, prefix):
    return sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(prefix))


def test_a_hundred_volumes_and_snapshots_made_written_listed_and_torn_down(dm_control, dm_name, pool_disks):
    meta, data = pool_disks
    ctl = dm_control
    pool = ThinPoolStack.create(ctl, dm_name, metadata=[Segment(meta.devno, 0, 8 * MIB)],
                                data=[Segment(data.devno, 0, 64 * MIB)])
    assert _ours(ctl, dm_name) == sorted([dm_name, f"{dm_name}_tmeta", f"{dm_name}_tdata"])
    count = 100
    vols = [pool.create_thin(f"{dm_name}-v{i}", 4 * MIB) for i in range(count)]
    for i, vol in enumerate(vols):
        write(vol, 0, bytes([i]) * 4096)
    snaps = [pool.snapshot(f"{dm_name}-v{i}", f"{dm_name}-s{i}") for i in range(0, count, 4)]
    for vol in vols[::4]:
        write(vol, 0, b"\xff" * 4096)  # the origin moves on; the snapshot keeps its block
    listed = pool.volumes()
    assert len(listed) == count + len(snaps)
    # Ids are handed out once each, through the transaction id.
    assert sorted(v.dev_id for v in listed) == list(range(1, count + len(snaps) + 1))
    assert pool.status().transaction_id == count + len(snaps)
    by_name = {v.name: v for v in listed}
    assert all(by_name[f"{dm_name}-v{i}"].status.mapped_sectors == 128 for i in range(count))  # one 64 KiB block
    for i in range(0, count, 4):
        assert read(dm_block_node(by_name[f"{dm_name}-s{i}"].devno), 0, 4096) == bytes([i]) * 4096
        assert read(dm_block_node(by_name[f"{dm_name}-v{i}"].devno), 0, 4096) == b"\xff" * 4096
    used = pool.status().used_data_blocks
    pool.delete(f"{dm_name}-s0")
    pool.delete(f"{dm_name}-v1")
    # v1's block, and s0's: v0's write after the snapshot gave v0 a copy.
    assert pool.status().used_data_blocks == used - 2
    with pytest.raises(dm.ValidationError, match="has active volumes"):
        pool.teardown()
    removed = pool.teardown(volumes=True)
    assert removed[-3] == dm_name and sorted(removed[-2:]) == sorted([f"{dm_name}_tmeta", f"{dm_name}_tdata"])
    assert _ours(ctl, dm_name) == []


def test_setup_adopts_or_brings_back_the_same_pool_and_refuses_another(dm_control, dm_name, pool_disks):
    meta, data = pool_disks
    ctl = dm_control
    layout = dict(metadata=[Segment(meta.devno, 0, 8 * MIB)], data=[Segment(data.devno, 0, 32 * MIB)])
    pool = ThinPoolStack.create(ctl, dm_name, **layout)
    with pytest.raises(dm.DeviceExistsError):
        ThinPoolStack.create(ctl, dm_name, **layout)
    vol = pool.create_thin(f"{dm_name}-v", 8 * MIB)
    write(vol, 0, b"\x5a" * 65536)
    again, done = ThinPoolStack.setup(ctl, dm_name, **layout)
    assert done.created == [] and sorted(done.adopted) == sorted([dm_name, f"{dm_name}_tmeta", f"{dm_name}_tdata"])
    with pytest.raises(dm.StackConflictError, match=f"{dm_name}_tdata: target 0"):
        ThinPoolStack.setup(ctl, dm_name, metadata=layout["metadata"], data=[Segment(data.devno, 0, 16 * MIB)])
    pool.teardown(volumes=True)
    # After a "restart": the same layout brings the pool back with its volume.
    back, done = ThinPoolStack.setup(ctl, dm_name, **layout)
    assert len(done.created) == 3
    assert back.status().transaction_id == 1
    vol = back.activate(f"{dm_name}-v", 1, 8 * MIB)
    assert read(dm_block_node(vol.devno), 0, 65536) == b"\x5a" * 65536
    assert ThinPoolStack.open(ctl, dm_name).volumes()[0].dev_id == 1
    back.teardown(volumes=True)
    assert _ours(ctl, dm_name) == []


def test_a_failed_step_leaves_nothing(dm_control, dm_name, pool_disks, monkeypatch):
    meta, data = pool_disks
    ctl = dm_control
    # The data device, longer than its loop device, is refused at its
    # resume, once the metadata device is made.
    with pytest.raises(dm.DMError):
        ThinPoolStack.create(ctl, dm_name, metadata=[Segment(meta.devno, 0, 8 * MIB)],
                             data=[Segment(data.devno, 0, 128 * MIB)])
    assert _ours(ctl, dm_name) == []
    # Whatever the metadata held before, a new pool formats it (the kernel
    # would refuse a superblock that is neither zeroes nor its own).
    write_path(meta.path, 0, b"\xa5" * 4096)
    pool = ThinPoolStack.create(ctl, dm_name, metadata=[Segment(meta.devno, 0, 8 * MIB)],
                                data=[Segment(data.devno, 0, 32 * MIB)])
    with pytest.raises(dm.ValidationError):
        pool.create_thin(f"{dm_name}-v", 0)
    # The volume's device cannot be made after its id was: the id goes again.
    import pydevmapper.composites.thin as thin_module

    def refused(*args, **kwargs):
        raise dm.DMError(12, "DM_DEV_CREATE", f"{dm_name}-v", None)
    monkeypatch.setattr(thin_module, "create_device", refused)
    with pytest.raises(dm.DMError):
        pool.create_thin(f"{dm_name}-v", 8 * MIB)
    monkeypatch.undo()
    assert pool.status().transaction_id == 1
    pool.ctl.message(pool.devno, 0, "create_thin 1")  # refused if id 1 were still there
    pool.ctl.message(pool.devno, 0, "delete 1")
    assert pool.volumes() == []
    pool.teardown()


def test_a_thin_snapshot_merged_back_gives_the_volume_its_content_and_frees_the_rest(dm_control, dm_name,
                                                                                    pool_disks, monkeypatch):
    import pydevmapper.composites.thin as thin_module

    meta, data = pool_disks
    ctl = dm_control
    pool = ThinPoolStack.create(ctl, dm_name, metadata=[Segment(meta.devno, 0, 8 * MIB)],
                                data=[Segment(data.devno, 0, 32 * MIB)])
    vol_name, snap_name = f"{dm_name}-v", f"{dm_name}-s"
    vol = pool.create_thin(vol_name, 8 * MIB, uuid=f"{dm_name}-vol-uuid")
    write(vol, 0, b"\x11" * 65536)
    pool.snapshot(vol_name, snap_name)
    write(vol, 0, b"\x22" * 65536)  # the volume's own copy of block 0
    write(vol, 4 * 65536, b"\x33" * 65536)  # a block only the volume has
    assert pool.status().used_data_blocks == 3
    vol_table, snap_table = ctl.table(vol_name), ctl.table(snap_name)

    def unchanged():
        assert ctl.table(vol_name) == vol_table and ctl.table(snap_name) == snap_table
        assert pool.status().used_data_blocks == 3
        assert direct_read(dm_block_node(vol.devno), 0, 65536) == b"\x22" * 65536

    # Refused before anything changes.
    with pytest.raises(dm.ValidationError, match="into itself"):
        pool.merge(vol_name, into=vol_name)
    with pytest.raises(dm.ValidationError, match="is not a thin volume"):
        pool.merge(f"{dm_name}_tdata", into=vol_name)
    fd = os.open(dm_block_node(vol.devno), os.O_RDONLY)
    try:
        with pytest.raises(dm.DeviceBusyError, match=f"{vol_name}: open [0-9]+ time"):
            pool.merge(snap_name, into=vol_name, retry=1.0)
    finally:
        os.close(fd)
    unchanged()
    # The pool refuses the last step: the snapshot's device and the
    # volume's table come back, and no id is deleted.
    real = pool._message

    def refuse_delete(message):
        if message.text().startswith("delete"):
            raise dm.DMError(5, "DM_TARGET_MSG", dm_name, None, "refused for the test")
        real(message)
    pool._message = refuse_delete
    with pytest.raises(dm.DMError, match="refused for the test"):
        pool.merge(snap_name, into=vol_name)
    pool._message = real
    unchanged()
    assert ctl.info(snap_name).uuid == ""
    merged = pool.merge(snap_name, into=vol_name)
    assert merged.devno == vol.devno and ctl.info(vol_name).uuid == f"{dm_name}-vol-uuid"
    assert not ctl.exists(snap_name)
    assert [(v.name, v.dev_id) for v in pool.volumes()] == [(vol_name, snap_table[0].parsed().dev_id)]
    # The snapshot's content, read past the page cache; the volume's own blocks freed.
    assert direct_read(dm_block_node(vol.devno), 0, 65536) == b"\x11" * 65536
    assert direct_read(dm_block_node(vol.devno), 4 * 65536, 65536) == bytes(65536)
    assert pool.status().used_data_blocks == 1
    # When even the volume's own table cannot be put back, the snapshot's
    # device is not made again beside it: two devices on one thin id.
    pool.snapshot(vol_name, snap_name)
    snap_id = ctl.table(snap_name)[0].parsed().dev_id
    real_reload = thin_module.reload
    reloads = []

    def first_reload_only(*args, **kwargs):
        reloads.append(args)
        if len(reloads) > 1:
            raise dm.DMError(5, "DM_TABLE_LOAD", vol_name, None, "refused for the test")
        return real_reload(*args, **kwargs)
    monkeypatch.setattr(thin_module, "reload", first_reload_only)
    pool._message = refuse_delete
    with pytest.raises(dm.RollbackError, match=f"{snap_name} was not made again") as err:
        pool.merge(snap_name, into=vol_name)
    assert "refused for the test" in str(err.value.__cause__)
    assert not ctl.exists(snap_name) and ctl.table(vol_name)[0].parsed().dev_id == snap_id
    pool.teardown(volumes=True)
    assert _ours(ctl, dm_name) == []


def test_the_pool_grows_under_a_mounted_volume_and_wakes_the_low_water_waiter(dm_control, dm_name,
                                                                              pool_disks, tmp_path):
    import threading

    meta, data = pool_disks
    ctl = dm_control
    # 32 MiB of data (512 blocks of 64 KiB) now, 32 MiB more later; out of
    # space is an error at once, not a minute of queued I/O.
    pool = ThinPoolStack.create(ctl, dm_name, metadata=[Segment(meta.devno, 0, 4 * MIB)],
                                data=[Segment(data.devno, 0, 32 * MIB)], low_water_mark=160,
                                error_if_no_space=True)
    vol = pool.create_thin(f"{dm_name}-v", 40 * MIB)
    node = dm_block_node(vol.devno)
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(pool.wait_low_water(timeout=600)), daemon=True)
    waiter.start()
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0", node], check=True)
    subprocess.run(["mount", node, str(tmp_path)], check=True)
    try:
        written = 0
        with open(tmp_path / "a", "wb") as f:  # a MiB at a time, until the pool is at its mark
            while waiter.is_alive() and written < 24:
                f.write(os.urandom(1024 * 1024))
                os.fsync(f.fileno())
                written += 1
        waiter.join(600)
        assert not waiter.is_alive() and woke[0] is not None, "the low-water event did not wake the waiter"
        assert woke[0].total_data_blocks - woke[0].used_data_blocks <= 160
        with open(tmp_path / "a", "rb") as f:
            first = f.read()
        pool.extend_data([Segment(data.devno, 32 * MIB, 32 * MIB)])
        assert pool.status().total_data_blocks == 1024
        with open(tmp_path / "b", "wb") as f:  # more than the pool had left before
            f.write(os.urandom(12 * 1024 * 1024))
            os.fsync(f.fileno())
        blocks = pool.status().total_metadata_blocks
        pool.extend_metadata([Segment(meta.devno, 4 * MIB, 4 * MIB)])
        assert pool.status().total_metadata_blocks == 2 * blocks
        with open(tmp_path / "a", "rb") as f:
            assert f.read() == first
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)
    subprocess.run(["fsck.ext4", "-n", "-f", node], check=True, capture_output=True)
    assert pool.status().mode == "rw"
    pool.teardown(volumes=True)
