# SPDX-License-Identifier: LGPL-2.1-or-later
"""``Control``: one method per device-mapper command.

Each method checks its arguments, sends its command through the channel
(``channel.Channel.call``, the one ioctl path) and decodes the reply.  The
commands that raise a uevent (resume, remove, rename) go through the
``UeventPolicy``, which owns the udev cookie and /dev/mapper decisions.
Operations of several commands (create_device, reload, remove with retry
or force, wipe_table) live in ``operations``; the methods of those names
here are shortcuts to them.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from pydevmapper import kmsg, operations, readahead, records, udev, validate
from pydevmapper._dm import HEADER_SIZE, NAME_MAX_BYTES, UUID_MAX_BYTES, lib
from pydevmapper.channel import (
    DEFERRED_REMOVE,
    DEV_ARM_POLL,
    DEV_CREATE,
    DEV_REMOVE,
    DEV_RENAME,
    DEV_SET_GEOMETRY,
    DEV_STATUS,
    DEV_SUSPEND,
    DEV_WAIT,
    GET_TARGET_VERSION,
    IMA,
    INITIAL_REPLY_SIZE,
    LIST_DEVICES,
    LIST_EVENT_NR,
    LIST_UUID,
    LIST_VERSIONS,
    MAX_BUFFER_SIZE,
    REMOVE_ALL,
    RENAME_UUID,
    TABLE_CLEAR,
    TABLE_DEPS,
    TABLE_LOAD,
    TABLE_STATUS,
    TARGET_MSG,
    Channel,
    Command,
    Reply,
    Version,
    text,
)
from pydevmapper.device import Device
from pydevmapper.errors import DeviceExistsError, DeviceNotFoundError, DMError, ValidationError
from pydevmapper.nodes import NODE_MODE, NODE_UID, NodeDir, Reconciled
from pydevmapper.tables import Table, TargetStatus, as_table
from pydevmapper.types import DeviceInfo, DevNo, ListedDevice, TargetVersion, Uuid, check_id, describe
from pydevmapper.uevent_policy import UeventPolicy

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.targets import Message
    from pydevmapper.types import DeviceId

_ACTIVE_PRESENT = lib.DM_ACTIVE_PRESENT_FLAG
_INACTIVE_PRESENT = lib.DM_INACTIVE_PRESENT_FLAG


def default_dev_dir() -> str:
    """The device directory: ``$DM_DEV_DIR`` as libdevmapper reads it, else /dev."""
    return os.environ.get("DM_DEV_DIR") or "/dev"


class Control:
    """An open ``/dev/mapper/control``; every device-mapper command is a method.

    Devices are addressed by name (``str``), ``Uuid(...)`` or
    ``DevNo(major, minor)``.  Use as a context manager or call ``close()``.
    One instance may be shared between threads.  Names and uuids go to the
    kernel as given and come back as it holds them: nothing is mangled as
    dmsetup mangles them (``mangling.mangle`` does that, for a program that
    shares devices with dmsetup or LVM).

    ``<dev_dir>/mapper/<name>`` is final when create, resume, rename and
    remove return.  ``udev_sync`` (None: udevd runs and 95-dm-notify.rules
    exist) passes a libdevmapper cookie with those commands and waits up to
    ``udev_timeout`` seconds for udev to release it (``udev.UdevTimeoutError``
    if it never does), because udev owns /dev/mapper while it runs.  After
    that, and always without udev, the library checks the entry and makes,
    renames or removes a block node itself - the fallback libdevmapper has
    too, e.g. for a ``dev_dir`` udev does not manage.  Those nodes are
    ``node_uid``:``node_gid`` (default root:disk) with ``node_mode`` (0660),
    dmsetup's ``-U``/``-G``/``-M``; an entry udev made is left as udev made it.
    ``dev_dir`` defaults to ``$DM_DEV_DIR`` or /dev.

    ``udev_transaction`` (a ``udev.Transaction``; used only with udev sync):
    those commands join its cookie instead and return without waiting; in a
    ``dev_dir`` udev manages, /dev/mapper is udev's business and final once
    the transaction is released (dmsetup's ``--udevcookie``).
    ``udev_rules=False`` tells udev's DM and subsystem rules to keep off
    (dmsetup's ``--noudevrules``): the library makes the nodes itself, still
    waiting for the cookie when syncing.  ``on_udev_timeout``: called with
    the ``UdevTimeoutError`` instead of raising it (pydmsetup warns, as a
    late udev does not fail dmsetup's commands).
    """

    def __init__(self, path: str | None = None, *, udev_sync: bool | None = None,
                 dev_dir: str | None = None,
                 udev_timeout: float = udev.DEFAULT_TIMEOUT,
                 udev_transaction: udev.Transaction | None = None,
                 udev_rules: bool = True, node_uid: int = NODE_UID,
                 node_gid: int | None = None, node_mode: int = NODE_MODE,
                 on_udev_timeout: Callable[[udev.UdevTimeoutError], None] | None = None,
                 ) -> None:
        self.dev_dir = dev_dir or default_dev_dir()
        # First: bad owner or mode arguments raise before a descriptor exists.
        self.nodes = NodeDir(self.dev_dir, uid=node_uid, gid=node_gid, mode=node_mode)
        self.path = path or os.path.join(self.dev_dir, "mapper", "control")
        self.channel = Channel(self.path)
        self.policy = UeventPolicy(self.nodes, sync=udev_sync, timeout=udev_timeout,
                                   transaction=udev_transaction, rules=udev_rules,
                                   real=self.channel.is_kernel, on_timeout=on_udev_timeout)

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Close the control descriptor; the Control cannot send anything after."""
        self.channel.close()

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        """The descriptor, for poll() after ``arm_poll()``."""
        return self.channel.fileno()

    # -- udev and device nodes ----------------------------------------------

    @property
    def udev_sync(self) -> bool:
        """Whether resume/remove/rename wait for udev (decided on first use)."""
        return self.policy.sync

    @property
    def udev_transaction(self) -> udev.Transaction | None:
        """The ``udev.Transaction`` that commands join instead of waiting, or None."""
        return self.policy.transaction

    @property
    def udev_timeout(self) -> float:
        """Seconds a command waits for udev to release its cookie."""
        return self.policy.timeout

    def check_create(self, name: str) -> None:
        """Before a create whose resume joins a udev transaction: fail now,
        with nothing made, if it could not join."""
        self.policy.check_create(DEV_CREATE.name, name)

    def _uevent(self, cmd: Command, device: DeviceId, *, flags: int = 0, payload: bytes = b"",
                cursor: kmsg.KmsgCursor | None = None) -> Reply:
        check_id(device)  # before a cookie is made or a transaction joined
        return self.policy.run(cmd.name, describe(device), lambda event_nr: self.channel.call(
            cmd, device, event_nr=event_nr, flags=flags, payload=payload, cursor=cursor))

    def sync_nodes(self) -> Reconciled:
        """``dmsetup mknodes``: make ``<dev_dir>/mapper`` match the kernel's list.

        Creates missing or wrong nodes, removes entries for devices that are
        gone (e.g. after a deferred removal); leaves other files alone.
        """
        listed = self.list_devices(uuids=False)
        return self.nodes.reconcile({d.name: DevNo(d.major, d.minor) for d in listed})

    def sync_node(self, name: str) -> None:
        """``dmsetup mknodes <name>``: one entry, made or removed to match the kernel."""
        validate.device_name(name)
        try:
            info = self.info(name)
        except DeviceNotFoundError:
            self.nodes.remove(name)
        else:
            self.nodes.ensure(name, info.devno)

    def node_path(self, name: str) -> str:
        """``<dev_dir>/mapper/<name>``: where the device's node is (nothing is checked)."""
        return os.path.join(self.nodes.path, name)

    # -- interface version ------------------------------------------------

    def version(self) -> Version:
        """The kernel's DM ioctl interface version (asked once, then cached)."""
        return self.channel.version()

    def supports(self, needed: Version) -> bool:
        """Whether the kernel's DM interface version is at least ``needed``."""
        return self.channel.supports(needed)

    # -- global commands --------------------------------------------------

    def remove_all(self, *, deferred: bool = False) -> None:
        """DM_REMOVE_ALL: remove every device that is not open.

        With ``deferred``, open devices are marked for removal on last close.
        ``operations.remove_all(force=True)`` also wipes the tables of those
        left and tries again.
        """
        flags = 0
        if deferred:
            self.channel.require(DEFERRED_REMOVE, "deferred remove")
            flags = lib.DM_DEFERRED_REMOVE
        self.channel.call(REMOVE_ALL, flags=flags)
        if self.policy.real:
            # The kernel raised cookie-less uevents; drop what is now stale.
            known = {d.name for d in self.list_devices(uuids=False)}
            for name in self.nodes.entries():
                if name not in known:
                    try:
                        self.nodes.remove(name)
                    except OSError:
                        pass

    def list_devices(self, *, uuids: bool = True, name_prefix: str = "",
                     uuid_prefix: str = "") -> list[ListedDevice]:
        """DM_LIST_DEVICES: every device, in the kernel's (name) order.

        Event numbers come with interface 4.37+.  With ``uuids`` (the
        default) each entry has its uuid ("" for none): in the listing from
        interface 4.45, before that read per device with DM_DEV_STATUS (a
        device removed in between is left out); without, ``uuid`` is None.
        The prefixes filter in the kernel and need 4.45 (UnsupportedError
        before).
        """
        flags = 0
        if uuids and self.supports(LIST_UUID):
            flags |= lib.DM_UUID_FLAG
        name = b""
        uuid = b""
        if name_prefix or uuid_prefix:
            self.channel.require(LIST_UUID, "filtering the device list")
            name = name_prefix.encode() if name_prefix else b""
            if len(name) > NAME_MAX_BYTES:
                raise ValidationError("name prefix is longer than a device name can be")
            uuid = uuid_prefix.encode() if uuid_prefix else b""
            if len(uuid) > UUID_MAX_BYTES:
                raise ValidationError("uuid prefix is longer than a uuid can be")
        reply = self.channel.call(LIST_DEVICES, flags=flags, name=name, uuid=uuid)
        listed = records.decode_name_list(reply.data, self.supports(LIST_EVENT_NR))
        if uuids and not flags & lib.DM_UUID_FLAG:
            listed = self._with_uuids(listed)
        return listed

    def _with_uuids(self, listed: list[ListedDevice]) -> list[ListedDevice]:
        found: list[ListedDevice] = []
        for d in listed:
            try:
                info = self.info(d.devno)
            except DeviceNotFoundError:
                continue
            found.append(d._replace(uuid=info.uuid))
        return found

    def targets(self) -> list[TargetVersion]:
        """DM_LIST_VERSIONS: the target types the kernel has loaded."""
        return records.decode_versions(self.channel.call(LIST_VERSIONS).data)

    def target_version(self, target_type: str) -> TargetVersion:
        """DM_GET_TARGET_VERSION: one target type, loading its module if needed."""
        raw = validate.target_type(target_type)
        try:
            reply = self.channel.call(GET_TARGET_VERSION, name=raw)
        except DMError as exc:
            if exc.errno == errno.EINVAL:
                raise DMError(errno.ENOENT, GET_TARGET_VERSION.name, None, None,
                              f"no target type {target_type!r}") from None
            raise
        return records.decode_versions(reply.data)[0]

    def arm_poll(self) -> None:
        """DM_DEV_ARM_POLL: poll() on ``fileno()`` then wakes on the next event."""
        self.channel.call(DEV_ARM_POLL)

    # -- one device ---------------------------------------------------------

    def create(self, name: str, *, uuid: str | None = None, devno: DevNo | None = None,
               node: bool = True, cursor: kmsg.KmsgCursor | None = None) -> DeviceInfo:
        """DM_DEV_CREATE: a device with no table (see ``create_device``).

        ``devno``: ask for this number (DM_PERSISTENT_DEV_FLAG).
        ``node=False``: no /dev/mapper entry until the first resume (dmsetup
        makes it there unless given ``--addnodeoncreate``).  ``cursor``
        (here and on ``load`` and ``resume``): a kernel-log cursor from
        ``channel.kmsg_cursor()`` placed before the first step of an
        operation, so a failure reads what was logged since.
        """
        raw = validate.new_device_name(name)
        uuid_raw = validate.new_device_uuid(uuid) if uuid is not None else b""
        flags = 0
        dev = 0
        if devno is not None:
            check_id(devno)
            flags |= lib.DM_PERSISTENT_DEV_FLAG
            dev = os.makedev(devno.major, devno.minor)
        try:
            info = self.channel.call(DEV_CREATE, name=raw, uuid=uuid_raw, dev=dev,
                                     flags=flags, cursor=cursor).info()
        except DeviceNotFoundError as exc:
            if devno is None:
                raise
            # dm_create() answers ENXIO when it cannot have the minor asked
            # for (the kernel takes the minor alone): another device has it,
            # or it could not be allocated.  The errno stays the kernel's.
            raise DeviceExistsError(errno.ENXIO, exc.command, exc.device, exc.kernel_message,
                                    f"minor {devno.minor} is already in use (or could "
                                    f"not be allocated)") from None
        if node:
            try:
                self.policy.created(info.name, info.devno)
            except BaseException:
                try:
                    self.channel.call(DEV_REMOVE, info.devno)
                except DMError:
                    pass
                raise
        return info

    def remove(self, device: DeviceId, *, deferred: bool = False,
               retry: float = 0.0, force: bool = False) -> None:
        """DM_DEV_REMOVE; the device's /dev/mapper entry is gone on return.

        ``deferred``: if the device is open, mark it to vanish on last close
        (its node stays until then; ``sync_nodes()`` prunes it after).
        ``retry`` and ``force``: see ``operations.remove`` (retry while busy;
        swap in an error table first).
        """
        if retry or force:
            operations.remove(self, device, deferred=deferred, retry=retry, force=force)
            return
        flags = 0
        if deferred:
            self.channel.require(DEFERRED_REMOVE, "deferred remove")
            flags = lib.DM_DEFERRED_REMOVE
        reply = self._uevent(DEV_REMOVE, device, flags=flags)
        if not reply.flags & lib.DM_DEFERRED_REMOVE:
            # The kernel writes in the name of the device it found.
            self.policy.removed(text(reply.raw_name) or (device if type(device) is str else None))

    def cancel_deferred_remove(self, device: DeviceId) -> None:
        """Undo ``remove(deferred=True)`` while the device is still open."""
        self.message(device, 0, "@cancel_deferred_remove")

    def rename(self, device: DeviceId, new_name: str) -> DeviceInfo:
        """DM_DEV_RENAME to a new name."""
        check_id(device)
        raw = validate.new_device_name(new_name)
        old = self._renameable(device)
        if self.policy.real and isinstance(old, Uuid):
            old = self.info(old).name  # the node to move is named by name
        info = self._uevent(DEV_RENAME, old, payload=records.encode_cstring(raw)).info()
        # The reply carries the name the kernel found the device by (the old one).
        info = info._replace(name=new_name)
        self.policy.renamed(old, new_name, info.devno)
        return info

    def set_uuid(self, device: DeviceId, uuid: str) -> DeviceInfo:
        """DM_DEV_RENAME with DM_UUID_FLAG: give a device without one a uuid."""
        check_id(device)
        raw = validate.new_device_uuid(uuid)
        self.channel.require(RENAME_UUID, "setting a uuid")
        # The kernel sends a change uevent for a new uuid as for a new name:
        # udev's rules (by-id links) run, and a cookie waits for them.
        info = self._uevent(DEV_RENAME, self._renameable(device), flags=lib.DM_UUID_FLAG,
                            payload=records.encode_cstring(raw)).info()
        return info._replace(uuid=uuid)  # the reply still has the old (empty) uuid

    def _renameable(self, device: DeviceId) -> str:
        # The kernel finds a device to rename by name or uuid only, not by
        # number: resolve a number to the device's current name.
        if isinstance(device, tuple):
            return self.info(device).name
        return device

    def suspend(self, device: DeviceId, *, noflush: bool = False,
                nolockfs: bool = False) -> DeviceInfo:
        """DM_DEV_SUSPEND.  ``noflush``: keep queued I/O; ``nolockfs``: don't freeze the fs."""
        check_id(device)
        flags = lib.DM_SUSPEND_FLAG
        if noflush:
            flags |= lib.DM_NOFLUSH_FLAG
        if nolockfs:
            flags |= lib.DM_SKIP_LOCKFS_FLAG
        return self.channel.call(DEV_SUSPEND, device, flags=flags).info()

    def resume(self, device: DeviceId, *, noflush: bool = False, nolockfs: bool = False,
               cursor: kmsg.KmsgCursor | None = None) -> DeviceInfo:
        """DM_DEV_SUSPEND without the suspend flag: swap in any inactive table, resume.

        The device's /dev/mapper entry exists on return (see ``Control``;
        in a udev transaction, once it is released) if it has a live table:
        the kernel resumes a device without one to no effect.
        """
        flags = 0
        if noflush:
            flags |= lib.DM_NOFLUSH_FLAG
        if nolockfs:
            flags |= lib.DM_SKIP_LOCKFS_FLAG
        info = self._uevent(DEV_SUSPEND, device, flags=flags, cursor=cursor).info()
        # Without a table the kernel does nothing (no disk exists before the
        # first load, no uevent is raised), so there is no node to make.
        if info.live_table:
            self.policy.resumed(info.name, info.devno)
        return info

    def info(self, device: DeviceId, *, inactive: bool = False) -> DeviceInfo:
        """DM_DEV_STATUS.  ``inactive``: read-only and target count of the inactive table."""
        flags = lib.DM_QUERY_INACTIVE_TABLE_FLAG if inactive else 0
        return self.channel.call(DEV_STATUS, device, flags=flags).info()

    def exists(self, device: DeviceId) -> bool:
        """Whether the device exists (DM_DEV_STATUS finds it)."""
        try:
            self.info(device)
        except DeviceNotFoundError:
            return False
        return True

    def wait(self, device: DeviceId, event_nr: int | None = None) -> DeviceInfo:
        """DM_DEV_WAIT: block until the device's event number differs from ``event_nr``.

        With no ``event_nr``, waits for the next event after now.  Returns the
        device's state after the event.  Interrupted by a signal: raises
        ``InterruptedError`` (after any Python signal handler ran).
        """
        return self._wait(device, event_nr, 0).info()

    def wait_status(self, device: DeviceId,
                    event_nr: int | None = None) -> tuple[DeviceInfo, list[TargetStatus]]:
        """As ``wait``, and each target's status line as the kernel read it
        right after the event (DM_DEV_WAIT's reply carries them): a thin
        pool's free blocks at its low-water mark, a multipath device's
        failed path.  Lines too long for the reply buffer are read again
        with DM_TABLE_STATUS, a moment later.
        """
        reply = self._wait(device, event_nr, INITIAL_REPLY_SIZE)
        info = reply.info()
        if reply.flags & lib.DM_BUFFER_FULL_FLAG:
            return info, self.status(device)
        count = reply.target_count if reply.flags & _ACTIVE_PRESENT and reply.data else 0
        return info, records.decode_status(reply.data, count)

    def _wait(self, device: DeviceId, event_nr: int | None, room: int) -> Reply:
        # ``room``: bytes for the status lines; a bare wait asks for none.
        check_id(device)
        if event_nr is None:
            event_nr = self.info(device).event_nr
        else:
            validate.unsigned(event_nr, "event_nr", 0xFFFFFFFF)
        # Never sent again for a bigger buffer: that would wait again.
        return self.channel.call(DEV_WAIT, device, event_nr=event_nr, min_size=room, retry_full=False)

    def load(self, device: DeviceId, table: Table | str, *, readonly: bool = False,
             cursor: kmsg.KmsgCursor | None = None) -> DeviceInfo:
        """DM_TABLE_LOAD into the inactive slot; ``resume()`` makes it live."""
        # The table is checked here, the address by the channel: both
        # before anything is sent.
        tbl = as_table(table)
        flags = lib.DM_SECURE_DATA_FLAG  # tables may hold keys: let the kernel wipe its copy
        if readonly:
            flags |= lib.DM_READONLY_FLAG
        return self.channel.call(TABLE_LOAD, device, flags=flags, target_count=len(tbl),
                                 payload=records.encode_targets(tbl), cursor=cursor).info()

    def clear(self, device: DeviceId) -> DeviceInfo:
        """DM_TABLE_CLEAR: drop the inactive table."""
        check_id(device)
        return self.channel.call(TABLE_CLEAR, device).info()

    def deps(self, device: DeviceId, *, inactive: bool = False) -> list[DevNo]:
        """DM_TABLE_DEPS: the block devices the table uses."""
        check_id(device)
        flags = lib.DM_QUERY_INACTIVE_TABLE_FLAG if inactive else 0
        reply = self.channel.call(TABLE_DEPS, device, flags=flags)
        if not reply.data:
            return []
        return [DevNo(*d) for d in records.decode_deps(reply.data)]

    def table(self, device: DeviceId, *, inactive: bool = False) -> Table | None:
        """DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG: the table as loaded, or None.

        Sent with DM_SECURE_DATA_FLAG: a crypt or integrity table holds its
        keys, so the kernel wipes its copy and the channel the reply buffer.
        """
        data, count = self._table_status(device, lib.DM_STATUS_TABLE_FLAG | lib.DM_SECURE_DATA_FLAG,
                                         inactive, False)
        return Table._from_kernel(records.decode_table(data, count)) if count else None

    def status(self, device: DeviceId, *, inactive: bool = False,
               noflush: bool = False) -> list[TargetStatus]:
        """DM_TABLE_STATUS: each target's status line.

        ``noflush``: ask targets not to flush to produce it (thin, cache).
        """
        data, count = self._table_status(device, 0, inactive, noflush)
        return records.decode_status(data, count)

    def ima_measurement(self, device: DeviceId, *, inactive: bool = False) -> list[TargetStatus]:
        """DM_TABLE_STATUS with DM_IMA_MEASUREMENT_FLAG (interface 4.45+)."""
        self.channel.require(IMA, "IMA measurement")
        data, count = self._table_status(device, lib.DM_IMA_MEASUREMENT_FLAG, inactive, False)
        return records.decode_status(data, count)

    def _table_status(self, device: DeviceId, flags: int, inactive: bool,
                      noflush: bool) -> tuple[bytes, int]:
        # The channel checks the address before anything is sent.
        if inactive:
            flags |= lib.DM_QUERY_INACTIVE_TABLE_FLAG
        if noflush:
            flags |= lib.DM_NOFLUSH_FLAG
        reply = self.channel.call(TABLE_STATUS, device, flags=flags)
        # Without a table in the queried slot the kernel sends no records.
        present = _INACTIVE_PRESENT if inactive else _ACTIVE_PRESENT
        count = reply.target_count if reply.flags & present and reply.data else 0
        return reply.data, count

    def message(self, device: DeviceId, sector: int, message: str | Message, *,
                reply_size: int = INITIAL_REPLY_SIZE) -> str | None:
        """DM_TARGET_MSG to the target at ``sector``; returns its answer, if any.

        A message is never re-sent (it may not be idempotent), so an answer
        that does not fit a ``reply_size``-byte buffer (the 312-byte header
        included) raises ENOBUFS; ask again with more (e.g. for dm-stats'
        ``@stats_print`` on a large region list).

        The kernel allocates and copies in the whole buffer, so the default
        stays small (see ``channel.INITIAL_REPLY_SIZE``).
        """
        # The device address is checked by the channel, before anything is sent.
        validate.sector_count(sector, "message sector")
        validate.unsigned(reply_size, "reply_size", MAX_BUFFER_SIZE)
        flags = 0
        if not isinstance(message, str):  # a typed message (pydevmapper.targets)
            if message.secure:
                flags = lib.DM_SECURE_DATA_FLAG  # the kernel wipes its copy, the channel ours
            message = message.text()
        elif message.lstrip()[:3].lower() == "key":
            # dm-crypt's "key set <key>" as text (the kernel compares the
            # words without case), marked as the typed Crypt.key_set() is;
            # another message marked so is only wiped and not quoted.
            flags = lib.DM_SECURE_DATA_FLAG
        raw = validate.parameter_string(message, "message", secret=bool(flags))
        if not raw.strip():
            raise ValidationError("message must not be empty")
        payload = records.encode_message(sector, raw)
        reply = self.channel.call(TARGET_MSG, device, flags=flags, payload=payload, retry_full=False,
                                  min_size=max(reply_size, HEADER_SIZE + len(payload)))
        if reply.flags & lib.DM_BUFFER_FULL_FLAG:
            raise DMError(errno.ENOBUFS, TARGET_MSG.name, describe(device), None,
                          f"the target's answer does not fit a {reply_size}-byte buffer")
        if reply.flags & lib.DM_DATA_OUT_FLAG:
            return text(reply.data)
        return None

    def set_geometry(self, device: DeviceId, cylinders: int, heads: int,
                     sectors: int, start: int) -> None:
        """DM_DEV_SET_GEOMETRY (what HDIO_GETGEO then reports)."""
        check_id(device)
        for value, what, limit in ((cylinders, "cylinders", 65535), (heads, "heads", 255),
                                   (sectors, "sectors", 255), (start, "start", 1 << 63)):
            validate.sector_count(value, what)
            if value > limit:
                raise ValidationError(f"{what} {value} exceeds {limit}")
        raw = f"{cylinders} {heads} {sectors} {start}".encode()
        self.channel.call(DEV_SET_GEOMETRY, device, payload=records.encode_cstring(raw))

    # -- read-ahead (sysfs, not an ioctl) -------------------------------------

    def read_ahead(self, device: DeviceId) -> int:
        """The device's read-ahead in 512-byte sectors (always even: the
        kernel keeps KiB)."""
        return readahead.read(self._resolved_devno(device), describe(device))

    def set_read_ahead(self, device: DeviceId, sectors: int, *,
                       minimum: bool = False) -> int:
        """Set the device's read-ahead; returns the read-ahead now in effect,
        which the kernel may have rounded (see ``pydevmapper.readahead``).
        ``minimum``: only ever raise it (dmsetup's ``--readahead +N``)."""
        readahead.check_sectors(sectors)  # before the info ioctl that finds the number
        return readahead.write(self._resolved_devno(device), sectors, minimum=minimum,
                               device=describe(device))

    def _resolved_devno(self, device: DeviceId) -> DevNo:
        """The device's number: as given, or asked of the kernel."""
        check_id(device)
        if isinstance(device, tuple):
            return DevNo(*device)
        return self.info(device).devno

    # -- shortcuts to operations and handles ------------------------------------

    def create_device(self, name: str, table: Table | str, *, uuid: str | None = None,
                      readonly: bool = False, devno: DevNo | None = None) -> Device:
        """Create, load and resume in one call; see ``operations.create_device``."""
        return operations.create_device(self, name, table, uuid=uuid, readonly=readonly,
                                        devno=devno)

    def reload(self, device: DeviceId, table: Table | str, *, readonly: bool = False,
               noflush: bool = False, nolockfs: bool = False) -> DeviceInfo:
        """Load a new table and make it live; see ``operations.reload``."""
        return operations.reload(self, device, table, readonly=readonly, noflush=noflush,
                                 nolockfs=nolockfs)

    def wipe_table(self, device: DeviceId) -> DeviceInfo:
        """An error table of the same size, live at once; see ``operations.wipe_table``."""
        return operations.wipe_table(self, device)

    def device(self, device: DeviceId) -> Device:
        """A handle on an existing device (addressed by its number from now on)."""
        return Device(self, self.info(device).devno, owned=False)
