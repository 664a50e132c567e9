# SPDX-License-Identifier: LGPL-2.1-or-later
"""The owner and mode of nodes the library makes, and read-ahead, on the
real kernel (the values' checks are in the unit tier).

pydmsetup's -U/-G/-M and --readahead are compared with dmsetup's in
test_cli_vs_dmsetup.py.
"""

from __future__ import annotations

import os
import stat

import pytest

from pydevmapper import readahead
from pydevmapper.control import Control
from pydevmapper.errors import DeviceNotFoundError
from pydevmapper.types import DevNo
from tests.root.helpers import DISK_AT_CREATE

pytestmark = pytest.mark.dm_root


def test_nodes_get_the_controls_owner_and_mode(dm_name):
    # No udev sync: the library makes the node (and tells udev to keep off).
    with Control(udev_sync=False, node_uid=1234, node_gid=4321, node_mode=0o640) as ctl:
        with ctl.create_device(dm_name, "0 64 zero") as dev:
            st = os.lstat(dev.path)
            assert stat.S_ISBLK(st.st_mode)
            assert st.st_rdev == os.makedev(*dev.devno)
            assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1234, 4321)
            # A rename keeps the node (the same inode, moved).
            ctl.rename(dm_name, dm_name + "-b")
            st2 = os.lstat(ctl.node_path(dm_name + "-b"))
            assert (st2.st_ino, st2.st_uid, stat.S_IMODE(st2.st_mode)) == (st.st_ino, 1234, 0o640)
        assert not os.path.lexists(ctl.node_path(dm_name + "-b"))


def test_mode_is_not_narrowed_by_the_umask(dm_name):
    old = os.umask(0o077)
    try:
        with Control(udev_sync=False, node_mode=0o666) as ctl:
            with ctl.create_device(dm_name, "0 64 zero") as dev:
                assert stat.S_IMODE(os.lstat(dev.path).st_mode) == 0o666
    finally:
        os.umask(old)


def test_read_ahead_round_trip(dm_control, dm_name):
    with dm_control.create_device(dm_name, "0 64 zero") as dev:
        default = dev.read_ahead
        assert default > 0 and default % 2 == 0
        # By name, by number, through the handle: the same sysfs entry.
        assert dm_control.set_read_ahead(dm_name, 1000) == 1000
        assert dm_control.read_ahead(dev.devno) == 1000 == dev.read_ahead
        assert dev.set_read_ahead(7) == 8  # whole KiB, rounded up
        assert readahead.read(dev.devno) == 8
        # minimum: raises, never lowers
        assert dev.set_read_ahead(4, minimum=True) == 8
        assert dev.set_read_ahead(64, minimum=True) == 64
        assert dev.set_read_ahead(0) == 0
        devno = dev.devno
    with pytest.raises(DeviceNotFoundError):
        dm_control.read_ahead(dm_name)
    # The number of a removed device: sysfs has no entry for it any more.
    with pytest.raises(DeviceNotFoundError) as info:
        dm_control.set_read_ahead(DevNo(*devno), 256)
    assert info.value.device == str(devno)


def test_read_ahead_needs_the_disk_the_first_load_adds(dm_control, dm_name):
    info = dm_control.create(dm_name)
    try:
        if DISK_AT_CREATE:  # 5.10: the disk is there from the creation
            assert dm_control.read_ahead(dm_name) > 0
        else:
            with pytest.raises(DeviceNotFoundError, match="first table is loaded"):
                dm_control.read_ahead(dm_name)
        dm_control.load(dm_name, "0 64 zero")
        assert dm_control.read_ahead(info.devno) > 0
    finally:
        dm_control.remove(dm_name, retry=5.0)
