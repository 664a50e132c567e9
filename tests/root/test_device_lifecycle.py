# SPDX-License-Identifier: LGPL-2.1-or-later
"""DEV_CREATE, DEV_STATUS, DEV_RENAME, DEV_SUSPEND, DEV_REMOVE against the kernel."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading

import pytest

import pydevmapper as dm
from pydevmapper import targets as t
from tests.root.helpers import dm_block_node, wait_for_dm_event
from tests.root.target_helpers import direct_read, write_path

pytestmark = pytest.mark.dm_root


def test_version_is_interface_4(dm_control):
    major, minor, _ = dm_control.version()
    assert major == 4 and minor >= 37


def test_create_without_table_then_remove(dm_control, dm_name):
    info = dm_control.create(dm_name, uuid=f"PYDMT-{dm_name}")
    try:
        assert info.name == dm_name
        assert info.uuid == f"PYDMT-{dm_name}"
        assert not info.live_table and not info.inactive_table
        listed = {d.name: d for d in dm_control.list_devices()}
        assert (listed[dm_name].uuid, listed[dm_name].major) == (info.uuid, info.major)
        by_uuid = dm_control.info(dm.Uuid(info.uuid))
        by_devno = dm_control.info(info.devno)
        assert by_uuid == by_devno == dm_control.info(dm_name)
    finally:
        dm_control.remove(dm_name)
    assert dm_name not in {d.name for d in dm_control.list_devices()}
    with pytest.raises(dm.DeviceNotFoundError) as exc:
        dm_control.info(dm_name)
    assert exc.value.command == "DM_DEV_STATUS" and exc.value.device == dm_name


def test_create_with_chosen_minor(dm_control, dm_name):
    major = dm_control.create(dm_name).major
    dm_control.remove(dm_name)
    info = dm_control.create(dm_name, devno=dm.DevNo(major, 4000))
    try:
        assert info.devno == (major, 4000)
    finally:
        dm_control.remove(dm_name)


def test_a_device_number_in_use_is_refused_as_taken(dm_make_device, dm_control, dm_name):
    taken = dm_make_device("0 8 zero").info().devno
    with pytest.raises(dm.DeviceExistsError, match=f"minor {taken.minor} is already in use"):
        dm_control.create(dm_name, devno=taken)
    assert not dm_control.exists(dm_name)


def test_resume_without_a_table_changes_nothing_and_makes_no_node(dm_control, dm_name):
    """The kernel resumes a device that has no table to no effect (it has no
    disk yet, no uevent is raised): no /dev/mapper entry appears, through
    the API or pydmsetup."""
    from tests.root.helpers import forked_main

    dm_control.create(dm_name, node=False)
    try:
        before = dm_control.info(dm_name)
        assert not before.live_table
        dm_control.resume(dm_name)
        assert not os.path.lexists(f"/dev/mapper/{dm_name}")
        assert forked_main(["resume", dm_name]) == (0, b"", b"")
        assert not os.path.lexists(f"/dev/mapper/{dm_name}")
        assert dm_control.info(dm_name) == before
    finally:
        dm_control.remove(dm_name)


def test_duplicate_name_and_uuid_are_refused(dm_make_device, dm_control, dm_name):
    dm_make_device("0 8 zero", name=dm_name, uuid=f"PYDMT-dup-{dm_name}")
    with pytest.raises(dm.DeviceExistsError) as exc:
        dm_control.create(dm_name)
    assert exc.value.command == "DM_DEV_CREATE"
    with pytest.raises(dm.DeviceExistsError):
        dm_control.create(dm_name + "x", uuid=f"PYDMT-dup-{dm_name}")
    assert not dm_control.exists(dm_name + "x")


def test_rename_and_set_uuid(dm_make_device, dm_control, dm_name):
    dev = dm_make_device("0 8 zero")
    info = dev.rename(dm_name)
    assert info.name == dm_name and dev.name == dm_name
    assert dm_control.info(dm_name).devno == dev.devno
    info = dm_control.set_uuid(dm_name, f"PYDMT-set-{dm_name}")
    assert info.uuid == f"PYDMT-set-{dm_name}"
    with pytest.raises(dm.DMError):  # a uuid is set once
        dm_control.set_uuid(dm_name, "PYDMT-another")


def test_rename_to_existing_name_is_refused(dm_make_device, dm_control):
    first = dm_make_device("0 8 zero")
    second = dm_make_device("0 8 zero")
    with pytest.raises(dm.DeviceExistsError):
        second.rename(first.name)


def test_suspend_and_resume_flags(dm_make_device, dm_control):
    dev = dm_make_device("0 64 zero")
    assert not dev.info().suspended
    assert dev.suspend(noflush=True, nolockfs=True).suspended
    assert dm_control.info(dev.devno).suspended
    assert not dev.resume().suspended


def in_thread(fn, *args):
    """Start fn(*args) in a daemon thread; returns (thread, outcome list)."""
    outcome: list = []

    def run():
        try:
            outcome.append(fn(*args))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


# How long a call that should block is watched before calling it blocked,
# and how long one that should finish may take under emulation.
BLOCKED_FOR = 3.0
FINISHES_IN = 60.0


def test_suspend_freezes_the_filesystem_unless_nolockfs_or_noflush(dm_make_loop, dm_make_device, tmp_path):
    # A plain suspend freezes the mounted filesystem: a write into it waits
    # for the resume.  With nolockfs it goes to the page cache while the
    # device stays suspended - and with noflush too, which the kernel lets
    # take precedence over locking the filesystem (__dm_suspend), so the
    # flags are each seen to reach it.
    for tool in ("mkfs.ext4", "mount", "umount"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing (Debian: e2fsprogs, mount)")
    loop = dm_make_loop(32)
    dev = dm_make_device(f"0 {32 * 2048} linear {loop.path} 0")
    subprocess.run(["mkfs.ext4", "-q", "-F", dev_node(dev)], check=True)
    subprocess.run(["mount", dev_node(dev), str(tmp_path)], check=True)
    try:
        fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for flags in ({}, {"nolockfs": True}, {"noflush": True}):
                frozen = not flags
                dev.suspend(**flags)
                try:
                    thread, outcome = in_thread(os.write, fd, b"x" * 4096)
                    thread.join(BLOCKED_FOR if frozen else FINISHES_IN)
                    assert thread.is_alive() is frozen, flags
                    assert dev.info().suspended
                finally:
                    dev.resume()
                thread.join(FINISHES_IN)
                assert outcome == [4096]
        finally:
            os.close(fd)
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)


def test_noflush_suspend_keeps_queued_io_that_a_plain_one_fails(dm_make_loop, dm_make_device):
    # A multipath device that queues while it has no path holds a read once
    # its only path has failed.  A plain suspend must flush that read, so
    # the target stops queueing for it and the read fails; with noflush it
    # stays queued through the suspend and completes from the table loaded
    # while suspended (the path again healthy): multipathd's path switch.
    # Bio-based: request-based multipath fails a held request only if the
    # queue happens to run it before the suspend stops the queue.
    loop = dm_make_loop(4)
    write_path(loop.path, 0, b"\x5a" * 4096)
    table = dm.Table.single(8192, t.Multipath([[loop]], queue_if_no_path=True, queue_mode="bio"))
    dev = dm_make_device(table)
    for noflush in (True, False):
        dev.message(t.Multipath.no_path_policy(queue=True))
        dev.message(t.Multipath.fail_path(loop))
        thread, outcome = in_thread(direct_read, dev_node(dev), 0, 4096)
        try:
            thread.join(BLOCKED_FOR)
            assert thread.is_alive(), "the read was not queued"
            dev.suspend(noflush=noflush)
            thread.join(BLOCKED_FOR if noflush else FINISHES_IN)
            assert thread.is_alive() is noflush, f"noflush={noflush}: {outcome}"
            dev.load(table)
            dev.resume()
            thread.join(FINISHES_IN)
            if noflush:
                assert outcome == [b"\x5a" * 4096]
            else:
                assert [getattr(o, "errno", o) for o in outcome] == [errno.EIO]
        finally:
            # After a failed check nothing may stay queued, or the device
            # could not be removed: udev's probe may be waiting on the
            # queue too, and the resume's udev wait behind it.
            try:
                if dev.info().suspended:
                    dev.resume()
            finally:
                dev.message(t.Multipath.no_path_policy(queue=False))
                thread.join(FINISHES_IN)


def test_open_count_and_busy_remove(dm_make_device, dm_control):
    dev = dm_make_device("0 64 zero")
    fd = os.open(dev_node(dev), os.O_RDONLY)
    try:
        assert dev.info().open_count == 1
        with pytest.raises(dm.DeviceBusyError) as exc:
            dm_control.remove(dev.devno)
        assert exc.value.command == "DM_DEV_REMOVE"
    finally:
        os.close(fd)
    assert dev.info().open_count == 0


def test_deferred_remove_and_cancel(dm_control, dm_name):
    dev = dm_control.create_device(dm_name, "0 64 zero")
    fd = os.open(dev_node(dev), os.O_RDONLY)
    try:
        dev.remove(deferred=True)
        assert dm_control.info(dm_name).deferred_remove
        dm_control.cancel_deferred_remove(dm_name)
        assert not dm_control.info(dm_name).deferred_remove
        dm_control.remove(dm_name, deferred=True)
        assert dm_control.exists(dm_name)
    finally:
        os.close(fd)
    # The last close queues the removal; the kernel finishes it from a
    # workqueue and raises a DM event when it is gone.
    assert wait_for_dm_event(dm_control, lambda: not dm_control.exists(dm_name))


def test_remove_all_removes_the_unused_and_spares_open_devices(dm_control, dm_make_device):
    # REMOVE_ALL touches every device of the machine: the guest holds
    # nothing else of value.
    unused = dm_make_device("0 8 zero")
    dev = dm_make_device("0 8 zero")
    fd = os.open(dev_node(dev), os.O_RDONLY)
    try:
        dm_control.remove_all()
        assert dm_control.exists(dev.devno)
        assert not dm_control.exists(unused.devno)
    finally:
        os.close(fd)


def _geometry(path: str) -> tuple[int, int, int, int]:
    """HDIO_GETGEO: struct hd_geometry {u8 heads, sectors; u16 cylinders; ulong start}."""
    import fcntl
    import struct

    layout = struct.Struct("@BBHL")
    fd = os.open(path, os.O_RDONLY)
    try:
        heads, sectors, cylinders, start = layout.unpack(fcntl.ioctl(fd, 0x0301, bytes(layout.size)))
    finally:
        os.close(fd)
    return cylinders, heads, sectors, start


def test_set_geometry_is_what_hdio_getgeo_reports(dm_make_device, dm_control):
    dev = dm_make_device("0 2048 zero")
    dm_control.set_geometry(dev.devno, 2, 16, 63, 0)
    assert _geometry(dev_node(dev)) == (2, 16, 63, 0)
    dm_control.set_geometry(dev.name, 65535, 255, 255, 7)
    assert _geometry(dev_node(dev)) == (65535, 255, 255, 7)
    with pytest.raises(dm.DMError):
        dm_control.set_geometry(dm.DevNo(dev.devno.major, 1 << 19), 2, 16, 63, 0)


def dev_node(dev: dm.Device) -> str:
    # devtmpfs names dm devices dm-<minor>, with or without udev.
    return dm_block_node(dev.devno)


def _in_unprivileged_child(action) -> int:
    """Run action() as nobody in a child; its exit code says how it went."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 4
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = action()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_unprivileged_open_is_a_permission_error():
    def action() -> int:
        try:
            dm.Control()
        except dm.DMPermissionError as exc:
            return 0 if "CAP_SYS_ADMIN" in str(exc) and isinstance(exc, PermissionError) else 3
        return 1

    assert _in_unprivileged_child(action) == 0


def test_unprivileged_ioctl_on_a_root_descriptor_is_a_permission_error(dm_control):
    ctl = dm.Control()  # opened as root, used after dropping privileges
    ctl.version()  # cached now, so the child's first ioctl is the listing

    def action() -> int:
        try:
            ctl.list_devices()
        except dm.DMPermissionError as exc:
            return 0 if exc.command == "DM_LIST_DEVICES" else 3
        return 1

    try:
        assert _in_unprivileged_child(action) == 0
    finally:
        ctl.close()
