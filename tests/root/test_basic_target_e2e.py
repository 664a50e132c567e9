# SPDX-License-Identifier: LGPL-2.1-or-later
"""The seeds' walkthrough, end to end, through the API and basic_target."""

from __future__ import annotations

import mmap
import os
import shutil
import subprocess

import pytest

import pydevmapper as dm
from pydevmapper import kmod
from tests.root.helpers import dm_block_node, sectors_of

pytestmark = [pytest.mark.dm_root, pytest.mark.dm_needs_basic_target]

OFFSET = 2048  # sectors: the device starts 1 MiB into the loop device
MIB = 1024 * 1024


def counters(dev: dm.Device) -> dict:
    (status,) = dev.status()
    assert status.type == "basic_target"
    reads, writes, read_sectors, write_sectors = (int(x) for x in status.status.split())
    return {"reads": reads, "writes": writes, "read_sectors": read_sectors,
            "write_sectors": write_sectors}


def aligned(size: int) -> mmap.mmap:
    """A page-aligned buffer, as O_DIRECT wants."""
    return mmap.mmap(-1, size)


@pytest.fixture
def basic_dev(dm_basic_target, dm_loop_device, dm_make_device):
    size = sectors_of(dm_loop_device.path) - OFFSET
    table = dm.Table.single(size, "basic_target", f"{dm_loop_device.devno_str} {OFFSET}")
    dev = dm_make_device(table)
    return dev, dm_loop_device


def test_target_is_registered(dm_basic_target, dm_control):
    assert dm_control.target_version("basic_target").version == (1, 0, 0)


def test_table_round_trips_through_the_kernel(basic_dev):
    dev, loop = basic_dev
    table = dev.table()
    assert table[0].params == f"{loop.devno_str} {OFFSET}"
    # What `table` prints can be fed back in unchanged.
    dev.reload(table)
    assert dev.table() == table


def test_direct_io_pattern_lands_at_the_offset_and_counts(basic_dev):
    dev, loop = basic_dev
    pattern = os.urandom(MIB)
    out, back = aligned(MIB), aligned(MIB)
    out.write(pattern)
    dev.message("reset")
    fd = os.open(dm_block_node(dev.devno), os.O_RDWR | os.O_DIRECT)
    try:
        assert os.pwrite(fd, out, 4 * MIB) == MIB
        assert os.preadv(fd, [back], 4 * MIB) == MIB
    finally:
        os.close(fd)
    assert bytes(back) == pattern
    seen = counters(dev)
    assert seen["write_sectors"] == MIB // 512 and seen["writes"] >= 1
    assert seen["read_sectors"] >= MIB // 512 and seen["reads"] >= 1
    # The data sits OFFSET sectors further on the loop device.
    raw = aligned(MIB)
    fd = os.open(loop.path, os.O_RDONLY | os.O_DIRECT)
    try:
        os.preadv(fd, [raw], 4 * MIB + OFFSET * 512)
    finally:
        os.close(fd)
    assert bytes(raw) == pattern
    # The stats message answers with the same counters.
    assert dev.message("stats").split() == dev.status()[0].status.split()
    dev.message("reset")
    assert counters(dev)["write_sectors"] == 0


def test_filesystem_on_basic_target(basic_dev, tmp_path):
    for tool in ("mkfs.ext4", "fsck.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (Debian: e2fsprogs, mount)")
    dev, _ = basic_dev
    node = dm_block_node(dev.devno)
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    run("mkfs.ext4", "-q", "-F", node)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run("mount", node, str(mnt))
    try:
        for i in range(20):
            (mnt / f"file{i}").write_bytes(os.urandom(64 * 1024))
        os.sync()
    finally:
        run("umount", str(mnt))
    before = counters(dev)["write_sectors"]
    assert before > 0
    run("fsck.ext4", "-f", "-n", node)


def test_suspend_resume_keeps_data(basic_dev):
    dev, _ = basic_dev
    node = dm_block_node(dev.devno)
    with open(node, "r+b", buffering=0) as f:
        f.write(b"A" * 4096)
        os.fsync(f.fileno())
    assert dev.suspend().suspended
    assert dev.info().suspended
    assert not dev.resume().suspended
    with open(node, "rb", buffering=0) as f:
        assert f.read(4096) == b"A" * 4096


def test_reload_to_new_offset_while_open(basic_dev):
    dev, loop = basic_dev
    with open(loop.path, "r+b", buffering=0) as raw:
        raw.seek(OFFSET * 512)
        raw.write(b"1" * 4096)
        raw.seek(2 * OFFSET * 512)
        raw.write(b"2" * 4096)
        os.fsync(raw.fileno())
    fd = os.open(dm_block_node(dev.devno), os.O_RDONLY | os.O_DIRECT)
    try:
        buf = aligned(4096)
        os.preadv(fd, [buf], 0)
        assert bytes(buf) == b"1" * 4096
        size = sectors_of(loop.path) - 2 * OFFSET
        dev.reload(dm.Table.single(size, "basic_target", f"{loop.devno_str} {2 * OFFSET}"))
        assert dev.info().open_count == 1
        os.preadv(fd, [buf], 0)
        assert bytes(buf) == b"2" * 4096
    finally:
        os.close(fd)


@pytest.mark.parametrize("params, reason", [
    ("{dev}", "Invalid argument count"),
    ("{dev} 0 extra", "Invalid argument count"),
    ("{dev} -5", "Invalid device offset"),
    ("{dev} 12abc", "Invalid device offset"),
    ("/dev/no-such-device 0", "Device lookup failed"),
])
def test_bad_tables_fail_with_the_targets_reason(dm_basic_target, dm_loop_device, dm_control,
                                                 dm_name, params, reason):
    table = dm.Table.single(1024, "basic_target", params.format(dev=dm_loop_device.devno_str))
    with pytest.raises(dm.InvalidTableError) as exc:
        dm_control.create_device(dm_name, table)
    assert reason in (exc.value.kernel_message or ""), exc.value
    assert reason in str(exc.value)
    assert not dm_control.exists(dm_name)


def test_unknown_message_is_refused(basic_dev):
    dev, _ = basic_dev
    with pytest.raises(dm.DMError) as exc:
        dev.message("frobnicate")
    assert exc.value.command == "DM_TARGET_MSG"


def test_module_in_use_cannot_be_unloaded(basic_dev, dm_basic_target):
    with pytest.raises(kmod.ModuleInUseError):
        kmod.unload_module("basic_target")
    with pytest.raises(kmod.ModuleAlreadyLoadedError):
        kmod.load_module(dm_basic_target)
