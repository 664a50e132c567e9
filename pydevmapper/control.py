"""The device-mapper control node and the one path every ioctl takes.

``Control._ioctl`` is the only place that calls ``ioctl(2)``.  It stamps the
interface version, places input records at ``data_start``, grows the buffer
while the kernel answers ``DM_BUFFER_FULL_FLAG``, sizes each command's next
buffer from the replies it has had (the kernel copies in the whole buffer,
so a large one costs on every call), reads the kernel log after a failure
that the kernel explains only there, and turns any failure into a typed
``DMError``.

A ``Control`` holds no per-call state beyond its descriptor and those size
hints, so one instance may be shared between threads; the blocking
``DM_DEV_WAIT`` releases the GIL (cffi does so around every C call).
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import threading
import time

from pydevmapper import kmsg, readahead, records, udev, validate
from pydevmapper._dm import HEADER_SIZE, ffi, lib
from pydevmapper._namedtuple import NamedTuple, build
from pydevmapper.device import DeviceInfo, DevNo, Uuid, address, check_id, describe
from pydevmapper.errors import (
    DeviceBusyError,
    DeviceMapperUnavailableError,
    DeviceNotFoundError,
    DMError,
    UnsupportedError,
    ValidationError,
    error_for,
)
from pydevmapper.flags import STATE_FLAGS, DMFlag
from pydevmapper.nodes import NODE_MODE, NODE_UID, NodeDir, Reconciled
from pydevmapper.records import ListedDevice, TargetVersion
from pydevmapper.table import Table, TargetStatus, as_table

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.device import DeviceId

Version = tuple[int, int, int]


class _Command(NamedTuple):
    name: str
    request: int
    # Stamped into each request: the oldest interface that has the command.
    # The kernel refuses a request whose minor is newer than its own.
    version: Version
    # The reply carries records after the header, so the buffer is sized by
    # the per-command hint rather than just the header.
    has_reply_data: bool
    # The kernel explains this command's failures only in its log.
    logs_reason: bool
    # Newer than 4.0.0: check the running kernel before sending.
    gated: bool
    # The build headers had it (see PYDM_HAS_* in build_support).
    in_headers: bool


def _cmd(name: str, version: Version, reply: bool = False, logs: bool = False,
         in_headers: int = 1) -> _Command:
    return _Command(name, getattr(lib, name), version, reply, logs,
                    version > (4, 0, 0), bool(in_headers))


VERSION = _cmd("DM_VERSION", (4, 0, 0))
REMOVE_ALL = _cmd("DM_REMOVE_ALL", (4, 0, 0))
LIST_DEVICES = _cmd("DM_LIST_DEVICES", (4, 0, 0), reply=True)
DEV_CREATE = _cmd("DM_DEV_CREATE", (4, 0, 0), logs=True)
DEV_REMOVE = _cmd("DM_DEV_REMOVE", (4, 0, 0))
DEV_RENAME = _cmd("DM_DEV_RENAME", (4, 0, 0), logs=True)
DEV_SUSPEND = _cmd("DM_DEV_SUSPEND", (4, 0, 0), logs=True)
DEV_STATUS = _cmd("DM_DEV_STATUS", (4, 0, 0))
DEV_WAIT = _cmd("DM_DEV_WAIT", (4, 0, 0))
TABLE_LOAD = _cmd("DM_TABLE_LOAD", (4, 0, 0), logs=True)
TABLE_CLEAR = _cmd("DM_TABLE_CLEAR", (4, 0, 0))
TABLE_DEPS = _cmd("DM_TABLE_DEPS", (4, 0, 0), reply=True)
TABLE_STATUS = _cmd("DM_TABLE_STATUS", (4, 0, 0), reply=True)
LIST_VERSIONS = _cmd("DM_LIST_VERSIONS", (4, 1, 0), reply=True)
TARGET_MSG = _cmd("DM_TARGET_MSG", (4, 2, 0), reply=True, logs=True)
DEV_SET_GEOMETRY = _cmd("DM_DEV_SET_GEOMETRY", (4, 6, 0), logs=True)
DEV_ARM_POLL = _cmd("DM_DEV_ARM_POLL", (4, 37, 0), in_headers=lib.PYDM_HAS_ARM_POLL)
GET_TARGET_VERSION = _cmd("DM_GET_TARGET_VERSION", (4, 41, 0), reply=True,
                          in_headers=lib.PYDM_HAS_GET_TARGET_VERSION)

# Interface versions of features that ride on older commands.
_RENAME_UUID = (4, 19, 0)
_DEFERRED_REMOVE = (4, 27, 0)
_LIST_EVENT_NR = (4, 37, 0)
_LIST_UUID = (4, 45, 0)
_IMA = (4, 45, 0)

# The whole buffer, header included, for commands that answer with records.
# The kernel allocates data_size bytes and copies them all in on every call
# that takes parameters (DM_DEV_STATUS and the other header-only commands
# do not): up to 8 KiB that is a slab allocation (KMALLOC_MAX_CACHE_SIZE);
# above, pages, or vmalloc when memory is fragmented.  Timed from Python
# under TCG, a DM_TABLE_STATUS costs 14 us with a 312-byte buffer, 16 us with 1 KiB,
# 35 us with 8 KiB and 60 us with 16 KiB, whatever the reply.  So the first
# call of a command sends 8 KiB (tables, statuses and most messages fit),
# and later ones send what the replies have been using (see _next_size).
_INITIAL_REPLY_SIZE = 8 * 1024
# Below this the kernel's copy costs about what the header alone does.
_MIN_REPLY_SIZE = 1024
# Growth stops here: a reply this large means something is wrong.
_MAX_BUFFER_SIZE = 256 * 1024 * 1024

_pack_header = records.HEADER.pack_into
_unpack_header = records.HEADER.unpack_from
_zero = lib.pydm_zero
_BUFFER_FULL = lib.DM_BUFFER_FULL_FLAG
_SECURE_DATA = lib.DM_SECURE_DATA_FLAG
# Flags are plain ints (lib.DM_*) everywhere in this module: every | or &
# on an IntFlag runs enum's Python code, which costs microseconds when hot
# and far more when cold, between the ioctls of a create or remove under
# emulation.  Only the DeviceInfo handed out carries a DMFlag.
_ACTIVE_PRESENT = lib.DM_ACTIVE_PRESENT_FLAG
_INACTIVE_PRESENT = lib.DM_INACTIVE_PRESENT_FLAG
_STATUS_TABLE = lib.DM_STATUS_TABLE_FLAG
_DATA_OUT = lib.DM_DATA_OUT_FLAG


_NO_BUFFER = (None, None, 0)  # a thread's (buffer, view, size) before its first call


@functools.lru_cache(maxsize=128)
def _state_flags(flags: int) -> DMFlag:
    # Building an IntFlag costs microseconds; replies repeat a few values.
    return DMFlag(flags & STATE_FLAGS)


def _next_size(sent: int, used: int) -> int:
    """The buffer to send next time for a command whose reply used ``used``
    bytes (header included) of the ``sent`` it was given.

    The aim is a quarter over ``used`` (at least ``_MIN_REPLY_SIZE``): the
    quarter absorbs status lines that grow (counters gaining digits).  Up
    to it the size moves at once; down, an eighth of the way per reply, so
    one caller's large tables cost no retry each time it has also read a
    few small ones in between.  A reply that does not fit at all grows the
    size by doubling and asking again (in ``_ioctl``).  A reply that used
    the whole buffer, or a kernel that left data_size as sent, keeps it.
    """
    if used >= sent:
        return sent
    want = used + (used >> 2)
    if want >= sent:
        return want
    return max(_MIN_REPLY_SIZE, sent - ((sent - want) >> 3))


def _text(field: bytes) -> str:
    """A NUL-padded header string (name, uuid) as str."""
    return field.partition(b"\0")[0].decode("utf-8", "surrogateescape")


class _Reply(NamedTuple):
    version: Version
    flags: int
    event_nr: int
    open_count: int
    target_count: int
    dev: int
    # As the header holds them, NUL-padded: decoded only by the commands
    # that report them (table, status and message replies do not).
    raw_name: bytes
    raw_uuid: bytes
    data: bytes  # the data area: from data_start to data_size

    def info(self) -> DeviceInfo:
        return build(DeviceInfo, (
            _text(self.raw_name),
            _text(self.raw_uuid),
            os.major(self.dev),
            os.minor(self.dev),
            self.open_count,
            self.event_nr,
            self.target_count,
            _state_flags(self.flags),
        ))


def default_dev_dir() -> str:
    """The device directory: ``$DM_DEV_DIR`` as libdevmapper reads it, else /dev."""
    return os.environ.get("DM_DEV_DIR") or "/dev"


class Control:
    """An open ``/dev/mapper/control``; every device-mapper command is a method.

    Devices are addressed by name (``str``), ``Uuid(...)`` or
    ``DevNo(major, minor)``.  Use as a context manager or call ``close()``.

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
    waiting for the cookie when syncing.
    """

    def __init__(self, path: str | None = None, *, udev_sync: bool | None = None,
                 dev_dir: str | None = None,
                 udev_timeout: float = udev.DEFAULT_TIMEOUT,
                 udev_transaction: udev.Transaction | None = None,
                 udev_rules: bool = True, node_uid: int = NODE_UID,
                 node_gid: int | None = None, node_mode: int = NODE_MODE) -> None:
        self.dev_dir = dev_dir or default_dev_dir()
        # First: bad owner or mode arguments raise before a descriptor exists.
        self.nodes = NodeDir(self.dev_dir, uid=node_uid, gid=node_gid, mode=node_mode)
        # udev populates /dev only; resolved once, not per create or remove.
        self._dev_dir_is_udevs = os.path.realpath(self.dev_dir) == "/dev"
        self.path = path or os.path.join(self.dev_dir, "mapper", "control")
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise DeviceMapperUnavailableError(
                    exc.errno, "open", self.path, None,
                    f"{self.path} does not exist: is device-mapper loaded? (modprobe dm_mod)",
                ) from None
            raise error_for(exc.errno, "open", self.path) from None
        # Per command: the reply buffer to send next (see _next_size).
        self._size_hint: dict[str, int] = {}
        # Replies that did not fit and were asked for again (benchmarks read it).
        self._buffer_retries = 0
        self._version: Version | None = None
        self._version_lock = threading.Lock()
        # Per thread: the ioctl buffer (reused, so a call allocates nothing)
        # and the kernel-log cursor; a Control stays shareable.
        self._local = threading.local()
        # Only a real control node gets nodes, and cookies unless asked for
        # explicitly: the unit tier puts a regular file in its place.
        self._real = stat.S_ISCHR(os.fstat(self._fd).st_mode)
        self._udev_sync = udev_sync if self._real or udev_sync is not None else False
        self.udev_timeout = udev_timeout
        self.udev_transaction = udev_transaction
        self.udev_rules = udev_rules

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        cursor = getattr(self._local, "cursor", None)
        if cursor is not None:
            cursor.close()
            self._local.cursor = None

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        """The descriptor, for poll() after ``arm_poll()``."""
        return self._fd

    # -- the one ioctl path -----------------------------------------------

    def _ioctl(
        self,
        cmd: _Command,
        device: DeviceId | None = None,
        *,
        flags: int = 0,
        event_nr: int = 0,
        payload: bytes = b"",
        name: bytes = b"",
        uuid: bytes = b"",
        dev: int = 0,
        target_count: int = 0,
        min_size: int = 0,
        retry_full: bool = True,
        cursor: kmsg.KmsgCursor | None = None,
    ) -> _Reply:
        """Issue one command; returns the reply or raises a typed DMError.

        ``device`` fills the name, uuid or dev field; without it ``name``,
        ``uuid`` and ``dev`` fill them directly (DM_DEV_CREATE sends all
        three; LIST_DEVICES and GET_TARGET_VERSION put other things there).
        ``min_size`` asks for at least that much buffer from the start;
        ``retry_full=False`` returns a reply with DM_BUFFER_FULL_FLAG as is
        (for commands that must not run twice).  ``cursor``: a kernel-log
        cursor the caller placed before an earlier step of the same
        operation (see ``create_device``); else one is placed here for
        commands whose failures the kernel explains only in its log.
        """
        if cmd.gated:
            if not cmd.in_headers:
                raise UnsupportedError(errno.ENOTSUP, cmd.name, None, None,
                                       f"{cmd.name} is not in the headers pydevmapper was built against")
            self._require(cmd.version, cmd.name)
        if device is not None:
            name, uuid, dev = address(device)

        request_size = HEADER_SIZE + len(payload)
        # Whether this call's reply sizes the next one: not when the caller
        # chose the size (messages), nor when a reply that did not fit is
        # returned as it is (its data_size is not what it needed).
        learn = False
        if min_size:
            size = max(request_size, min_size)
        elif cmd.has_reply_data:
            size = self._size_hint.get(cmd.name, _INITIAL_REPLY_SIZE)
            if size < request_size:
                size = request_size
            learn = retry_full
        else:
            size = request_size
        if cursor is None and cmd.logs_reason:
            cursor = self._kmsg_cursor()
        local = self._local
        while True:
            # One attribute for the buffer, its view and its size: each
            # threading.local lookup is a dict access.
            buf, view, have = getattr(local, "buffer", _NO_BUFFER)
            if have < size:
                have = max(size, _INITIAL_REPLY_SIZE)
                buf = ffi.new("char[]", have)
                view = ffi.buffer(buf)
                local.buffer = (buf, view, have)
            # One pack writes the whole header, zeros included.
            _pack_header(view, 0, *cmd.version, size, HEADER_SIZE, target_count, 0,
                         flags, event_nr, dev, name, uuid)
            if payload:
                view[HEADER_SIZE:request_size] = payload
            if size > request_size:
                # The kernel copies the whole buffer in, and a target whose
                # status writes nothing hands back what it found there: only
                # zeros may be found, never an earlier reply.
                _zero(buf, request_size, size)
            result = lib.pydm_dm_ioctl(self._fd, cmd.request, buf)
            if payload and flags & _SECURE_DATA:
                # Tables may hold keys: don't leave them in a reused buffer.
                _zero(buf, HEADER_SIZE, request_size)
            if result < 0:
                # cffi saved errno when ioctl() returned, per thread.
                raise self._failure(ffi.errno, cmd, device, name, cursor)
            (v0, v1, v2, data_size, data_start, r_targets, r_open, r_flags, r_event,
             r_dev, r_name, r_uuid) = _unpack_header(view, 0)
            if (r_flags & _BUFFER_FULL) and retry_full:
                if size >= _MAX_BUFFER_SIZE:
                    raise DMError(errno.ENOBUFS, cmd.name, _label(device, name), None,
                                  f"reply still larger than {size} bytes")
                size *= 2
                self._size_hint[cmd.name] = size
                self._buffer_retries += 1
                continue
            # At the smallest size a reply with a quarter to spare changes
            # nothing: the common case (one table, one status) skips a call.
            if learn and (size > _MIN_REPLY_SIZE or data_size + (data_size >> 2) > size):
                self._size_hint[cmd.name] = _next_size(size, data_size)
            end = min(data_size, size)
            return build(_Reply, (
                (v0, v1, v2), r_flags, r_event, r_open, r_targets, r_dev, r_name, r_uuid,
                view[data_start:end] if end > data_start else b"",
            ))

    def _kmsg_cursor(self) -> kmsg.KmsgCursor:
        """This thread's kernel-log cursor, moved to the log's end."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = kmsg.KmsgCursor()
        else:
            cursor.to_end()
        return cursor

    def _failure(self, err: int, cmd: _Command, device: DeviceId | None,
                 name: bytes, cursor: kmsg.KmsgCursor | None) -> DMError:
        kernel_message = None
        lines = cursor.read_dm_lines() if cursor is not None else []
        devno = None
        if device is not None and (lines or cmd is TABLE_LOAD):
            devno = self._devno_of(device)
        if lines and devno is not None:
            # Keep lines about this device or about no device in particular.
            lines = [line for line in lines if kmsg.about(line, devno)]
        if lines:
            kernel_message = "; ".join(lines)
        return error_for(err, cmd.name, _label(device, name), kernel_message,
                         table_rejected=cmd is TABLE_LOAD and devno is not None)

    def _devno_of(self, device: DeviceId) -> str | None:
        """'maj:min' of a device if it exists (only on the failure path)."""
        try:
            return str(self.info(device).devno)
        except DMError:
            return None

    # -- udev and device nodes ----------------------------------------------

    @property
    def udev_sync(self) -> bool:
        """Whether resume/remove/rename wait for udev (decided on first use)."""
        if self._udev_sync is None:
            self._udev_sync = udev.sync_available()
        return self._udev_sync

    def _uevent_ioctl(self, cmd: _Command, device: DeviceId, **kwargs) -> _Reply:  # type: ignore[no-untyped-def]
        """A command that may raise a uevent (resume, remove, rename).

        ``event_nr`` carries libdevmapper's udev flags over a cookie base.
        Without udev sync: flags only, telling udev not to touch /dev/mapper
        (as libdevmapper does when it makes the nodes itself).  With a
        transaction: its cookie, counted before the ioctl and given back if
        no uevent comes; no wait.  Else a cookie of our own, waited for
        here, whose semaphore never outlives this call.
        """
        flags = udev.PRIMARY_SOURCE
        sync = self.udev_sync
        if not (sync and self.udev_rules):
            flags |= udev.DISABLE_DM_RULES | udev.DISABLE_SUBSYSTEM_RULES
        if not sync:
            # _ioctl checks the address before anything is sent.
            return self._ioctl(cmd, device, event_nr=flags << udev.FLAGS_SHIFT, **kwargs)
        check_id(device)  # before a cookie is made or a transaction joined
        tx = self.udev_transaction
        if tx is not None:
            if self._udev_manages_nodes():
                flags |= udev.DISABLE_LIBRARY_FALLBACK  # the nodes are udev's alone
            tx.join(cmd.name, describe(device))
            try:
                reply = self._ioctl(cmd, device, event_nr=flags << udev.FLAGS_SHIFT | tx.base,
                                    **kwargs)
            except BaseException:
                tx.leave()
                raise
            if not reply.flags & lib.DM_UEVENT_GENERATED_FLAG:
                tx.leave()
            return reply
        with udev.cookie(flags) as ck:
            reply = self._ioctl(cmd, device, event_nr=ck.value, **kwargs)
            if reply.flags & lib.DM_UEVENT_GENERATED_FLAG:
                ck.wait(self.udev_timeout, cmd.name, describe(device))
            return reply

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
        return os.path.join(self.nodes.path, name)

    # -- interface version ------------------------------------------------

    def version(self) -> Version:
        """The kernel's DM ioctl interface version (asked once, then cached)."""
        if self._version is None:
            with self._version_lock:
                if self._version is None:
                    # The kernel writes its own version into every reply.
                    self._version = self._ioctl(VERSION).version
        return self._version

    def _require(self, needed: Version, what: str) -> None:
        have = self.version()
        if have < needed:
            raise UnsupportedError(
                errno.ENOTSUP, what, None, None,
                f"{what} needs device-mapper interface {_v(needed)}; the kernel has {_v(have)}",
            )

    def supports(self, needed: Version) -> bool:
        return self.version() >= needed

    # -- global commands --------------------------------------------------

    def remove_all(self, *, deferred: bool = False) -> None:
        """DM_REMOVE_ALL: remove every device that is not open.

        With ``deferred``, open devices are marked for removal on last close.
        """
        flags = 0
        if deferred:
            self._require(_DEFERRED_REMOVE, "deferred remove")
            flags = lib.DM_DEFERRED_REMOVE
        self._ioctl(REMOVE_ALL, flags=flags)
        if self._real:
            # The kernel raised cookie-less uevents; drop what is now stale.
            known = {d.name for d in self.list_devices(uuids=False)}
            for name in self.nodes.entries():
                if name not in known:
                    _quietly(self.nodes.remove, name)

    def list_devices(self, *, uuids: bool = True, name_prefix: str = "",
                     uuid_prefix: str = "") -> list[ListedDevice]:
        """DM_LIST_DEVICES: every device, in the kernel's (name) order.

        Event numbers come with interface 4.37+, uuids with 4.45+ when
        ``uuids`` is true (otherwise ``uuid`` is None).  The prefixes filter
        in the kernel (4.45+).
        """
        flags = 0
        if uuids and self.supports(_LIST_UUID):
            flags |= lib.DM_UUID_FLAG
        name = b""
        uuid = b""
        if name_prefix or uuid_prefix:
            self._require(_LIST_UUID, "filtering the device list")
            name = name_prefix.encode() if name_prefix else b""
            if len(name) > validate.NAME_MAX_BYTES:
                raise ValidationError("name prefix is longer than a device name can be")
            uuid = uuid_prefix.encode() if uuid_prefix else b""
            if len(uuid) > validate.UUID_MAX_BYTES:
                raise ValidationError("uuid prefix is longer than a uuid can be")
        reply = self._ioctl(LIST_DEVICES, flags=flags, name=name, uuid=uuid)
        return records.decode_name_list(reply.data, self.supports(_LIST_EVENT_NR))

    def targets(self) -> list[TargetVersion]:
        """DM_LIST_VERSIONS: the target types the kernel has loaded."""
        return records.decode_versions(self._ioctl(LIST_VERSIONS).data)

    def target_version(self, target_type: str) -> TargetVersion:
        """DM_GET_TARGET_VERSION: one target type, loading its module if needed."""
        raw = validate.target_type(target_type)
        try:
            reply = self._ioctl(GET_TARGET_VERSION, name=raw)
        except DMError as exc:
            if exc.errno == errno.EINVAL:
                raise DMError(errno.ENOENT, GET_TARGET_VERSION.name, None, None,
                              f"no target type {target_type!r}") from None
            raise
        return records.decode_versions(reply.data)[0]

    def arm_poll(self) -> None:
        """DM_DEV_ARM_POLL: poll() on ``fileno()`` then wakes on the next event."""
        self._ioctl(DEV_ARM_POLL)

    # -- one device ---------------------------------------------------------

    def create(self, name: str, *, uuid: str | None = None,
               devno: DevNo | None = None, node: bool = True) -> DeviceInfo:
        """DM_DEV_CREATE: a device with no table (see ``create_device``).

        ``node=False``: no /dev/mapper entry until the first resume (dmsetup
        makes it there unless given ``--addnodeoncreate``).
        """
        info = self._create(name, uuid, devno).info()
        if node and self._real and not self._udev_manages_nodes():
            # As libdevmapper without udev; with udev the node comes at the
            # first resume (the kernel has no disk, so no uevent, before).
            try:
                self.nodes.ensure(info.name, info.devno)
            except BaseException:
                _quietly(self._ioctl, DEV_REMOVE, info.devno)
                raise
        return info

    def _create(self, name: str, uuid: str | None, devno: DevNo | None,
                cursor: kmsg.KmsgCursor | None = None) -> _Reply:
        raw = validate.device_name(name)
        flags = 0
        uuid_raw = validate.device_uuid(uuid) if uuid is not None else b""
        dev = 0
        if devno is not None:
            check_id(devno)
            flags |= lib.DM_PERSISTENT_DEV_FLAG
            dev = os.makedev(devno.major, devno.minor)
        return self._ioctl(DEV_CREATE, name=raw, uuid=uuid_raw, dev=dev,
                           flags=flags, cursor=cursor)

    def _udev_manages_nodes(self) -> bool:
        return self.udev_sync and self.udev_rules and self._dev_dir_is_udevs

    def _library_nodes(self) -> bool:
        """After resume, rename and remove, the library checks the node: not
        in a udev transaction in udev's directory, where the uevents may be
        still queued (libdevmapper's DISABLE_LIBRARY_FALLBACK)."""
        return self._real and not (self.udev_transaction is not None
                                   and self._udev_manages_nodes())

    def remove(self, device: DeviceId, *, deferred: bool = False,
               retry: float = 0.0, force: bool = False) -> None:
        """DM_DEV_REMOVE; the device's /dev/mapper entry is gone on return.

        ``deferred``: if the device is open, mark it to vanish on last close
        (its node stays until then; ``sync_nodes()`` prunes it after).
        ``retry``: for up to this many seconds, retry while the device is busy
        (udev workers briefly open new devices to probe them).
        ``force``: first swap in an ``error`` table of the same size, resumed
        with noflush and nolockfs so queued I/O fails instead of hanging
        (``dmsetup remove --force``); holders then see errors and can close.
        """
        # The address is checked before any command acts on the device: by
        # _wipe_table's first query or by _uevent_ioctl (only the interface
        # version, asked once per Control, may be queried first).
        flags = 0
        if deferred:
            self._require(_DEFERRED_REMOVE, "deferred remove")
            flags = lib.DM_DEFERRED_REMOVE
        if force:
            self._wipe_table(device)
        deadline = None  # from the first EBUSY: the common case reads no clock
        pause = 0.005
        while True:
            try:
                reply = self._uevent_ioctl(DEV_REMOVE, device, flags=flags)
                if self._library_nodes() and not reply.flags & lib.DM_DEFERRED_REMOVE:
                    # The kernel writes in the name of the device it found.
                    name = _text(reply.raw_name) or (device if type(device) is str else None)
                    if name:
                        self.nodes.remove(name)
                return
            except DeviceBusyError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + retry
                if now + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    def _wipe_table(self, device: DeviceId) -> None:
        """The first half of ``remove(force=True)``; failures are ignored, as
        dmsetup does, since the removal that follows reports the real error."""
        try:
            table = self.table(device)
            if table is None or not len(table):
                return
            self.load(device, Table.single(table.size, "error"))
            try:
                self.resume(device, noflush=True, nolockfs=True)
            except BaseException:
                _quietly(self.clear, device)
                raise
        except DMError:
            pass

    def cancel_deferred_remove(self, device: DeviceId) -> None:
        """Undo ``remove(deferred=True)`` while the device is still open."""
        self.message(device, 0, "@cancel_deferred_remove")

    def rename(self, device: DeviceId, new_name: str) -> DeviceInfo:
        """DM_DEV_RENAME to a new name."""
        check_id(device)
        raw = validate.device_name(new_name)
        old = self._renameable(device)
        if self._real and isinstance(old, Uuid):
            old = self.info(old).name  # the node to move is named by name
        info = self._uevent_ioctl(DEV_RENAME, old, payload=records.encode_cstring(raw)).info()
        # The reply carries the name the kernel found the device by (the old one).
        info = info._replace(name=new_name)
        if self._library_nodes() and old != new_name:
            self.nodes.rename(old, new_name, info.devno)
        return info

    def set_uuid(self, device: DeviceId, uuid: str) -> DeviceInfo:
        """DM_DEV_RENAME with DM_UUID_FLAG: give a device without one a uuid."""
        check_id(device)
        raw = validate.device_uuid(uuid)
        self._require(_RENAME_UUID, "setting a uuid")
        info = self._ioctl(DEV_RENAME, self._renameable(device), flags=lib.DM_UUID_FLAG,
                           payload=records.encode_cstring(raw)).info()
        return info._replace(uuid=uuid)  # the reply still has the old (empty) uuid

    def _renameable(self, device: DeviceId) -> DeviceId:
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
        return self._ioctl(DEV_SUSPEND, device, flags=flags).info()

    def resume(self, device: DeviceId, *, noflush: bool = False,
               nolockfs: bool = False) -> DeviceInfo:
        """DM_DEV_SUSPEND without the suspend flag: swap in any inactive table, resume.

        The device's /dev/mapper entry exists on return (see ``Control``;
        in a udev transaction, once it is released).
        """
        # _uevent_ioctl checks the address before anything is sent.
        flags = 0
        if noflush:
            flags |= lib.DM_NOFLUSH_FLAG
        if nolockfs:
            flags |= lib.DM_SKIP_LOCKFS_FLAG
        info = self._uevent_ioctl(DEV_SUSPEND, device, flags=flags).info()
        if self._library_nodes():
            self.nodes.ensure(info.name, info.devno)
        return info

    def info(self, device: DeviceId, *, inactive: bool = False) -> DeviceInfo:
        """DM_DEV_STATUS.  ``inactive``: read-only and target count of the inactive table."""
        flags = lib.DM_QUERY_INACTIVE_TABLE_FLAG if inactive else 0
        return self._ioctl(DEV_STATUS, device, flags=flags).info()

    def exists(self, device: DeviceId) -> bool:
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
        check_id(device)
        if event_nr is None:
            event_nr = self.info(device).event_nr
        # The reply's status records are not needed (info() reads them on
        # demand), and re-issuing a wait to fit them would wait again.
        return self._ioctl(DEV_WAIT, device, event_nr=event_nr, retry_full=False).info()

    def load(self, device: DeviceId, table: Table | str, *,
             readonly: bool = False) -> DeviceInfo:
        """DM_TABLE_LOAD into the inactive slot; ``resume()`` makes it live."""
        # The table is checked here, the address by _ioctl: both before
        # anything is sent.
        return self._load(device, as_table(table), readonly).info()

    def _load(self, device: DeviceId, tbl: Table, readonly: bool,
              cursor: kmsg.KmsgCursor | None = None) -> _Reply:
        flags = lib.DM_SECURE_DATA_FLAG  # tables may hold keys: let the kernel wipe its copy
        if readonly:
            flags |= lib.DM_READONLY_FLAG
        return self._ioctl(TABLE_LOAD, device, flags=flags, target_count=len(tbl),
                           payload=records.encode_targets(tbl), cursor=cursor)

    def clear(self, device: DeviceId) -> DeviceInfo:
        """DM_TABLE_CLEAR: drop the inactive table."""
        check_id(device)
        return self._ioctl(TABLE_CLEAR, device).info()

    def deps(self, device: DeviceId, *, inactive: bool = False) -> list[DevNo]:
        """DM_TABLE_DEPS: the block devices the table uses."""
        check_id(device)
        flags = lib.DM_QUERY_INACTIVE_TABLE_FLAG if inactive else 0
        reply = self._ioctl(TABLE_DEPS, device, flags=flags)
        if not reply.data:
            return []
        return [DevNo(*d) for d in records.decode_deps(reply.data)]

    def table(self, device: DeviceId, *, inactive: bool = False) -> Table | None:
        """DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG: the table as loaded, or None."""
        targets = self._table_status(device, _STATUS_TABLE, inactive, False)
        return Table._from_kernel(records.decode_table(*targets)) if targets[1] else None

    def status(self, device: DeviceId, *, inactive: bool = False,
               noflush: bool = False) -> list[TargetStatus]:
        """DM_TABLE_STATUS: each target's status line.

        ``noflush``: ask targets not to flush to produce it (thin, cache).
        """
        data, count = self._table_status(device, 0, inactive, noflush)
        return records.decode_status(data, count)

    def ima_measurement(self, device: DeviceId, *, inactive: bool = False) -> list[TargetStatus]:
        """DM_TABLE_STATUS with DM_IMA_MEASUREMENT_FLAG (interface 4.45+)."""
        self._require(_IMA, "IMA measurement")
        if not lib.PYDM_HAS_IMA:
            raise UnsupportedError(errno.ENOTSUP, "DM_TABLE_STATUS", describe(device), None,
                                   "IMA is not in the headers pydevmapper was built against")
        data, count = self._table_status(device, lib.DM_IMA_MEASUREMENT_FLAG, inactive, False)
        return records.decode_status(data, count)

    def _table_status(self, device: DeviceId, flags: int, inactive: bool,
                      noflush: bool) -> tuple[bytes, int]:
        # The one ioctl checks the address before anything is sent.
        if inactive:
            flags |= lib.DM_QUERY_INACTIVE_TABLE_FLAG
        if noflush:
            flags |= lib.DM_NOFLUSH_FLAG
        reply = self._ioctl(TABLE_STATUS, device, flags=flags)
        # Without a table in the queried slot the kernel sends no records.
        present = _INACTIVE_PRESENT if inactive else _ACTIVE_PRESENT
        count = reply.target_count if reply.flags & present and reply.data else 0
        return reply.data, count

    def message(self, device: DeviceId, sector: int, message: str, *,
                reply_size: int = _INITIAL_REPLY_SIZE) -> str | None:
        """DM_TARGET_MSG to the target at ``sector``; returns its answer, if any.

        A message is never re-sent (it may not be idempotent), so an answer
        that does not fit a ``reply_size``-byte buffer (the 312-byte header
        included) raises ENOBUFS; ask again with more (e.g. for dm-stats'
        ``@stats_print`` on a large region list).

        The kernel allocates and copies in the whole buffer, so the default
        stays small (see ``_INITIAL_REPLY_SIZE``).
        """
        # The device address is checked by _ioctl, before anything is sent.
        validate.sector_count(sector, "message sector")
        raw = validate.parameter_string(message, "message")
        if not raw.strip():
            raise ValidationError("message must not be empty")
        payload = records.encode_message(sector, raw)
        reply = self._ioctl(TARGET_MSG, device, payload=payload, retry_full=False,
                            min_size=max(reply_size, HEADER_SIZE + len(payload)))
        if reply.flags & _BUFFER_FULL:
            raise DMError(errno.ENOBUFS, TARGET_MSG.name, describe(device), None,
                          f"the target's answer does not fit a {reply_size}-byte buffer")
        if reply.flags & _DATA_OUT:
            return _text(reply.data)
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
        text = f"{cylinders} {heads} {sectors} {start}".encode()
        self._ioctl(DEV_SET_GEOMETRY, device, payload=records.encode_cstring(text))

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

    # -- several commands -------------------------------------------------------

    def create_device(self, name: str, table: Table | str, *,
                      uuid: str | None = None, readonly: bool = False,
                      devno: DevNo | None = None) -> Device:
        """Create, load and resume in one call; nothing is left if a step fails.

        Returns a ``Device``; ``with ctl.create_device(...) as dev:`` removes
        it again on leaving the block.
        """
        tbl = as_table(table)  # checked before the kernel sees anything
        if self.udev_transaction is not None and self.udev_sync:
            # Else the resume could not join it, nor the clean-up's remove.
            self.udev_transaction.check(DEV_CREATE.name, name)
        # The steps are create, load and resume, as the public methods do
        # them, but with one kernel-log cursor placed before the first (a
        # failed step reads what was logged since, an earlier step's
        # warnings about the device included) and without decoding replies
        # that would be thrown away: between these ioctls each system call
        # and each decode costs tens of microseconds under emulation.
        cursor = self._kmsg_cursor()
        # No node yet: the resume below makes it (or udev does), so the
        # directory is touched once, not at create and again at resume.
        dev = self._create(name, uuid, devno, cursor).dev
        created = build(DevNo, (os.major(dev), os.minor(dev)))
        try:
            self._load(created, tbl, readonly, cursor)
            self._uevent_ioctl(DEV_SUSPEND, created, cursor=cursor)
            if self._library_nodes():
                # The name the kernel took: it stores names as given.
                self.nodes.ensure(name, created)
        except BaseException:
            _remove_quietly(self, created)
            raise
        return Device(self, created, owned=True)

    def reload(self, device: DeviceId, table: Table | str, *,
               readonly: bool = False, noflush: bool = False,
               nolockfs: bool = False) -> DeviceInfo:
        """Load a new table and make it live; the old one stays live on failure."""
        check_id(device)
        tbl = as_table(table)
        self.load(device, tbl, readonly=readonly)
        try:
            self.suspend(device, noflush=noflush, nolockfs=nolockfs)
        except BaseException:
            _quietly(self.clear, device)
            raise
        try:
            return self.resume(device, noflush=noflush, nolockfs=nolockfs)
        except BaseException:
            # The swap failed: drop the new table and bring the old one back.
            _quietly(self.clear, device)
            _quietly(self.resume, device)
            raise

    def device(self, device: DeviceId) -> Device:
        """A handle on an existing device (addressed by its number from now on)."""
        return Device(self, self.info(device).devno, owned=False)


def _quietly(fn, *args) -> None:  # type: ignore[no-untyped-def]
    """Best-effort clean-up step: a failure must not hide the original error."""
    try:
        fn(*args)
    except OSError:  # DMError and node errors alike
        pass


def _remove_quietly(ctl: Control, devno: DevNo) -> None:
    _quietly(ctl.clear, devno)
    try:
        ctl.remove(devno, retry=5.0)
    except DMError:
        pass


def _label(device: DeviceId | None, name: bytes) -> str | None:
    if device is not None:
        return describe(device)
    return name.decode("utf-8", "replace") or None


def _v(version: Version) -> str:
    return ".".join(map(str, version))


class Device:
    """A handle on one device, addressed by its device number.

    The number stays valid across renames; it could be reused only after the
    device is removed.  As a context manager, a handle that ``create_device``
    returned removes its device on exit.
    """

    __slots__ = ("control", "devno", "_owned")

    def __init__(self, control: Control, devno: DevNo, *, owned: bool = False) -> None:
        self.control = control
        self.devno = devno
        self._owned = owned

    def __repr__(self) -> str:
        return f"<Device {self.devno}>"

    @property
    def name(self) -> str:
        return self.info().name

    @property
    def path(self) -> str:
        """``<dev_dir>/mapper/<name>`` (``$DM_DEV_DIR`` or /dev unless the Control says else)."""
        return self.control.node_path(self.name)

    def info(self, *, inactive: bool = False) -> DeviceInfo:
        return self.control.info(self.devno, inactive=inactive)

    def table(self, *, inactive: bool = False) -> Table | None:
        return self.control.table(self.devno, inactive=inactive)

    def status(self, *, inactive: bool = False, noflush: bool = False) -> list[TargetStatus]:
        return self.control.status(self.devno, inactive=inactive, noflush=noflush)

    def deps(self, *, inactive: bool = False) -> list[DevNo]:
        return self.control.deps(self.devno, inactive=inactive)

    def load(self, table: Table | str, *, readonly: bool = False) -> DeviceInfo:
        return self.control.load(self.devno, table, readonly=readonly)

    def reload(self, table: Table | str, **kwargs: bool) -> DeviceInfo:
        return self.control.reload(self.devno, table, **kwargs)

    def suspend(self, **kwargs: bool) -> DeviceInfo:
        return self.control.suspend(self.devno, **kwargs)

    def resume(self, **kwargs: bool) -> DeviceInfo:
        return self.control.resume(self.devno, **kwargs)

    def message(self, message: str, sector: int = 0) -> str | None:
        return self.control.message(self.devno, sector, message)

    def rename(self, new_name: str) -> DeviceInfo:
        return self.control.rename(self.devno, new_name)

    def wait(self, event_nr: int | None = None) -> DeviceInfo:
        return self.control.wait(self.devno, event_nr)

    def remove(self, *, deferred: bool = False, retry: float = 0.0,
               force: bool = False) -> None:
        self.control.remove(self.devno, deferred=deferred, retry=retry, force=force)
        self._owned = False

    @property
    def read_ahead(self) -> int:
        """Read-ahead in 512-byte sectors."""
        return self.control.read_ahead(self.devno)

    def set_read_ahead(self, sectors: int, *, minimum: bool = False) -> int:
        """See ``Control.set_read_ahead``."""
        return self.control.set_read_ahead(self.devno, sectors, minimum=minimum)

    def cancel_deferred_remove(self) -> None:
        self.control.cancel_deferred_remove(self.devno)

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            self._owned = False
            _remove_quietly(self.control, self.devno)
