# SPDX-License-Identifier: LGPL-2.1-or-later
"""Operations that take several device-mapper commands, shared by the API
and pydmsetup.

Each is built from ``Control``'s one-command methods and either completes
or undoes what it did: a failed step raises its typed error (``DMError``
names the command that failed, so pydmsetup words it as libdevmapper
would) after the clean-up, whose own failures never hide it.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Mapping

from pydevmapper.channel import TABLE_LOAD
from pydevmapper.device import Device
from pydevmapper.errors import DeviceBusyError, DeviceNotFoundError, DMError, DMPermissionError, RollbackError
from pydevmapper.tables import Table, as_table
from pydevmapper.types import DevNo, check_id, describe

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.control import Control
    from pydevmapper.types import DeviceId, DeviceInfo


def create_device(ctl: Control, name: str, table: Table | str, *, uuid: str | None = None,
                  readonly: bool = False, devno: DevNo | None = None,
                  node_on_create: bool = False) -> Device:
    """Create, load and resume; nothing is left if a step fails.

    ``devno``: ask for this device number (DM_PERSISTENT_DEV_FLAG).
    ``node_on_create``: make the /dev/mapper entry at the create already
    (dmsetup's ``--addnodeoncreate``), not only at the resume.  Returns a
    ``Device``; ``with create_device(...) as dev:`` removes it on leaving.
    """
    tbl = as_table(table)  # checked before the kernel sees anything
    ctl.check_create(name)
    # One kernel-log cursor for all steps: a failed step reads what was
    # logged since the first, an earlier step's warnings about the device
    # included.
    cursor = ctl.channel.kmsg_cursor()
    created = ctl.create(name, uuid=uuid, devno=devno, node=node_on_create,
                         cursor=cursor).devno
    try:
        ctl.load(created, tbl, readonly=readonly, cursor=cursor)
        ctl.resume(created, cursor=cursor)
    except BaseException:
        remove_quietly(ctl, created)
        raise
    return Device(ctl, created, owned=True)


def reload(ctl: Control, device: DeviceId, table: Table | str, *, readonly: bool = False,
           noflush: bool = False, nolockfs: bool = False) -> DeviceInfo:
    """Load a new table and make it live; the old one is live again on
    failure (``RollbackError`` if that failed too)."""
    check_id(device)
    new = as_table(table)
    info = ctl.info(device)
    old = {info.devno: (ctl.table(info.devno), info.read_only)}
    ctl.load(info.devno, new, readonly=readonly)
    try:
        ctl.suspend(info.devno, noflush=noflush, nolockfs=nolockfs)
        return ctl.resume(info.devno, noflush=noflush, nolockfs=nolockfs)
    except DMError as exc:
        left = put_back(ctl, [info.devno], old, noflush=noflush, nolockfs=nolockfs)
        if left:
            raise RollbackError(exc, left) from exc
        raise
    except BaseException:
        put_back(ctl, [info.devno], old, noflush=noflush, nolockfs=nolockfs)
        raise


def put_back(ctl: Control, order: list[DevNo], old: Mapping[DevNo, tuple[Table | None, bool]], *,
             noflush: bool = False, nolockfs: bool = False) -> list[str]:
    """After a failed reload of the devices in ``order`` (top-down), make
    each one's old table (and read-only flag) live again and resume it.

    Whichever step failed: a new table may wait inactive (dropped), or be
    live already, because the kernel swaps tables before the targets'
    resume hooks run and does not swap back when one refuses (then the
    old table is loaded again and swapped in the same way).  Returns a
    line per device left otherwise; empty when all are as they were.
    """
    # What each device has live; a device running its new table is given
    # its old one and suspended now, top-down, as a reload does.
    swap: dict[DevNo, bool] = {}
    loaded: set[DevNo] = set()
    for devno in order:
        table, ro = old[devno]
        try:
            info = ctl.info(devno)
            live = ctl.table(devno)
        except DMError:
            swap[devno] = False
            continue
        swap[devno] = table is not None and (live != table or info.read_only != ro)
        if swap[devno] and not info.suspended:
            quietly(ctl.load, devno, table, readonly=ro)
            quietly(ctl.suspend, devno, noflush=noflush, nolockfs=nolockfs)
            loaded.add(devno)
    # Then bottom-up, each device once every device under it runs again: a
    # new table dropped (or replaced) while a device under it is suspended
    # can leave it unable to resume (a thin volume's, under a suspended
    # pool), and a resume onto a suspended device can wait for ever.  So
    # nothing above a device that stays suspended is touched.
    for devno in reversed(order):
        table, ro = old[devno]
        try:
            if not swap[devno]:
                ctl.clear(devno)  # the new table, if it still waits
            elif devno not in loaded and table is not None:
                ctl.load(devno, table, readonly=ro)
            ctl.resume(devno, noflush=noflush, nolockfs=nolockfs)
        except OSError:
            break
    left: list[str] = []
    for devno in order:
        table, ro = old[devno]
        try:
            info = ctl.info(devno)
            live = ctl.table(devno)
        except DMError as exc:
            left.append(f"{devno}: {exc}")
            continue
        wrong = [what for what, bad in (("another table is live", live != table),
                                        ("the read-only flag changed", info.read_only != ro),
                                        ("it is suspended", info.suspended),
                                        ("a table waits inactive", info.inactive_table)) if bad]
        if wrong:
            left.append(f"{info.name}: {', '.join(wrong)}")
    return left


def wipe_table(ctl: Control, device: DeviceId, *, noflush: bool = True, nolockfs: bool = True,
               readonly: bool = False) -> DeviceInfo:
    """Make the device an ``error`` target of its size, live at once, so
    queued and new I/O fail instead of hanging (``dmsetup wipe_table``; the
    first half of ``remove(force=True)``).  The new table is dropped again if
    the resume fails.

    A device without a live table, or one that cannot be read, has no size:
    the load is refused with EINVAL before it is sent, as the kernel would
    refuse an empty table (dmsetup sizes it 0 and lets the kernel say no).
    """
    check_id(device)
    try:
        live = ctl.table(device)
    except (DeviceNotFoundError, DMPermissionError):
        raise
    except DMError:
        live = None
    if live is None or not live.size:
        raise DMError(errno.EINVAL, TABLE_LOAD.name, describe(device), None,
                      "no live table to size the error table by")
    ctl.load(device, Table.single(live.size, "error"), readonly=readonly)
    try:
        return ctl.resume(device, noflush=noflush, nolockfs=nolockfs)
    except BaseException:
        quietly(ctl.clear, device)
        raise


def remove(ctl: Control, device: DeviceId, *, deferred: bool = False, retry: float = 0.0,
           force: bool = False,
           on_wipe_error: Callable[[DMError], object] | None = None) -> None:
    """DM_DEV_REMOVE, retried for up to ``retry`` seconds while the device is
    busy (udev workers briefly open new devices to probe them).

    ``force``: first ``wipe_table``, so holders see errors and can close.
    A failed wipe does not stop the removal, which reports the real error
    (dmsetup goes on too); ``on_wipe_error`` is told of it.
    """
    check_id(device)
    if force:
        _wipe_on(ctl, device, on_wipe_error)
    deadline = None  # from the first EBUSY: the common case reads no clock
    pause = 0.005
    while True:
        try:
            ctl.remove(device, deferred=deferred)
            return
        except DeviceBusyError:
            now = time.monotonic()
            if deadline is None:
                deadline = now + retry
            if now + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def remove_all(ctl: Control, *, deferred: bool = False, force: bool = False,
               on_wipe_error: Callable[[DMError], object] | None = None) -> list[str]:
    """DM_REMOVE_ALL: remove every device that is not open.

    ``force``: then wipe the tables of those left, so their holders see
    errors, and try once more (``dmsetup remove_all --force``); returns the
    names of the devices still there.  Without ``force``, returns [].
    A failed wipe is passed to ``on_wipe_error`` and the others go on.
    """
    ctl.remove_all(deferred=deferred)
    if not force:
        return []
    left = ctl.list_devices(uuids=False)
    if not left:
        return []
    for dev in left:
        _wipe_on(ctl, dev.name, on_wipe_error)
    quietly(ctl.remove_all)
    return [d.name for d in ctl.list_devices(uuids=False)]


def _wipe_on(ctl: Control, device: DeviceId,
             on_error: Callable[[DMError], object] | None) -> None:
    try:
        wipe_table(ctl, device)
    except DMError as exc:
        if on_error is not None:
            on_error(exc)


def quietly(fn: Callable[..., object], *args: object, **kwargs: object) -> None:
    """A clean-up step: its failure must not hide the error being handled."""
    try:
        fn(*args, **kwargs)
    except OSError:  # DMError and node errors alike
        pass


def remove_quietly(ctl: Control, devno: DevNo) -> None:
    """Clean-up: drop any inactive table and remove the device, errors ignored."""
    quietly(ctl.clear, devno)
    try:
        remove(ctl, devno, retry=5.0)
    except DMError:
        pass

