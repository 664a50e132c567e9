# SPDX-License-Identifier: LGPL-2.1-or-later
"""A fake kernel behind a regular file, for Control's ioctl path.

``Control(path=<regular file>)`` only opens the file; the ``kernel``
fixture (conftest.py) replaces ``pydevmapper.channel.lib`` by a proxy whose
``pydm_dm_ioctl`` is ``FakeKernel.ioctl`` and whose other attributes are
the real compiled binding's.  What the real kernel does with a request is
the root tier's business.
"""

from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional

from pydevmapper._dm import ffi
from pydevmapper._dm import lib as real_lib

COMMANDS = [
    "DM_VERSION", "DM_REMOVE_ALL", "DM_LIST_DEVICES", "DM_DEV_CREATE", "DM_DEV_REMOVE",
    "DM_DEV_RENAME", "DM_DEV_SUSPEND", "DM_DEV_STATUS", "DM_DEV_WAIT", "DM_TABLE_LOAD",
    "DM_TABLE_CLEAR", "DM_TABLE_DEPS", "DM_TABLE_STATUS", "DM_LIST_VERSIONS", "DM_TARGET_MSG",
    "DM_DEV_SET_GEOMETRY", "DM_DEV_ARM_POLL", "DM_GET_TARGET_VERSION",
]
REQUEST_NAMES = {getattr(real_lib, name): name for name in COMMANDS}
FULL = real_lib.DM_BUFFER_FULL_FLAG


def huge_encode_dev(major: int, minor: int) -> int:
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def pad8(raw: bytes) -> bytes:
    return raw + b"\0" * (-len(raw) % 8)


class Call(NamedTuple):
    """What the fake kernel saw in one request."""

    command: str
    version: tuple
    data_size: int
    data_start: int
    flags: int
    event_nr: int
    target_count: int
    dev: int
    name: bytes
    uuid: bytes
    payload: bytes  # data_start .. data_size as sent


Handler = Callable[[Call, "ffi.CData", "ffi.CData"], Optional[int]]


class FakeKernel:
    """Answers ioctls on the fake descriptor; per-command handlers, call log."""

    def __init__(self) -> None:
        self.version = (4, 47, 0)
        self.calls: List[Call] = []
        self.handlers: Dict[str, Handler] = {}

    def ioctl(self, fd: int, request: int, buf) -> int:
        command = REQUEST_NAMES[request]
        hdr = ffi.cast("struct dm_ioctl *", buf)
        size = hdr.data_size
        call = Call(
            command, tuple(hdr.version), size, hdr.data_start, hdr.flags, hdr.event_nr,
            hdr.target_count, hdr.dev, ffi.string(hdr.name), ffi.string(hdr.uuid),
            ffi.buffer(buf, size)[hdr.data_start:size],
        )
        self.calls.append(call)
        hdr.version = self.version  # the kernel writes its own, even on failure
        handler = self.handlers.get(command)
        err = handler(call, hdr, buf) if handler else None
        if err:
            ffi.errno = err
            return -1
        return 0

    def commands(self) -> List[str]:
        return [c.command for c in self.calls]

    def of(self, command: str) -> List[Call]:
        return [c for c in self.calls if c.command == command]


def put_data(hdr, buf, data: bytes) -> None:
    """Write reply records as the kernel does, or flag the buffer as too small."""
    if hdr.data_start + len(data) > hdr.data_size:
        hdr.flags |= FULL
        return
    ffi.memmove(buf + hdr.data_start, data, len(data))
    hdr.data_size = hdr.data_start + len(data)


def fail(err: int) -> Handler:
    return lambda call, hdr, buf: err


def device_reply(name: str = "vol", major: int = 253, minor: int = 5,
                 flags: int = 0, uuid: str = "") -> Handler:
    def handler(call, hdr, buf):
        hdr.name = name.encode()
        hdr.uuid = uuid.encode()
        hdr.dev = huge_encode_dev(major, minor)
        hdr.flags = flags
        hdr.open_count = 0
        hdr.event_nr = 3
    return handler


class FakeCursor:
    """Stands in for the /dev/kmsg cursor so the host's log never leaks in."""

    lines: List[str] = []

    def read_dm_lines(self):
        return list(self.lines)

    def to_end(self) -> None:
        pass

    def close(self) -> None:
        pass


class LibProxy:
    def __init__(self, ioctl) -> None:
        self.pydm_dm_ioctl = ioctl

    def __getattr__(self, name):
        return getattr(real_lib, name)
