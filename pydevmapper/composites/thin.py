# SPDX-License-Identifier: LGPL-2.1-or-later
"""A thin pool on its own metadata and data devices, with its volumes::

    import pydevmapper as dm
    from pydevmapper.composites import Segment, ThinPoolStack

    with dm.Control() as ctl:
        pool = ThinPoolStack.create(ctl, "pool", metadata=[Segment("/dev/sdb", 0, 65536)],
                                    data=[Segment("/dev/sdb", 65536, 8388608)])
        vol = pool.create_thin("vol", 2097152)       # 1 GiB, thin id handed out
        snap = pool.snapshot("vol", "vol-snap")      # the origin suspended around it
        pool.extend_data([Segment("/dev/sdc", 0, 8388608)])
        pool.merge("vol-snap", into="vol")           # vol as it was at the snapshot; vol-snap gone
        pool.teardown(volumes=True)

The stack is three mapped devices, named as LVM names its own:
``<name>_tmeta`` and ``<name>_tdata``, linear over the segments given, and
``<name>``, the pool on them.  Volumes are the mapped devices whose table
is a ``thin`` target on the pool.

Thin ids are handed out through the pool's transaction id, which this
class owns: for a new id the transaction id is moved from T to T+1 (the
kernel refuses the move if another process moved it first: then it is
read again), and T+1 is the id.  Ids are never reused, so one made by a
run that was cut short is never handed out twice.  Do not use it on a
pool whose transaction id something else keeps (LVM's).

Every method checks its input and refuses before it changes anything, and
puts back what it made when a later step fails.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydevmapper import events
from pydevmapper._namedtuple import NamedTuple
from pydevmapper.channel import DEV_CREATE, TARGET_MSG
from pydevmapper.composites.segments import Segment, linear, single_target, status_of, undo, zero
from pydevmapper.deptree import dependency_graph
from pydevmapper.device import Device
from pydevmapper.errors import DeviceExistsError, DMError, RollbackError, ValidationError
from pydevmapper.operations import create_device, quietly, reload, remove
from pydevmapper.stacks import DeviceSpec, Ensured, ensure_stack, reload_stack, teardown_stack, wait_unheld
from pydevmapper.tables import Table, Target
from pydevmapper.targets import Thin, ThinPool, ThinPoolStatus, ThinStatus
from pydevmapper.targets._base import Message
from pydevmapper.types import DevNo, check_id

if TYPE_CHECKING:
    from pydevmapper.control import Control
    from pydevmapper.types import DeviceInfo

#: bytes zeroed at the start of new metadata: the superblock, which the
#: kernel formats when it reads all zeroes and refuses when it reads garbage
_SUPERBLOCK = 4096


class ThinVolume(NamedTuple):
    """A thin volume of the pool: its device, thin id, size and status."""

    name: str
    devno: DevNo
    dev_id: int
    sectors: int
    status: ThinStatus


class _Layout(NamedTuple):
    """The three devices' tables; the pool's once the other two exist."""

    name: str
    meta: Table
    data: Table
    params: ThinPool  # with stand-in devices
    length: int

    @property
    def meta_name(self) -> str:
        return f"{self.name}_tmeta"

    @property
    def data_name(self) -> str:
        return f"{self.name}_tdata"

    def pool(self, devnos: Mapping[str, DevNo]) -> Table:
        return Table.single(self.length, dataclasses.replace(
            self.params, metadata_device=devnos[self.meta_name], data_device=devnos[self.data_name]))

    def spec(self) -> DeviceSpec:
        return DeviceSpec(self.name, self.pool, children=(DeviceSpec(self.meta_name, self.meta),
                                                          DeviceSpec(self.data_name, self.data)))


class ThinPoolStack:
    """A thin pool, its metadata and data devices, and its volumes.  Made
    with ``create`` (new metadata), ``setup`` (make or adopt the same
    layout: after a restart) or ``open`` (a pool running already)."""

    def __init__(self, ctl: Control, name: str) -> None:
        """The pool ``name`` as it runs now (see ``open``)."""
        check_id(name)
        self.ctl = ctl
        self.name = name
        self.meta_name = f"{name}_tmeta"
        self.data_name = f"{name}_tdata"
        self.params, _ = single_target(ctl, name, ThinPool, "a thin pool")
        self.devno = ctl.info(name).devno

    # -- making and adopting -------------------------------------------------

    @staticmethod
    def _layout(name: str, metadata: Sequence[Segment], data: Sequence[Segment], block_size: int,
                low_water_mark: int | None, features: dict[str, bool]) -> _Layout:
        meta_table, data_table = linear(metadata, f"{name} metadata"), linear(data, f"{name} data")
        blocks = data_table.size // block_size if type(block_size) is int and block_size > 0 else 0
        if low_water_mark is None:
            low_water_mark = blocks // 10
        known = [f.name for f in dataclasses.fields(ThinPool)][4:]
        unknown = sorted(set(features) - set(known))
        if unknown:
            raise ValidationError(f"{name}: unknown pool feature(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(known)}")
        # Checked now, with stand-in devices, so that nothing is made for a bad block size.
        params = ThinPool(DevNo(0, 1), DevNo(0, 2), block_size, low_water_mark, **features)
        if blocks == 0:
            raise ValidationError(f"{name}: the data segments hold no whole {block_size}-sector block")
        return _Layout(name, meta_table, data_table, params, blocks * block_size)

    @classmethod
    def create(cls, ctl: Control, name: str, *, metadata: Sequence[Segment], data: Sequence[Segment],
               block_size: int = 128, low_water_mark: int | None = None, **features: bool) -> ThinPoolStack:
        """A new pool: its metadata device's first 4 KiB are zeroed, so the
        kernel formats it.  Refused if a device of the stack's names exists.

        ``block_size``: data block size in sectors (a multiple of 128);
        ``low_water_mark``: free data blocks at which the pool raises an
        event (default: a tenth of them); ``features``: ``ThinPool``'s
        (``error_if_no_space=True``, ...).  On failure, nothing is left.
        """
        layout = cls._layout(name, metadata, data, block_size, low_water_mark, features)
        for each in (layout.meta_name, layout.data_name, name):
            if ctl.exists(each):
                raise DeviceExistsError(errno.EBUSY, DEV_CREATE.name, each, None,
                                        "exists: ThinPoolStack.create makes a new pool (setup adopts one)")
        made: list[Device] = []
        try:
            meta = create_device(ctl, layout.meta_name, layout.meta)
            made.append(meta)
            zero(meta.path, _SUPERBLOCK)
            made.append(create_device(ctl, layout.data_name, layout.data))
            made.append(create_device(ctl, name, layout.pool({d.name: d.devno for d in made})))
        except BaseException:
            undo(ctl, made)
            raise
        return cls(ctl, name)

    @classmethod
    def setup(cls, ctl: Control, name: str, *, metadata: Sequence[Segment], data: Sequence[Segment],
              block_size: int = 128, low_water_mark: int | None = None,
              **features: bool) -> tuple[ThinPoolStack, Ensured]:
        """The pool with this layout: devices that exist and match are
        adopted, missing ones made (``dm.ensure_stack``), so a script can
        run it after every restart.  The metadata is never zeroed: it must
        hold this pool's, or be zeroed already.  Refused with
        ``StackConflictError``, naming each difference, when a device of
        the stack's names is not what this layout makes."""
        layout = cls._layout(name, metadata, data, block_size, low_water_mark, features)
        done = ensure_stack(ctl, layout.spec())
        return cls(ctl, name), done

    @classmethod
    def open(cls, ctl: Control, name: str) -> ThinPoolStack:
        """The pool ``name`` as it runs (made by anyone, with any layout)."""
        return cls(ctl, name)

    def teardown(self, *, volumes: bool = False, retry: float = 5.0) -> list[str]:
        """Remove the pool and its metadata and data devices (their data
        stays on the segments: ``setup`` brings the pool back).  Active
        volumes are removed first if ``volumes``, else their presence
        refuses the teardown before anything is removed."""
        active = self.volumes()
        if active and not volumes:
            raise ValidationError(f"{self.name} has active volumes ({', '.join(v.name for v in active)}): "
                                  f"teardown(volumes=True) removes them too")
        removed: list[str] = []
        for vol in active:
            remove(self.ctl, vol.devno, retry=retry)
            removed.append(vol.name)
        meta = DeviceSpec(self.meta_name, "")
        data = DeviceSpec(self.data_name, "")
        removed += teardown_stack(self.ctl, DeviceSpec(self.name, "", children=(meta, data)), retry=retry)
        return removed

    # -- the pool ---------------------------------------------------------------

    def status(self) -> ThinPoolStatus:
        """The pool's typed status."""
        return status_of(self.ctl, self.devno, ThinPoolStatus)

    def _message(self, message: Message) -> None:
        self.ctl.message(self.devno, 0, message)

    def _new_id(self) -> int:
        """A thin id never handed out before: the transaction id, moved on."""
        for _ in range(100):
            current = self.status().transaction_id
            if current is None:
                raise DMError(errno.EIO, TARGET_MSG.name, self.name, None, "the pool has failed")
            try:
                self._message(ThinPool.set_transaction_id(current, current + 1))
            except DMError as exc:
                if exc.errno == errno.EINVAL:  # moved by another process since read
                    continue
                raise
            return current + 1
        raise DMError(errno.EBUSY, TARGET_MSG.name, self.name, None,
                      "the transaction id kept moving: another process hands out ids too")

    def volumes(self) -> list[ThinVolume]:
        """The active volumes on the pool, with their typed status."""
        graph = dependency_graph(self.ctl)
        found: list[ThinVolume] = []
        for devno in graph[self.devno].used_by if self.devno in graph else []:
            table = self.ctl.table(devno)
            if table is None or len(table) != 1:
                continue
            params = table[0].parsed()
            if not isinstance(params, Thin) or params.pool != self.devno:
                continue
            found.append(ThinVolume(graph[devno].name, devno, params.dev_id, table.size,
                                    status_of(self.ctl, devno, ThinStatus)))
        return sorted(found, key=lambda v: v.dev_id)

    def _volume(self, name: str) -> tuple[Device, Thin, Table]:
        check_id(name)
        table = self.ctl.table(name)
        params = table[0].parsed() if table is not None and len(table) == 1 else None
        if not isinstance(params, Thin) or params.pool != self.devno:
            raise ValidationError(f"{name} is not a thin volume of {self.name}")
        assert table is not None
        return self.ctl.device(name), params, table

    def create_thin(self, name: str, sectors: int, *, uuid: str | None = None) -> Device:
        """A new, empty volume of ``sectors`` sectors with a new thin id;
        the id is deleted again if the device cannot be made."""
        if type(sectors) is not int or sectors <= 0:
            raise ValidationError(f"create_thin: sectors is a positive number, not {sectors!r}")
        check_id(name)
        if self.ctl.exists(name):
            raise DeviceExistsError(errno.EBUSY, DEV_CREATE.name, name, None, "exists")
        dev_id = self._new_id()
        self._message(ThinPool.create_thin(dev_id))
        return self._activate_new(name, dev_id, sectors, uuid)

    def _activate_new(self, name: str, dev_id: int, sectors: int, uuid: str | None) -> Device:
        try:
            return create_device(self.ctl, name, Table.single(sectors, Thin(self.devno, dev_id)), uuid=uuid)
        except BaseException:
            quietly(self._message, ThinPool.delete(dev_id))
            raise

    def activate(self, name: str, dev_id: int, sectors: int, *, uuid: str | None = None) -> Device:
        """A device for thin id ``dev_id`` that exists in the pool's metadata
        (after a restart, say)."""
        return create_device(self.ctl, name, Table.single(sectors, Thin(self.devno, dev_id)), uuid=uuid)

    def snapshot(self, origin: str, name: str, *, sectors: int | None = None,
                 uuid: str | None = None) -> Device:
        """A snapshot of the volume ``origin`` as a new volume ``name`` (of the
        origin's size unless ``sectors``).  The origin is suspended around
        the snapshot, so what it had written is in it, and resumed even if
        the snapshot fails."""
        dev, params, table = self._volume(origin)
        size = table.size
        check_id(name)
        if sectors is not None and (type(sectors) is not int or sectors <= 0):
            raise ValidationError(f"snapshot: sectors is a positive number, not {sectors!r}")
        if self.ctl.exists(name):
            raise DeviceExistsError(errno.EBUSY, DEV_CREATE.name, name, None, "exists")
        dev_id = self._new_id()
        dev.suspend()
        try:
            self._message(ThinPool.create_snap(dev_id, params.dev_id))
        finally:
            dev.resume()
        return self._activate_new(name, dev_id, sectors or size, uuid)

    def merge(self, snapshot: str, into: str, *, retry: float = 5.0) -> Device:
        """Give the volume ``into`` the content of ``snapshot`` and drop the
        snapshot, as LVM's thin snapshot merge does: nothing is copied.
        ``into``'s device (name, number, uuid) now maps the snapshot's thin
        id, at the snapshot's size; the snapshot's device is removed and
        ``into``'s old thin id deleted, freeing the blocks only it held.

        Any two volumes of the pool will do (the pool's metadata does not
        record which volume a snapshot was taken of): ``into``'s own blocks
        are dropped for the snapshot's.  Both devices must be closed: their
        blocks change at once, under whoever has them open (LVM defers such
        a merge to the next activation); one still open after ``retry``
        seconds refuses the merge with ``DeviceBusyError``.  If a step
        fails, ``into``'s table is put back, then the snapshot's device
        made again (with a new device number), and no id is deleted;
        ``RollbackError`` says what could not be put back."""
        if snapshot == into:
            raise ValidationError(f"merge: {snapshot} into itself")
        target, target_params, target_table = self._volume(into)
        snap, snap_params, snap_table = self._volume(snapshot)
        if snap_params.dev_id == target_params.dev_id:
            raise ValidationError(f"merge: {snapshot} and {into} map the same thin id {snap_params.dev_id}")
        wait_unheld(self.ctl, [snap.devno, target.devno], retry,
                    why="(a thin merge changes its blocks at once, under its user)")
        snap_info, target_info = self.ctl.info(snap.devno), self.ctl.info(target.devno)
        remove(self.ctl, snap.devno, retry=retry)
        try:
            reload(self.ctl, target.devno, snap_table, readonly=target_info.read_only)
            self._message(ThinPool.delete(target_params.dev_id))
        except BaseException as exc:
            left = self._unmerge(into, target.devno, target_table, target_info.read_only, snap_info, snap_table)
            if left and isinstance(exc, DMError):
                raise RollbackError(exc, left) from exc
            raise
        return self.ctl.device(target.devno)

    def _unmerge(self, into: str, devno: DevNo, table: Table, readonly: bool, snap_info: DeviceInfo,
                 snap_table: Table) -> list[str]:
        """After a failed merge: ``into``'s own table back, then the
        snapshot's device, never while ``into`` still maps the snapshot's
        id (two writable devices on one thin id corrupt it).  Returns a
        line per thing not put back."""
        try:
            if self.ctl.table(devno) != table:
                reload(self.ctl, devno, table, readonly=readonly)
        except DMError as exc:
            return [f"{into} maps the snapshot's thin id (its own could not be put back: {exc.strerror}); "
                    f"{snap_info.name} was not made again"]
        try:
            create_device(self.ctl, snap_info.name, snap_table, uuid=snap_info.uuid or None,
                          readonly=snap_info.read_only)
        except DMError as exc:
            return [f"{snap_info.name} was not made again ({exc.strerror}); its thin id is kept"]
        return []

    def delete(self, name: str, *, retry: float = 5.0) -> None:
        """Remove the volume's device and delete its thin id, freeing its blocks."""
        dev, params, _ = self._volume(name)
        remove(self.ctl, dev.devno, retry=retry)
        self._message(ThinPool.delete(params.dev_id))

    def _grow(self, which: str, more: Sequence[Segment]) -> None:
        name = self.meta_name if which == "metadata" else self.data_name
        live = self.ctl.table(name)
        if live is None:
            raise ValidationError(f"{name} has no live table")
        added = linear(more, f"{self.name} {which}")
        grown = Table([*live, *(Target(t.start + live.size, t.length, t.type, t.params) for t in added)])
        pool_live = self.ctl.table(self.devno)
        assert pool_live is not None
        block = self.params.data_block_size
        length = (grown.size // block) * block if which == "data" else pool_live.size
        reload_stack(self.ctl, {name: grown, self.devno: Table.single(length, self.params)})

    def extend_data(self, more: Sequence[Segment]) -> None:
        """Append segments to the data device and grow the pool onto them,
        as one reload (the pool suspended first, resumed last)."""
        self._grow("data", more)

    def extend_metadata(self, more: Sequence[Segment]) -> None:
        """Append segments to the metadata device; the pool takes them up as
        it resumes."""
        self._grow("metadata", more)

    def wait_low_water(self, timeout: float | None = None) -> ThinPoolStatus | None:
        """Wait until free data blocks are at or below the low-water mark and
        return the status then; None after ``timeout`` seconds.  Woken by
        the pool's event (DM_DEV_ARM_POLL), not by polling."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            # Armed before the status is read: an event after it wakes us.
            with events.watch(self.ctl, timeout=left, name_prefix=self.name) as seen:
                st = self.status()
                if (st.total_data_blocks is not None and st.used_data_blocks is not None
                        and st.total_data_blocks - st.used_data_blocks <= self.params.low_water_mark):
                    return st
                if next((e for e in seen if e.devno == self.devno), None) is None:
                    return None
