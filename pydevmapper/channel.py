# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ioctl channel: the one door to the kernel.

``Channel.call`` is the only place that calls ``ioctl(2)``.  It gates a
command on the interface version the kernel runs, stamps the version the
command needs, places input records at ``data_start``, clears what the
kernel copies in, grows the buffer while the kernel answers
``DM_BUFFER_FULL_FLAG``, sizes each command's next buffer from the replies
it has had (the kernel copies in the whole buffer, so a large one costs on
every call), reads the kernel log after a failure that the kernel explains
only there, and turns any failure into a typed ``DMError``.

A channel holds no per-call state beyond its descriptor and those size
hints, so one may be shared between threads: each thread has its own
buffer and kernel-log cursor, and the blocking ``DM_DEV_WAIT`` releases the
GIL (cffi does so around every C call).
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import threading
import time

from pydevmapper import kmsg, log, records
from pydevmapper._dm import HEADER_SIZE, ffi, lib
from pydevmapper._namedtuple import NamedTuple, build
from pydevmapper.errors import DeviceMapperUnavailableError, DMError, UnsupportedError, error_for
from pydevmapper.flags import STATE_FLAGS, DMFlag
from pydevmapper.types import DeviceInfo, DevNo, address, describe

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from pydevmapper.types import DeviceId

Version = tuple[int, int, int]


class Command(NamedTuple):
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


def _cmd(name: str, version: Version, reply: bool = False, logs: bool = False) -> Command:
    return Command(name, getattr(lib, name), version, reply, logs, version > (4, 0, 0))


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
DEV_ARM_POLL = _cmd("DM_DEV_ARM_POLL", (4, 37, 0))
GET_TARGET_VERSION = _cmd("DM_GET_TARGET_VERSION", (4, 41, 0), reply=True)

# Interface versions of features that ride on older commands.
RENAME_UUID = (4, 19, 0)
DEFERRED_REMOVE = (4, 27, 0)
LIST_EVENT_NR = (4, 37, 0)
LIST_UUID = (4, 45, 0)
IMA = (4, 45, 0)

# The whole buffer, header included, for commands that answer with records.
# The kernel allocates data_size bytes and copies them all in on every call
# that takes parameters (DM_DEV_STATUS and the other header-only commands
# do not): up to 8 KiB that is a slab allocation (KMALLOC_MAX_CACHE_SIZE);
# above, pages, or vmalloc when memory is fragmented.  Timed from Python
# under TCG, a DM_TABLE_STATUS costs 14 us with a 312-byte buffer, 16 us with 1 KiB,
# 35 us with 8 KiB and 60 us with 16 KiB, whatever the reply.  So the first
# call of a command sends 8 KiB (tables, statuses and most messages fit),
# and later ones send what the replies have been using (see next_size).
INITIAL_REPLY_SIZE = 8 * 1024
# Below this the kernel's copy costs about what the header alone does.
MIN_REPLY_SIZE = 1024
# Growth stops here: a reply this large means something is wrong.
MAX_BUFFER_SIZE = 256 * 1024 * 1024

_pack_header = records.HEADER.pack_into
_unpack_header = records.HEADER.unpack_from
_zero = lib.pydm_zero
_BUFFER_FULL = lib.DM_BUFFER_FULL_FLAG
_SECURE_DATA = lib.DM_SECURE_DATA_FLAG

# A thread's (buffer, view, size, dirty) before its first call: size 0
# makes the call replace the Nones.  ``dirty`` is a one-item list: the end
# of what a call may have left in the buffer (everything past it is zero).
_NO_BUFFER: tuple[Any, Any, int, list[int]] = (None, None, 0, [0])


@functools.lru_cache(maxsize=128)
def _state_flags(flags: int) -> DMFlag:
    # Building an IntFlag costs microseconds; replies repeat a few values.
    return DMFlag(flags & STATE_FLAGS)


def next_size(sent: int, used: int) -> int:
    """The buffer to send next time for a command whose reply used ``used``
    bytes (header included) of the ``sent`` it was given.

    The aim is a quarter over ``used`` (at least ``MIN_REPLY_SIZE``): the
    quarter absorbs status lines that grow (counters gaining digits).  Up
    to it the size moves at once; down, an eighth of the way per reply, so
    one caller's large tables cost no retry each time it has also read a
    few small ones in between.  A reply that does not fit at all grows the
    size by doubling and asking again (in ``Channel.call``).  A reply that
    used the whole buffer, or a kernel that left data_size as sent, keeps it.
    """
    if used >= sent:
        return sent
    want = used + (used >> 2)
    if want >= sent:
        return want
    return max(MIN_REPLY_SIZE, sent - ((sent - want) >> 3))


def text(field: bytes) -> str:
    """A NUL-terminated string from a reply (a header's name or uuid, a message's answer)."""
    return field.partition(b"\0")[0].decode("utf-8", "surrogateescape")


class Reply(NamedTuple):
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
            text(self.raw_name),
            text(self.raw_uuid),
            os.major(self.dev),
            os.minor(self.dev),
            self.open_count,
            self.event_nr,
            self.target_count,
            _state_flags(self.flags),
        ))

    def devno(self) -> DevNo:
        return build(DevNo, (os.major(self.dev), os.minor(self.dev)))


def _v(version: Version) -> str:
    return ".".join(map(str, version))


class Channel:
    """An open device-mapper control node and the one path every command takes."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise DeviceMapperUnavailableError(
                    errno.ENOENT, "open", path, None,
                    f"{path} does not exist: is device-mapper loaded? (modprobe dm_mod)",
                ) from None
            # An OSError from a system call always has an errno.
            raise error_for(exc.errno, "open", path) from None  # type: ignore[arg-type]
        # Only a real control node is the kernel's: the unit tier puts a
        # regular file in its place.
        self.is_kernel = stat.S_ISCHR(os.fstat(self._fd).st_mode)
        # Per command: the reply buffer to send next (see next_size).
        self.size_hints: dict[str, int] = {}
        # Replies that did not fit and were asked for again (benchmarks read it).
        self.buffer_retries = 0
        self._version: Version | None = None
        self._version_lock = threading.Lock()
        # Per thread: the ioctl buffer (reused, so a call allocates nothing)
        # and the kernel-log cursor.
        self._local = threading.local()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        cursor = getattr(self._local, "cursor", None)
        if cursor is not None:
            cursor.close()
            self._local.cursor = None

    def fileno(self) -> int:
        return self._fd

    # -- the interface version ------------------------------------------------

    def version(self) -> Version:
        """The kernel's DM ioctl interface version (asked once, then cached)."""
        if self._version is None:
            with self._version_lock:
                if self._version is None:
                    # The kernel writes its own version into every reply.
                    self._version = self.call(VERSION).version
        return self._version

    def require(self, needed: Version, what: str) -> None:
        have = self.version()
        if have < needed:
            raise UnsupportedError(
                errno.ENOTSUP, what, None, None,
                f"{what} needs device-mapper interface {_v(needed)}; the kernel has {_v(have)}",
            )

    def supports(self, needed: Version) -> bool:
        return self.version() >= needed

    # -- the one ioctl path ---------------------------------------------------

    def call(
        self,
        cmd: Command,
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
    ) -> Reply:
        """Issue one command; returns the reply or raises a typed DMError.

        ``device`` fills the name, uuid or dev field; without it ``name``,
        ``uuid`` and ``dev`` fill them directly (DM_DEV_CREATE sends all
        three; LIST_DEVICES and GET_TARGET_VERSION put other things there).
        ``min_size`` asks for at least that much buffer from the start;
        ``retry_full=False`` returns a reply with DM_BUFFER_FULL_FLAG as is
        (for commands that must not run twice).  ``cursor``: a kernel-log
        cursor the caller placed before an earlier step of the same
        operation (see ``kmsg_cursor``); else one is placed here for
        commands whose failures the kernel explains only in its log.
        """
        if cmd.gated:
            self.require(cmd.version, cmd.name)
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
            size = self.size_hints.get(cmd.name, INITIAL_REPLY_SIZE)
            if size < request_size:
                size = request_size
            learn = retry_full
        else:
            size = request_size
        if cursor is None and cmd.logs_reason:
            cursor = self.kmsg_cursor()
        trace = log.logger("ioctl")
        started = 0.0
        local = self._local
        while True:
            # One attribute for the buffer, its view, its size and its
            # dirty end: each threading.local lookup is a dict access.
            buf, view, have, dirty = getattr(local, "buffer", _NO_BUFFER)
            if have < size:
                have = max(size, INITIAL_REPLY_SIZE)
                buf = ffi.new("char[]", have)  # zeroed
                view = ffi.buffer(buf)
                dirty = [0]
                local.buffer = (buf, view, have, dirty)
            # One pack writes the whole header, zeros included.
            _pack_header(view, 0, *cmd.version, size, HEADER_SIZE, target_count, 0,
                         flags, event_nr, dev, name, uuid)
            if payload:
                view[HEADER_SIZE:request_size] = payload
            left = dirty[0]
            if size > request_size and left > request_size:
                # The kernel copies the whole buffer in, and a target whose
                # status writes nothing hands back what it found there: only
                # zeros may be found, never an earlier reply.  Only what
                # earlier calls wrote needs clearing: clearing a message's
                # whole 8 KiB took a tenth of its call under emulation.
                _zero(buf, request_size, left if left < size else size)
            if trace is not None:
                started = time.perf_counter()
            result = lib.pydm_dm_ioctl(self._fd, cmd.request, buf)
            if payload and flags & _SECURE_DATA:
                # Tables may hold keys: don't leave them in a reused buffer.
                _zero(buf, HEADER_SIZE, request_size)
            if result < 0:
                # cffi saved errno when ioctl() returned, per thread.
                err = ffi.errno
                # A failure copies back at most the header (a DM_DEV_CREATE
                # of a taken name): counting the whole buffer as written
                # costs one clearing on the next call.
                if size > HEADER_SIZE and size > left:
                    dirty[0] = size
                if trace is not None:
                    trace.debug("%s %s flags=%#x size=%d: %s after %.0f us", cmd.name,
                                _label(device, name), flags, size, errno.errorcode.get(err, err),
                                (time.perf_counter() - started) * 1e6)
                raise self._failure(err, cmd, device, name, cursor)
            (v0, v1, v2, data_size, data_start, r_targets, r_open, r_flags, r_event,
             r_dev, r_name, r_uuid) = _unpack_header(view, 0)
            # The kernel copied back data_size bytes; past size nothing was
            # cleared, and below request_size is this call's own request.
            # A header-only call (most commands) touched nothing past it.
            if size > HEADER_SIZE and left <= size:
                written = data_size if data_size < size else size
                dirty[0] = written if written > request_size else request_size
            if (r_flags & _BUFFER_FULL) and retry_full:
                if flags & _SECURE_DATA:
                    # What did fit may hold keys, and this buffer may be dropped for a larger one.
                    _zero(buf, data_start, min(data_size, size))
                if size >= MAX_BUFFER_SIZE:
                    raise DMError(errno.ENOBUFS, cmd.name, _label(device, name), None,
                                  f"reply still larger than {size} bytes")
                if trace is not None:
                    trace.debug("%s %s flags=%#x size=%d: the reply did not fit; asking again with %d",
                                cmd.name, _label(device, name), flags, size, size * 2)
                size *= 2
                self.size_hints[cmd.name] = size
                self.buffer_retries += 1
                continue
            # At the smallest size a reply with a quarter to spare changes
            # nothing: the common case (one table, one status) skips a call.
            if learn and (size > MIN_REPLY_SIZE or data_size + (data_size >> 2) > size):
                self.size_hints[cmd.name] = next_size(size, data_size)
            end = min(data_size, size)
            data = view[data_start:end] if end > data_start else b""
            if data and flags & _SECURE_DATA:
                _zero(buf, data_start, end)  # a table read back may hold keys
            if trace is not None:
                # Last: the reply is copied out, so a handler that calls back
                # into pydevmapper on this thread cannot change it.
                trace.debug("%s %s flags=%#x size=%d: flags=%#x data_size=%d event_nr=%d in %.0f us",
                            cmd.name, _label(device, name), flags, size, r_flags, data_size,
                            r_event, (time.perf_counter() - started) * 1e6)
            return build(Reply, (
                (v0, v1, v2), r_flags, r_event, r_open, r_targets, r_dev, r_name, r_uuid, data,
            ))

    def kmsg_cursor(self) -> kmsg.KmsgCursor:
        """This thread's kernel-log cursor, moved to the log's end: pass it to
        each step of an operation so a failed step reads what the kernel
        logged since the first (an earlier step's warnings included)."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = kmsg.KmsgCursor()
        else:
            cursor.to_end()
        return cursor

    def _failure(self, err: int, cmd: Command, device: DeviceId | None,
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
            trace = log.logger("ioctl")
            if trace is not None:
                trace.debug("%s %s: the kernel logged: %s", cmd.name, _label(device, name),
                            kernel_message)
        return error_for(err, cmd.name, _label(device, name), kernel_message,
                         table_rejected=cmd is TABLE_LOAD and devno is not None)

    def _devno_of(self, device: DeviceId) -> str | None:
        """'maj:min' of a device if it exists (only on the failure path)."""
        try:
            return str(self.call(DEV_STATUS, device).devno())
        except DMError:
            return None


def _label(device: DeviceId | None, name: bytes) -> str | None:
    if device is not None:
        return describe(device)
    return name.decode("utf-8", "replace") or None
