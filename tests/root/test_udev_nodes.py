# SPDX-License-Identifier: LGPL-2.1-or-later
"""/dev/mapper/<name> is final the moment create, resume, rename and remove
return - with udevd running (cookies) and with it stopped (our own nodes).

The root tier runs once per mode (``--no-udev`` boots); tests bound to one
mode skip in the other with the reason.  No sleeps: every assertion is made
right after the call returns.
"""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

import pydevmapper as dm
from pydevmapper import udev
from pydevmapper.control import Control
from pydevmapper.errors import DeviceBusyError
from tests.root.helpers import wait_for_dm_event

pytestmark = [pytest.mark.dm_root, pytest.mark.udev]

UDEV = udev.udev_running()
needs_udev = pytest.mark.skipif(not UDEV, reason="needs udevd running (the udev boot)")
needs_no_udev = pytest.mark.skipif(UDEV, reason="needs udevd stopped (the --no-udev boot)")

ZERO = dm.Table.single(2048, "zero")


def cookie_semaphores():
    """Keys of libdevmapper cookie semaphores, straight from the kernel."""
    with open("/proc/sysvipc/sem") as f:
        next(f)
        keys = [int(line.split()[0]) & 0xFFFFFFFF for line in f]
    return [k for k in keys if k >> 16 == udev.COOKIE_MAGIC]


def assert_node(ctl, name, devno):
    path = ctl.node_path(name)
    st = os.stat(path)  # follows udev's symlink to /dev/dm-N
    assert stat.S_ISBLK(st.st_mode), path
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == tuple(devno), path


def assert_no_node(ctl, name):
    assert not os.path.lexists(ctl.node_path(name)), ctl.node_path(name)


@pytest.fixture
def ctl(dm_control):
    return dm_control


@pytest.fixture(autouse=True)
def no_cookie_left():
    before = set(cookie_semaphores())
    yield
    assert set(cookie_semaphores()) <= before, "a udev cookie semaphore leaked"


def test_policy_follows_udevd(ctl):
    assert ctl.udev_sync is UDEV


def test_node_exists_when_create_returns_and_is_gone_when_remove_returns(ctl, dm_name):
    dev = ctl.create_device(dm_name, ZERO)
    try:
        assert_node(ctl, dm_name, dev.devno)
        assert dev.path == ctl.node_path(dm_name)
    finally:
        ctl.remove(dev.devno, retry=30.0)
    assert_no_node(ctl, dm_name)


@needs_udev
def test_with_udev_the_entry_is_udevs_symlink(ctl, dm_name):
    dev = ctl.create_device(dm_name, ZERO)
    try:
        path = ctl.node_path(dm_name)
        assert os.path.islink(path)
        assert os.readlink(path) == f"../dm-{dev.devno.minor}"
    finally:
        ctl.remove(dev.devno, retry=30.0)
    assert_no_node(ctl, dm_name)


@needs_no_udev
def test_without_udev_the_entry_is_our_block_node(ctl, dm_name):
    dev = ctl.create_device(dm_name, ZERO)
    try:
        st = os.lstat(ctl.node_path(dm_name))
        assert stat.S_ISBLK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660  # as udev would make it
        assert st.st_uid == 0 and st.st_gid == ctl.nodes.gid
        assert ctl.nodes.gid == 6 or ctl.nodes.gid > 0  # "disk"
    finally:
        ctl.remove(dev.devno)
    assert_no_node(ctl, dm_name)


@needs_no_udev
def test_udev_that_never_answers_times_out_cleanly(dm_name):
    # Forcing cookies with udevd stopped: nobody will release them.
    with Control(udev_sync=True, udev_timeout=0.5) as forced:
        with pytest.raises(udev.UdevTimeoutError) as info:
            forced.create_device(dm_name, ZERO)
    assert "udev never answered" in str(info.value)
    assert info.value.errno == errno.ETIMEDOUT
    # create_device cleaned up after the failed step, with no hang.
    with Control() as plain:
        assert not plain.exists(dm_name)
    assert cookie_semaphores() == []


def test_table_less_device(ctl, dm_name):
    info = ctl.create(dm_name)
    try:
        if ctl.udev_sync:
            # No disk yet, so no uevent: udev makes the entry at the first resume.
            assert_no_node(ctl, dm_name)
        else:
            assert_node(ctl, dm_name, info.devno)  # as libdevmapper does
        ctl.load(dm_name, ZERO)
        ctl.resume(dm_name)
        assert_node(ctl, dm_name, info.devno)
    finally:
        ctl.remove(dm_name, retry=30.0)
    assert_no_node(ctl, dm_name)


def test_rename_while_open_keeps_working_under_the_new_node(ctl, dm_name, dm_loop_device):
    size = 8 * 2048
    dev = ctl.create_device(dm_name, dm.Table.single(size, "linear", f"{dm_loop_device.devno_str} 0"))
    new = dm_name + "-renamed"
    try:
        fd = os.open(ctl.node_path(dm_name), os.O_RDWR)
        try:
            os.pwrite(fd, b"before rename\n".ljust(4096, b"."), 0)
            os.fsync(fd)
            info = ctl.rename(dm_name, new)
            assert info.name == new
            assert_no_node(ctl, dm_name)
            assert_node(ctl, new, dev.devno)
            # The open descriptor still works...
            os.pwrite(fd, b"after rename\n".ljust(4096, b"."), 4096)
            os.fsync(fd)
            # ...and the new node reaches the same data.
            fd2 = os.open(ctl.node_path(new), os.O_RDONLY)
            try:
                assert os.pread(fd2, 13, 0) == b"before rename"
                assert os.pread(fd2, 12, 4096) == b"after rename"
            finally:
                os.close(fd2)
        finally:
            os.close(fd)
        # Rename by uuid-less number and back, node follows.
        ctl.rename(dev.devno, dm_name)
        assert_node(ctl, dm_name, dev.devno)
        assert_no_node(ctl, new)
    finally:
        ctl.remove(dev.devno, retry=30.0)
    assert_no_node(ctl, dm_name)
    assert_no_node(ctl, new)


# The issue asks for 500; PYDM_CYCLES lowers it for a quick local run.
CYCLES = int(os.environ.get("PYDM_CYCLES", "500"))


def test_500_create_remove_cycles_leave_nothing(ctl, dm_name):
    before = set(cookie_semaphores())
    for i in range(CYCLES):
        name = f"{dm_name}-{i}"
        dev = ctl.create_device(name, ZERO)
        assert_node(ctl, name, dev.devno)
        ctl.remove(dev.devno, retry=30.0)
        assert_no_node(ctl, name)
    assert not [d for d in ctl.list_devices(uuids=False) if d.name.startswith(dm_name)]
    assert not [e for e in os.listdir(ctl.nodes.path) if e.startswith(dm_name)]
    assert set(cookie_semaphores()) <= before


def test_custom_dev_dir_gets_block_nodes(dm_name, tmp_path):
    # udev manages /dev only; under another DM_DEV_DIR the library makes
    # the nodes whatever the mode (and still waits for udev if it runs).
    dev_dir = tmp_path / "dev"
    (dev_dir / "mapper").mkdir(parents=True)
    os.symlink("/dev/mapper/control", dev_dir / "mapper" / "control")
    with Control(dev_dir=str(dev_dir)) as alt:
        assert alt.path == str(dev_dir / "mapper" / "control")
        dev = alt.create_device(dm_name, ZERO)
        try:
            node = dev_dir / "mapper" / dm_name
            assert stat.S_ISBLK(os.lstat(node).st_mode)
            assert_node(alt, dm_name, dev.devno)
        finally:
            alt.remove(dev.devno, retry=30.0)
        assert not os.path.lexists(dev_dir / "mapper" / dm_name)
        assert sorted(os.listdir(dev_dir / "mapper")) == ["control"]


def test_sync_nodes_reconciles(dm_name, tmp_path):
    dev_dir = tmp_path / "dev"
    (dev_dir / "mapper").mkdir(parents=True)
    with Control("/dev/mapper/control", dev_dir=str(dev_dir)) as alt:
        dev = alt.create_device(dm_name, ZERO)
        try:
            os.unlink(dev_dir / "mapper" / dm_name)  # missing
            os.mknod(dev_dir / "mapper" / f"{dm_name}-stale", stat.S_IFBLK | 0o600,
                     os.makedev(1, 3))
            result = alt.sync_nodes()
            assert dm_name in result.created
            assert f"{dm_name}-stale" in result.removed
            assert_node(alt, dm_name, dev.devno)
            assert not os.path.lexists(dev_dir / "mapper" / f"{dm_name}-stale")
        finally:
            alt.remove(dev.devno, retry=30.0)


# -- removal variants ------------------------------------------------------------


def test_deferred_remove_vanishes_on_last_close(ctl, dm_name):
    dev = ctl.create_device(dm_name, ZERO)
    fd = os.open(ctl.node_path(dm_name), os.O_RDONLY)
    try:
        ctl.remove(dm_name, deferred=True)
        info = ctl.info(dev.devno)
        assert info.deferred_remove
        assert_node(ctl, dm_name, dev.devno)  # still there while open
        ctl.cancel_deferred_remove(dev.devno)
        assert not ctl.info(dev.devno).deferred_remove
        ctl.remove(dm_name, deferred=True)
        assert ctl.info(dev.devno).deferred_remove
    finally:
        os.close(fd)
    # The kernel removes it on last close (from a work item): wait for the event.
    assert wait_for_dm_event(ctl, lambda: not ctl.exists(dm_name))
    # Nobody was there to remove the entry; mknodes prunes it.
    ctl.sync_nodes()
    assert_no_node(ctl, dm_name)


def test_remove_retry_is_bounded_and_succeeds_once_closed(ctl, dm_name):
    dev = ctl.create_device(dm_name, ZERO)
    fd = os.open(ctl.node_path(dm_name), os.O_RDONLY)
    try:
        with pytest.raises(DeviceBusyError):
            ctl.remove(dm_name, retry=0.2)
        assert ctl.exists(dm_name)
        closer = threading.Timer(0.1, os.close, (fd,))
        closer.start()
        fd = -1
        ctl.remove(dm_name, retry=30.0)
        closer.join()
    finally:
        if fd >= 0:
            os.close(fd)
        if ctl.exists(dev.devno):
            ctl.remove(dev.devno, retry=30.0)
    assert not ctl.exists(dm_name)
    assert_no_node(ctl, dm_name)


def test_force_remove_swaps_in_an_error_table(ctl, dm_name):
    ctl.create_device(dm_name, ZERO)
    fd = os.open(ctl.node_path(dm_name), os.O_RDONLY)
    try:
        with pytest.raises(DeviceBusyError):
            ctl.remove(dm_name, force=True)
        table = ctl.table(dm_name)
        assert [(t.start, t.length, t.type) for t in table] == [(0, 2048, "error")]
        with pytest.raises(OSError) as info:
            os.pread(fd, 4096, 0)
        assert info.value.errno == errno.EIO
    finally:
        os.close(fd)
    ctl.remove(dm_name, force=True, retry=30.0)
    assert not ctl.exists(dm_name)
    assert_no_node(ctl, dm_name)


def test_force_remove_of_a_suspended_device(ctl, dm_name):
    dev = ctl.create_device(dm_name, ZERO)
    ctl.suspend(dev.devno)
    ctl.remove(dev.devno, force=True, retry=30.0)
    assert not ctl.exists(dm_name)
    assert_no_node(ctl, dm_name)
