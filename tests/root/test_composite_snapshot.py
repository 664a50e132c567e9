# SPDX-License-Identifier: LGPL-2.1-or-later
"""SnapshotStack against the kernel: a snapshot of a mounted ext4 volume
taken while a writer writes, the snapshot's filesystem clean; then merged
back while the filesystem is mounted again and written: clean, with the
snapshot's files and the ones written during the merge, and nothing left.
A suspend that waited on a suspended device below would hang: the root
tier's watchdog fails the test then."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

import pydevmapper as dm
from pydevmapper.composites import Segment, SnapshotStack
from pydevmapper.testing.sweep import leftover_devices, remove_devices
from tests.root.helpers import dm_block_node
from tests.root.target_helpers import MIB

pytestmark = pytest.mark.dm_root


@pytest.fixture
def origin(dm_control, dm_make_loop, dm_make_device, dm_name):
    """<name>: linear over a loop device, with ext4 on it; a second loop
    device for the COW; nothing of the test's prefix left afterwards."""
    disk, cow = dm_make_loop(64), dm_make_loop(32)
    dev = dm_control.create_device(dm_name, dm.Table.single(64 * MIB, "linear", f"{disk.devno_str} 0"))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", dm_block_node(dev.devno)], check=True)
    yield dev, cow
    left = [n for n in leftover_devices(dm_control, dm_name) if n != dm_name]
    left_origin = dm_control.table(dm_name)  # the origin is the fixture's: it stays till here
    remove_devices(dm_control, [*left, dm_name])
    assert str(left_origin).split()[2] == "linear", f"the origin left as {left_origin}"
    remove_devices(dm_control, left)
    assert left == [], f"left behind: {left}"


class Writer:
    """Writes numbered files into a directory until stopped, ``limit`` at
    most: a slow step (a loaded host) must not let it fill the filesystem
    or overflow the snapshot's COW (150 files of 64 KiB are 9.4 MiB)."""

    def __init__(self, where, prefix, limit=150):
        self.where, self.prefix, self.count, self.error, self.limit = where, prefix, 0, None, limit
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop.is_set():
                if self.count >= self.limit:
                    self.stop.wait(0.1)
                    continue
                path = os.path.join(self.where, f"{self.prefix}{self.count}")
                with open(path, "wb") as f:
                    f.write(bytes([self.count % 256]) * 65536)
                    os.fsync(f.fileno())
                self.count += 1
        except OSError as exc:
            self.error = exc

    def finish(self):
        self.stop.set()
        self.thread.join(300)
        assert not self.thread.is_alive(), "the writer hung"
        assert self.error is None, self.error
        return self.count


def _until(condition):
    import time

    deadline = time.monotonic() + 300
    while not condition():
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.02)


def fsck(node):
    done = subprocess.run(["fsck.ext4", "-n", "-f", node], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def files(where, prefix):
    return sorted(n for n in os.listdir(where) if n.startswith(prefix))


def test_snapshot_of_a_mounted_volume_under_writes_then_merged_back(dm_control, dm_name, origin, tmp_path):
    dev, cow = origin
    ctl = dm_control
    node = dm_block_node(dev.devno)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", node, str(mnt)], check=True)
    try:
        before = Writer(str(mnt), "before-")
        _until(lambda: before.count >= 20)
        snap = SnapshotStack.create(ctl, dm_name, f"{dm_name}-snap", cow=[Segment(cow.devno, 0, 32 * MIB)])
        kept = before.finish()  # files the writer finished before the snapshot are in it
        after = Writer(str(mnt), "after-")
        _until(lambda: after.count >= 10)
        after.finish()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert ctl.info(dm_name).devno == dev.devno  # the origin kept its name and number
    assert snap.status().valid and snap.status().allocated_sectors > 0
    snap_node = dm_block_node(ctl.info(f"{dm_name}-snap").devno)
    fsck(snap_node)
    subprocess.run(["mount", "-o", "ro,noload", snap_node, str(mnt)], check=True)
    try:
        in_snapshot = files(mnt, "before-")
        assert files(mnt, "after-") == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert len(in_snapshot) >= 19 and len(in_snapshot) <= kept + 1

    # Refused while the origin is mounted, with nothing changed.
    subprocess.run(["mount", node, str(mnt)], check=True)
    try:
        with pytest.raises(dm.DeviceBusyError, match="the origin is open"):
            snap.merge()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert ctl.table(dm_name)[0].type == "snapshot-origin"

    # The merge: the origin reads as the snapshot at once, mounted and
    # written while the chunks are copied back.
    try:
        snap.merge(timeout=0)  # started; returns at once
    except TimeoutError:
        assert ctl.table(dm_name)[0].type == "snapshot-merge"
    assert not ctl.exists(f"{dm_name}-snap")
    subprocess.run(["mount", node, str(mnt)], check=True)
    try:
        during = Writer(str(mnt), "during-")
        snap.merge(timeout=600)  # waits for the rest
        _until(lambda: during.count >= 5)
        during.finish()
        assert files(mnt, "after-") == []
        assert files(mnt, "before-") == in_snapshot
        assert len(files(mnt, "during-")) >= 5
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    fsck(node)
    table = ctl.table(dm_name)
    assert [t.type for t in table] == ["linear"]
    assert sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(dm_name)) == [dm_name]


def test_a_removed_snapshot_leaves_the_origin_as_written_and_a_failed_create_leaves_nothing(
        dm_control, dm_name, origin):
    dev, cow = origin
    ctl = dm_control
    table = ctl.table(dm_name)
    with pytest.raises(dm.ValidationError):
        SnapshotStack.create(ctl, dm_name, f"{dm_name}-s", cow=[Segment(cow.devno, 0, 0)])
    # The COW longer than its loop device: refused as it resumes.
    with pytest.raises(dm.DMError):
        SnapshotStack.create(ctl, dm_name, f"{dm_name}-s", cow=[Segment(cow.devno, 0, 64 * MIB)])
    assert ctl.table(dm_name) == table
    assert sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(dm_name)) == [dm_name]
    one = SnapshotStack.create(ctl, dm_name, f"{dm_name}-s1", cow=[Segment(cow.devno, 0, 8 * MIB)])
    two = SnapshotStack.create(ctl, dm_name, f"{dm_name}-s2", cow=[Segment(cow.devno, 8 * MIB, 8 * MIB)])
    with pytest.raises(dm.ValidationError, match="other snapshots"):
        one.merge()
    fd = os.open(dm_block_node(dev.devno), os.O_WRONLY)
    try:
        os.pwrite(fd, b"\x77" * 4096, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    one.remove()
    assert ctl.table(dm_name)[0].type == "snapshot-origin"  # two still needs it
    two.remove()
    assert ctl.table(dm_name) == table
    with open(dm_block_node(dev.devno), "rb") as f:
        assert f.read(4096) == b"\x77" * 4096
    assert sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(dm_name)) == [dm_name]
