# SPDX-License-Identifier: LGPL-2.1-or-later
"""TABLE_LOAD / CLEAR / STATUS / DEPS on linear, zero, error and striped targets."""

from __future__ import annotations

import errno
import os

import pytest

import pydevmapper as dm
from tests.root.helpers import dm_block_node, sectors_of

pytestmark = pytest.mark.dm_root


def test_linear_table_status_and_deps(dm_make_loop, dm_make_device):
    loop = dm_make_loop(8)
    size = sectors_of(loop.path)
    table = dm.Table([dm.Target(0, size // 2, "linear", f"{loop.devno_str} 0"),
                      dm.Target(size // 2, size // 2, "linear", f"{loop.devno_str} {size // 2}")])
    dev = dm_make_device(table)
    assert dev.table() == table
    assert sectors_of(dm_block_node(dev.devno)) == size
    assert [(s.start, s.length, s.type, s.status) for s in dev.status()] == [
        (0, size // 2, "linear", ""), (size // 2, size // 2, "linear", "")]
    assert dev.deps() == [dm.DevNo(*loop.devno)]
    info = dev.info()
    assert info.live_table and info.target_count == 2 and not info.read_only


def test_zero_and_error_targets(dm_make_device):
    dev = dm_make_device("0 100 zero\n100 28 error\n")
    assert [t.type for t in dev.table()] == ["zero", "error"]
    fd = os.open(dm_block_node(dev.devno), os.O_RDONLY)
    try:
        assert os.pread(fd, 512, 0) == b"\0" * 512
        with pytest.raises(OSError):
            os.pread(fd, 512, 100 * 512)
    finally:
        os.close(fd)
    assert dev.deps() == []


def test_striped_target(dm_make_loop, dm_make_device):
    a, b = dm_make_loop(4), dm_make_loop(4)
    params = f"2 16 {a.devno_str} 0 {b.devno_str} 0"
    dev = dm_make_device(dm.Table.single(2 * 8192, "striped", params))
    assert dev.table()[0].params == params
    assert sorted(dev.deps()) == sorted([dm.DevNo(*a.devno), dm.DevNo(*b.devno)])


def test_readonly_table(dm_make_device):
    dev = dm_make_device("0 8 zero", readonly=True)
    assert dev.info().read_only
    # Opening for write succeeds on a read-only disk; writing does not.
    fd = os.open(dm_block_node(dev.devno), os.O_WRONLY)
    try:
        with pytest.raises(OSError):
            os.pwrite(fd, b"x" * 512, 0)
    finally:
        os.close(fd)


def test_inactive_table_load_query_and_clear(dm_make_device, dm_control):
    dev = dm_make_device("0 64 zero")
    info = dev.load("0 32 error")
    assert info.inactive_table and info.live_table
    assert dev.table(inactive=True) == dm.Table.parse("0 32 error")
    assert dev.table() == dm.Table.parse("0 64 zero")
    assert dm_control.info(dev.devno, inactive=True).target_count == 1
    assert [s.type for s in dev.status(inactive=True)] == ["error"]
    assert not dev.control.clear(dev.devno).inactive_table
    assert dev.table(inactive=True) is None


def test_reload_swaps_table_and_keeps_old_one_when_rejected(dm_make_device):
    dev = dm_make_device("0 64 zero")
    dev.reload("0 128 error")
    assert dev.table() == dm.Table.parse("0 128 error")
    with pytest.raises(dm.InvalidTableError):
        dev.reload("0 64 linear 0:0 0")
    assert dev.table() == dm.Table.parse("0 128 error")
    assert not dev.info().inactive_table and not dev.info().suspended


def test_a_reload_the_kernel_refuses_only_at_resume_keeps_the_old_table_live(dm_make_device,
                                                                             dm_loop_device):
    """A linear target longer than its device loads (the size is checked when
    the table is swapped in, at resume): the resume fails, the old table
    stays live and the device is resumed, with no inactive table left."""
    major, minor = dm_loop_device.devno
    dev = dm_make_device(f"0 64 linear {major}:{minor} 0")
    sectors = 64 * 1024 * 2  # the fixture's 64 MiB
    with pytest.raises(dm.DMError) as exc:
        dev.reload(f"0 {sectors + 8} linear {major}:{minor} 0")
    assert exc.value.command == "DM_DEV_SUSPEND"
    assert dev.table() == dm.Table.parse(f"0 64 linear {major}:{minor} 0")
    info = dev.info()
    assert not info.suspended and info.live_table and not info.inactive_table
    fd = os.open(dev.path, os.O_RDONLY)
    try:
        assert len(os.pread(fd, 4096, 0)) == 4096  # it answers I/O again
    finally:
        os.close(fd)


def test_rejected_table_carries_kernel_reason_and_rolls_back(dm_control, dm_name):
    with pytest.raises(dm.InvalidTableError) as exc:
        dm_control.create_device(dm_name, "0 64 linear 254:65000 0")
    err = exc.value
    assert err.command == "DM_TABLE_LOAD"
    assert err.kernel_message and "linear" in err.kernel_message
    assert "Device lookup failed" in str(err) or "lookup" in err.kernel_message.lower()
    assert not dm_control.exists(dm_name)


def test_unknown_target_type(dm_control, dm_name):
    with pytest.raises(dm.InvalidTableError) as exc:
        dm_control.create_device(dm_name, "0 8 no-such-target")
    assert "no-such-target" in (exc.value.kernel_message or "")
    assert not dm_control.exists(dm_name)


@pytest.mark.parametrize("table", [
    "0 8 zero\n16 8 zero",          # gap
    "0 8 zero\n4 8 zero",           # overlap
    "0 0 zero",                     # zero length
    "",                             # empty
    "8 8 zero",                     # does not start at 0
])
def test_bad_tables_never_reach_the_kernel(dm_control, dm_name, table):
    before = dm_control.list_devices()
    with pytest.raises(dm.ValidationError):
        dm_control.create_device(dm_name, table)
    assert dm_control.list_devices() == before


@pytest.mark.parametrize("name", ["x" * 128, "a/b", ".", "..", "control", "", "nul\0byte"])
def test_bad_names_never_reach_the_kernel(dm_control, name):
    before = dm_control.list_devices()
    with pytest.raises(dm.ValidationError):
        dm_control.create_device(name, "0 8 zero")
    assert dm_control.list_devices() == before


def test_longest_name_is_kept_whole(dm_control, dm_prefix):
    name = (dm_prefix + "L" * 127)[:127]
    with dm_control.create_device(name, "0 8 zero") as dev:
        assert dev.name == name
        assert name in {d.name for d in dm_control.list_devices()}


@pytest.mark.dm_needs_basic_target
def test_ima_measurement(dm_basic_target, dm_loop_device, dm_make_device, dm_control):
    """basic_target answers STATUSTYPE_IMA in its own form, unlike its table
    or status: what comes back proves the IMA flag reached the kernel.
    A kernel before interface 4.45 (5.10) has no IMA measurement: the call
    is refused with the typed error, naming the interface it needs."""
    dev = dm_make_device(f"0 64 basic_target {dm_loop_device.devno_str} 8")
    if dm_control.version() < (4, 45, 0):
        with pytest.raises(dm.UnsupportedError, match=r"IMA measurement needs device-mapper interface 4\.45\.0") as err:
            dm_control.ima_measurement(dev.devno)
        assert err.value.errno == errno.ENOTSUP
        return
    [measured] = dm_control.ima_measurement(dev.devno)
    assert measured.type == "basic_target"
    assert measured.status == (f"target_name=basic_target,target_version=1.0.0,"
                               f"device_name={dm_loop_device.devno_str},start=8;")


def test_reply_buffer_follows_the_replies_and_large_tables_still_come_whole(dm_make_device):
    """The buffer sent for DM_TABLE_STATUS shrinks to what small tables use
    (the kernel copies the whole of it in on every call); a table larger
    than that, read next, makes the kernel answer DM_BUFFER_FULL_FLAG and
    comes back whole on a larger buffer."""
    small = dm_make_device("0 8 zero")
    big_table = dm.Table([dm.Target(i * 8, 8, "linear" if i % 2 else "zero",
                                    f"{small.devno} 0" if i % 2 else "")
                          for i in range(300)])
    big = dm_make_device(big_table)
    with dm.Control(udev_sync=False) as ctl:
        for _ in range(60):
            assert ctl.table(small.devno) == dm.Table.parse("0 8 zero")
        assert ctl.channel.size_hints["DM_TABLE_STATUS"] == 1024
        assert ctl.channel.buffer_retries == 0
        assert ctl.table(big.devno) == big_table
        assert ctl.channel.buffer_retries >= 1
        status = ctl.status(big.devno)
        assert [(s.start, s.type) for s in status] == [(t.start, t.type) for t in big_table]
        retries = ctl.channel.buffer_retries
        # Small tables in between cost the large one no further retry.
        for _ in range(3):
            assert ctl.status(small.devno)[0].type == "zero"
            assert ctl.table(big.devno) == big_table
        assert ctl.channel.buffer_retries == retries
