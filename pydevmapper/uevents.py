# SPDX-License-Identifier: LGPL-2.1-or-later
"""Mapped devices coming and going, as the kernel and udev announce them::

    from pydevmapper import uevents

    with uevents.monitor(timeout=10) as seen:       # listening from here on
        for ev in seen:
            print(ev.action, ev.name, ev.devno, ev.cookie)

    info = uevents.wait_for_device("vol", timeout=30)   # made by another process

The kernel sends a uevent (``add``, ``change``, ``remove``) for every mapped
device it creates, resumes, renames or removes, whoever asked; udevd sends
its own once its rules have run (then ``/dev/mapper`` is up to date).  A
``monitor`` listens to one of the two (``source="kernel"``, the default,
works with or without udevd; ``source="udev"`` needs udevd) on a netlink
socket (NETLINK_KOBJECT_UEVENT) and yields a typed ``Uevent`` for each
event of a mapped device.

The socket's receive buffer can run over when events come faster than they
are read; the kernel then drops events and says so (ENOBUFS).  The monitor
never passes over that: it yields an ``Overflow`` carrying the devices as
the kernel lists them right after, so a caller that keeps a picture of the
devices can rebuild it and go on.

The socket is the standard library's: pyroute2's ``UeventSocket`` (0.9)
turns ENOBUFS into a garbled message and leaves its socket unusable, and
drops the first property of udev's messages.  The root tier checks the
kernel's events seen here against pyroute2's.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.control import Control
from pydevmapper.errors import DeviceNotFoundError, DMError, ValidationError
from pydevmapper.events import readable
from pydevmapper.types import DeviceInfo, DevNo, ListedDevice, Uuid

NETLINK_KOBJECT_UEVENT = 15  # linux/netlink.h
SO_RCVBUFFORCE = 33  # asm-generic/socket.h (x86, arm, ...); not in the socket module
SOURCES = {"kernel": 1, "udev": 2}  # the multicast group each sends to
# The kernel's uevents are at most 2 KiB (UEVENT_BUFFER_SIZE); udevd's carry
# its database's properties too.
_MESSAGE_MAX = 64 * 1024
_UDEV_MAGIC = 0xFEEDCAFE  # udev's monitor header, big-endian on the wire
_HOST_ORDER = sys.byteorder
DEFAULT_RECEIVE_BUFFER = 8 * 1024 * 1024


class Uevent(NamedTuple):
    """One uevent of a mapped device."""

    #: "kernel" or "udev"
    source: str
    #: "add", "change" or "remove" (the kernel's kobject actions)
    action: str
    devno: DevNo
    #: the device's name: udev's DM_NAME, else read from sysfs when the event
    #: arrived, else the last name seen for the device number; None if unknown
    name: str | None
    #: as ``name``; "" for a device without a uuid
    uuid: str | None
    #: the udev cookie the command that caused it carried (DM_COOKIE), or None
    cookie: int | None
    #: the kernel's event sequence number (SEQNUM)
    seqnum: int
    #: every property of the event, as sent
    properties: Mapping[str, str]


class Overflow(NamedTuple):
    """Events were lost (the receive buffer ran over); ``devices`` is the
    kernel's list of mapped devices read right after."""

    devices: list[ListedDevice]


def parse(data: bytes) -> tuple[str, dict[str, str]] | None:
    """A uevent message's source ("kernel" or "udev") and properties; None for
    anything else."""
    if data.startswith(b"libudev\0"):
        if len(data) < 40 or int.from_bytes(data[8:12], "big") != _UDEV_MAGIC:
            return None
        # The magic is big-endian; the offsets are in the sender's (this
        # host's) byte order.
        start = int.from_bytes(data[16:20], _HOST_ORDER)
        length = int.from_bytes(data[20:24], _HOST_ORDER)
        body, source = data[start:start + length], "udev"
    elif b"@" in data.split(b"\0", 1)[0]:
        body, source = data.split(b"\0", 1)[1] if b"\0" in data else b"", "kernel"
    else:
        return None
    props: dict[str, str] = {}
    for item in body.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            props[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return source, props


def _sysfs(devpath: str, attr: str) -> str | None:
    try:
        with open(f"/sys{devpath}/dm/{attr}", encoding="utf-8", errors="replace") as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


class _Listener:
    """The netlink socket, and the names of the devices it has seen."""

    def __init__(self, source: str, control: Control | None, receive_buffer: int | None) -> None:
        if source not in SOURCES:
            raise ValidationError(f"source must be one of {sorted(SOURCES)}, not {source!r}")
        size = DEFAULT_RECEIVE_BUFFER if receive_buffer is None else receive_buffer
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValidationError(f"receive_buffer must be a positive number of bytes, not {size!r}")
        self.source = source
        # No node handling or udev: this descriptor only lists.
        self.ctl = Control(control.path if control is not None else None, udev_sync=False)
        try:
            self.sock = socket.socket(socket.AF_NETLINK,
                                      socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                      NETLINK_KOBJECT_UEVENT)
        except BaseException:
            self.ctl.close()
            raise
        try:
            try:  # past net.core.rmem_max: root may
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            self.sock.bind((0, SOURCES[source]))
            # Bound before listing: a device made in between is in both.
            self.known: dict[DevNo, tuple[str, str | None]] = {}
            self.relist()
        except BaseException:
            self.close()
            raise

    def relist(self) -> list[ListedDevice]:
        listed = self.ctl.list_devices()
        self.known = {d.devno: (d.name, d.uuid) for d in listed}
        return listed

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> list[Uevent | Overflow]:
        """Every event waiting on the socket, without blocking; an
        ``Overflow`` last if some were lost."""
        out: list[Uevent | Overflow] = []
        lost = False
        while True:
            try:
                data, (sender, _) = self.sock.recvfrom(_MESSAGE_MAX)
            except BlockingIOError:
                # The list is read once the queue is empty: the kernel drops
                # events until there is room, so this is the state after
                # the last event lost as well as after the last one read.
                if lost:
                    out.append(Overflow(self.relist()))
                return out
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                lost = True
                continue
            # Only the kernel sends as port 0; sending to these groups
            # takes CAP_NET_ADMIN, so no unprivileged program can forge one.
            if (sender == 0) != (self.source == "kernel"):
                continue
            event = self._event(data)
            if event is not None:
                out.append(event)

    def _event(self, data: bytes) -> Uevent | None:
        parsed = parse(data)
        if parsed is None:
            return None
        source, props = parsed
        devpath = props.get("DEVPATH", "")
        if props.get("SUBSYSTEM") != "block" or not devpath.rpartition("/")[2].startswith("dm-"):
            return None
        try:
            devno = DevNo(int(props["MAJOR"]), int(props["MINOR"]))
            seqnum = int(props.get("SEQNUM", "0"))
            cookie = int(props["DM_COOKIE"], 0) if "DM_COOKIE" in props else None
        except (KeyError, ValueError):
            return None
        action = props.get("ACTION", "")
        name: str | None = props.get("DM_NAME")
        uuid: str | None = props.get("DM_UUID")
        last = self.known.get(devno)
        if action != "remove" and (name is None or uuid is None):
            name = name if name is not None else _sysfs(devpath, "name")
            uuid = uuid if uuid is not None else _sysfs(devpath, "uuid")
            if name is None or uuid is None:
                # The dm/ attributes appear just after the disk's "add".
                try:
                    info = self.ctl.info(devno)
                    name = name if name is not None else info.name
                    uuid = uuid if uuid is not None else info.uuid
                except DMError:
                    pass
        if last is not None:
            name = name if name is not None else last[0]
            uuid = uuid if uuid is not None else last[1]
        # Kept after a remove: the kernel sends two (device-mapper's, then
        # the block layer's as the disk goes), and the number is reused
        # only by an "add", which brings the new name.
        if name is not None:
            self.known[devno] = (name, uuid)
        return Uevent(source, action, devno, name, uuid, cookie, seqnum, props)

    def close(self) -> None:
        self.sock.close()
        self.ctl.close()


def _wait_readable(fd: int, timeout: float | None) -> None:
    # poll, not select: a descriptor may be numbered past FD_SETSIZE.
    # Retries EINTR itself (PEP 475) and raises what a handler raises.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))


class monitor:
    """``for ev in monitor(...)``: each ``Uevent`` (and ``Overflow``), blocking
    between them.

    ``source``: "kernel" or "udev".  ``control`` only names the control node
    (a private descriptor lists devices).  ``timeout``: stop after this many
    seconds without an event (None: never).  ``name_prefix``: only devices
    whose name starts with it (an ``Overflow`` always comes through).
    ``receive_buffer``: the socket's buffer in bytes.  Listens from the
    call on; ``with monitor() as events:`` (or ``close()``) closes it, as
    does running out on the timeout.
    """

    def __init__(self, source: str = "kernel", *, control: Control | None = None,
                 timeout: float | None = None, name_prefix: str = "",
                 receive_buffer: int | None = None) -> None:
        self._listener: _Listener | None = _Listener(source, control, receive_buffer)
        self._timeout = timeout
        self._prefix = name_prefix
        self._pending: list[Uevent | Overflow] = []

    def fileno(self) -> int:
        """The netlink socket, for a caller's own poll loop (then use ``pending()``)."""
        if self._listener is None:
            raise ValueError("the monitor is closed")
        return self._listener.fileno()

    def pending(self) -> list[Uevent | Overflow]:
        """The events that have arrived, without waiting."""
        if self._listener is None:
            return []
        got = self._pending + [ev for ev in self._listener.drain() if self._wanted(ev)]
        self._pending = []
        return got

    def _wanted(self, ev: Uevent | Overflow) -> bool:
        return (not self._prefix or isinstance(ev, Overflow)
                or (ev.name is not None and ev.name.startswith(self._prefix)))

    def __iter__(self) -> Iterator[Uevent | Overflow]:
        return self

    def __next__(self) -> Uevent | Overflow:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while not self._pending:
            if self._listener is None:
                raise StopIteration
            self._pending = self.pending()
            if self._pending:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.close()
                raise StopIteration
            _wait_readable(self._listener.fileno(), left)
        return self._pending.pop(0)

    def close(self) -> None:
        """Close the socket; the iteration ends."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class async_monitor:
    """``async for ev in async_monitor(...)``: as ``monitor``, on the running
    asyncio loop (``loop.add_reader`` on the socket; the loop never blocks)."""

    def __init__(self, source: str = "kernel", *, control: Control | None = None,
                 timeout: float | None = None, name_prefix: str = "",
                 receive_buffer: int | None = None) -> None:
        self._sync = monitor(source, control=control, name_prefix=name_prefix,
                             receive_buffer=receive_buffer)
        self._timeout = timeout

    def __aiter__(self) -> AsyncIterator[Uevent | Overflow]:
        return self

    async def __anext__(self) -> Uevent | Overflow:
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        while True:
            if self._sync._listener is None:
                raise StopAsyncIteration
            got = self._sync.pending()
            if got:
                self._sync._pending = got[1:]
                return got[0]
            left = None if deadline is None else deadline - loop.time()
            if not await readable(self._sync.fileno(), left):
                await self.aclose()
                raise StopAsyncIteration

    def pending(self) -> list[Uevent | Overflow]:
        """The events that have arrived, without waiting."""
        return self._sync.pending()

    async def aclose(self) -> None:
        """Close the socket; the iteration ends."""
        self._sync.close()

    async def __aenter__(self) -> async_monitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def wait_for_device(name: str | None = None, *, uuid: str | None = None,
                    timeout: float = 30.0, live: bool = True,
                    control: Control | None = None) -> DeviceInfo:
    """Wait until a device (by ``name`` or ``uuid``) exists, made by anyone,
    and return its state.  ``live``: also until it has a live table and is
    not suspended (it can take I/O).  Wakes on the kernel's uevents, so it
    costs nothing while waiting; raises ``TimeoutError`` after ``timeout``
    seconds in all."""
    if (name is None) == (uuid is None):
        raise ValidationError("wait_for_device: give a name or a uuid, not both")
    device: str = Uuid(uuid) if uuid is not None else str(name)
    deadline = time.monotonic() + timeout
    listener = _Listener("kernel", control, None)
    try:
        while True:
            try:
                info = listener.ctl.info(device)
                if not live or (info.live_table and not info.suspended):
                    return info
            except DeviceNotFoundError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                what = f"uuid {uuid}" if uuid is not None else repr(name)
                raise TimeoutError(errno.ETIMEDOUT, f"no device {what}"
                                   f"{' with a live table' if live else ''} after {timeout} s")
            _wait_readable(listener.fileno(), left)
            listener.drain()
    finally:
        listener.close()
