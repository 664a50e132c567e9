# SPDX-License-Identifier: LGPL-2.1-or-later
"""A snapshot of a live device, and its merge back::

    import pydevmapper as dm
    from pydevmapper.composites import Segment, SnapshotStack

    with dm.Control() as ctl:
        snap = SnapshotStack.create(ctl, "vol", "vol-snap", cow=[Segment("/dev/sdc", 0, 2097152)])
        print(snap.status().allocated_sectors)       # COW space used so far
        snap.merge(timeout=600)                      # vol back to what vol-snap holds
        # or: snap.remove()                          # drop it, vol keeps its writes

The devices are named as LVM names its own: the origin ``<origin>`` keeps
its name and number and becomes a ``snapshot-origin`` target over
``<origin>-real``, a new device with the origin's old table; the snapshot
``<name>`` is a ``snapshot`` target over ``<origin>-real`` and
``<name>-cow``, linear over the segments given.  The origin is suspended
(its filesystem frozen) from just before the snapshot exists until it
writes through ``snapshot-origin``, so the snapshot holds exactly what
the origin held then.

Each method refuses bad input before it changes anything and puts back
what it changed when a later step fails.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydevmapper.channel import DEV_CREATE, DEV_REMOVE
from pydevmapper.composites.segments import Segment, linear, single_target, status_of, undo, wait_until, zero
from pydevmapper.deptree import dependency_graph
from pydevmapper.device import Device
from pydevmapper.errors import DeviceBusyError, DeviceExistsError, DMError, RollbackError, ValidationError
from pydevmapper.operations import create_device, put_back, quietly, reload, remove
from pydevmapper.tables import Table
from pydevmapper.targets import Snapshot, SnapshotMerge, SnapshotOrigin, SnapshotStatus
from pydevmapper.types import DevNo, check_id

if TYPE_CHECKING:
    from pydevmapper.control import Control

#: bytes zeroed at the start of a new COW device: a persistent store's
#: header, which the kernel would otherwise read as an existing snapshot's
_HEADER = 4096



class SnapshotStack:
    """A snapshot, its COW device and its origin.  Made with ``create``;
    ``SnapshotStack(ctl, name)`` takes one that exists."""

    def __init__(self, ctl: Control, name: str) -> None:
        check_id(name)
        self.ctl = ctl
        self.name = name
        self.params, self.size = single_target(ctl, name, Snapshot, "a snapshot")
        params = self.params
        graph = dependency_graph(ctl)
        origins = [u for u in (graph[params.origin].used_by if params.origin in graph else [])
                   if _single(ctl, u, SnapshotOrigin)]
        if len(origins) != 1:
            raise ValidationError(f"{name}: no device maps its origin {params.origin} through snapshot-origin")
        self.origin: DevNo = origins[0]
        self.real: DevNo = params.origin
        self.cow: DevNo = params.cow
        self._merged = False

    @classmethod
    def create(cls, ctl: Control, origin: str, name: str, *, cow: Sequence[Segment], chunk_size: int = 8,
               persistent: bool = True) -> SnapshotStack:
        """Snapshot the device ``origin`` (running, with a live table) as
        ``name``, its changes kept on the ``cow`` segments (``chunk_size``
        sectors at a time; ``persistent``: kept across a restart, the
        ``P`` store).  A second snapshot of the same origin shares its
        ``<origin>-real``.  On failure, nothing is left and the origin runs
        as before."""
        check_id(origin)
        cow_table = linear(cow, f"{name} cow")
        Snapshot(DevNo(0, 1), DevNo(0, 2), "P" if persistent else "N", chunk_size)  # checks the chunk size
        info = ctl.info(origin)
        live = ctl.table(origin)
        if live is None:
            raise ValidationError(f"{origin} has no live table to snapshot")
        existing = live[0].parsed() if len(live) == 1 else None
        real_name = f"{info.name}-real"
        wanted = [name, f"{name}-cow"] + ([] if isinstance(existing, SnapshotOrigin) else [real_name])
        for each in wanted:
            if ctl.exists(each):
                raise DeviceExistsError(errno.EBUSY, DEV_CREATE.name, each, None, "exists")
        made: list[Device] = []
        loaded = False
        try:
            if isinstance(existing, SnapshotOrigin):
                real = existing.device
            else:
                made.append(create_device(ctl, real_name, live, readonly=info.read_only))
                real = made[-1].devno
                ctl.load(info.devno, Table.single(live.size, SnapshotOrigin(real)), readonly=info.read_only)
                loaded = True
            cow_dev = create_device(ctl, f"{name}-cow", cow_table)
            made.append(cow_dev)
            zero(cow_dev.path, _HEADER)
            ctl.suspend(info.devno)  # no write in flight; the filesystem frozen
            try:
                made.append(create_device(ctl, name, Table.single(
                    live.size, Snapshot(real, cow_dev.devno, "P" if persistent else "N", chunk_size))))
            except BaseException:
                quietly(ctl.clear, info.devno)
                loaded = False
                raise
            finally:
                ctl.resume(info.devno)  # through snapshot-origin, if it was loaded
        except BaseException:
            if loaded:
                quietly(ctl.clear, info.devno)
            undo(ctl, made)
            raise
        return cls(ctl, name)

    def status(self) -> SnapshotStatus:
        """The snapshot's typed status (COW space used, or why it is invalid)."""
        return status_of(self.ctl, self.name, SnapshotStatus)

    def _others(self) -> list[DevNo]:
        """The other snapshots of the same origin."""
        graph = dependency_graph(self.ctl)
        devno = self.ctl.info(self.name).devno
        return [u for u in graph[self.real].used_by
                if u not in (devno, self.origin) and _single(self.ctl, u, Snapshot)]

    def _restore_origin(self, retry: float) -> None:
        """The origin back on its own table; ``<origin>-real`` removed."""
        real_table = self.ctl.table(self.real)
        assert real_table is not None
        reload(self.ctl, self.origin, real_table, readonly=self.ctl.info(self.real).read_only)
        remove(self.ctl, self.real, retry=retry)

    def remove(self, *, retry: float = 5.0) -> None:
        """Drop the snapshot and its COW device; the origin keeps what was
        written to it.  Once no snapshot of the origin is left, the origin
        runs on its own table again and ``<origin>-real`` goes."""
        last = not self._others()
        remove(self.ctl, self.name, retry=retry)
        if last:
            self._restore_origin(retry)
        remove(self.ctl, self.cow, retry=retry)

    def merge(self, *, timeout: float | None = None, retry: float = 5.0) -> None:
        """Make the origin hold what the snapshot holds again, and drop the
        snapshot.  The origin reads as the snapshot at once and can be
        used while the kernel copies the chunks back; returns when it is
        done (``TimeoutError`` after ``timeout`` seconds: the merge goes on;
        call ``merge`` on this object again to wait for the rest).

        Refused, with nothing changed, while the origin is open (a mounted
        filesystem would see its blocks change under it: unmount first,
        mount again after the call starts) or the snapshot is open, when
        the origin has other snapshots, or for a transient store.
        """
        if self._merged:
            return
        if not self._merging():
            if self.params.store == "N":
                raise ValidationError(f"{self.name}: a transient snapshot cannot be merged")
            others = self._others()
            if others:
                raise ValidationError(f"{self.name}: the origin has other snapshots "
                                      f"({', '.join(str(d) for d in others)}): remove them first")
            for devno, what in ((self.origin, "the origin"), (self.ctl.info(self.name).devno, "the snapshot")):
                opened = self.ctl.info(devno).open_count
                if opened:
                    raise DeviceBusyError(errno.EBUSY, DEV_REMOVE.name, self.name, None,
                                          f"{what} is open {opened} time(s): its content would change "
                                          f"under its user")
            before = {self.origin: (self.ctl.table(self.origin), self.ctl.info(self.origin).read_only)}
            self.ctl.load(self.origin, Table.single(self.size, SnapshotMerge(
                self.real, self.cow, "P", self.params.chunk_size)))
            # The snapshot hands its chunks over only while suspended.
            try:
                self.ctl.suspend(self.name)
            except BaseException:
                quietly(self.ctl.clear, self.origin)
                raise
            try:
                self.ctl.suspend(self.origin)
                self.ctl.resume(self.origin)
            except BaseException as exc:
                # Refused at resume, the merge table may be live already.
                left = put_back(self.ctl, [self.origin], before)
                quietly(self.ctl.resume, self.name)
                if left and isinstance(exc, DMError):
                    raise RollbackError(exc, left) from exc
                raise
            remove(self.ctl, self.name, retry=retry)
        def merged(st: SnapshotStatus) -> bool:
            if not st.valid:
                raise OSError(errno.EIO, f"{self.name}: the merge failed ({st.state})")
            return st.allocated_sectors == st.metadata_sectors
        wait_until(lambda: status_of(self.ctl, self.origin, SnapshotStatus), merged, timeout,
                   lambda st: f"{self.name}: still merging after {timeout} s "
                              f"({st.allocated_sectors} sectors left to copy)")
        self._restore_origin(retry)
        remove(self.ctl, self.cow, retry=retry)
        self._merged = True

    def _merging(self) -> bool:
        """A merge of this snapshot started already (an earlier call timed out)."""
        return _single(self.ctl, self.origin, SnapshotMerge)


def _single(ctl: Control, devno: DevNo, kind: type) -> bool:
    """The device's live table is one target of exactly type ``kind``."""
    try:
        table = ctl.table(devno)
    except OSError:
        return False
    return table is not None and len(table) == 1 and type(table[0].parsed()) is kind
