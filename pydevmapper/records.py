"""Encoding and decoding of the records that follow ``struct dm_ioctl``.

Pure functions over bytes: no kernel, no file descriptor, so the unit tests
check them against independently built byte layouts.  Offsets and sizes come
from the compiled binding; records are 8-byte aligned as the kernel demands.

A subtlety the kernel header documents: in a DM_TABLE_LOAD request a target
spec's ``next`` counts from that spec, while in a DM_TABLE_STATUS reply it
counts from the start of the data area.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

from pydevmapper._dm import ffi, lib
from pydevmapper._namedtuple import NamedTuple, build
from pydevmapper.flags import NAME_LIST_HAS_UUID
from pydevmapper.table import Target, TargetStatus

ALIGN = 8
_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def _reader(ctype: str, member: str) -> tuple[Callable[[bytes, int], tuple], int]:
    """An unpacker for one integer member (or integer array) of a record.

    Offset, width and signedness come from the compiled binding; decoding
    with struct at those offsets costs a fraction of a cffi cast per record,
    which matters when listing thousands of devices.
    """
    field = dict(ffi.typeof(ctype).fields)[member]
    return struct.Struct("=" + _int_format(*_element(field))).unpack_from, field.offset


def _element(field) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    """A member's element type and count (1 unless it is an array)."""
    if field.type.kind == "array":
        return field.type.item, field.type.length
    return field.type, 1


def _int_format(ftype, count: int) -> str:  # type: ignore[no-untyped-def]
    """struct format for ``count`` integers of a cffi type, width and sign from the binding."""
    code = _INT_CODES[ffi.sizeof(ftype)]
    return f"{count}{code.upper() if ftype.cname.startswith(('uint', 'unsigned')) else code}"


def _record_struct(ctype: str, skip: tuple[str, ...] = (),
                   tail: bool = True) -> tuple[struct.Struct, tuple[str, ...]]:
    """A whole record as one struct.Struct, members in declaration order.

    Packing a header in one call (and unpacking a reply the same way)
    replaces a dozen cffi member accesses per ioctl.  Offsets, widths and
    array sizes come from the compiled binding; members in ``skip`` and any
    trailing flexible array become pad bytes, which pack writes as zeros.
    ``tail=False`` leaves out the padding after the last member (a record
    whose variable part starts inside it may end before the struct does).
    Returns the Struct and the member each packed value belongs to.
    """
    fmt, at, names = "=", 0, []
    for member, field in ffi.typeof(ctype).fields:
        if field.offset > at:
            fmt += f"{field.offset - at}x"
        ftype, count = _element(field)
        if member in skip:
            fmt += f"{ffi.sizeof(field.type)}x"
        elif ftype.cname == "char":
            fmt += f"{count}s"
            names.append(member)
        else:
            fmt += _int_format(ftype, count)
            names += [member] * count
        at = field.offset + ffi.sizeof(field.type)
    size = ffi.sizeof(ctype) if tail else at
    if size > at:
        fmt += f"{size - at}x"
    packed = struct.Struct(fmt)
    assert packed.size == size, (fmt, size)
    return packed, tuple(names)


def _expect(ctype: str, got: tuple[str, ...], expected: tuple[str, ...]) -> None:
    # Code packs and unpacks these values by position.
    if got != expected:  # pragma: no cover - a header we do not know
        raise ImportError(f"unexpected {ctype} layout: {got}")


HEADER, _fields = _record_struct("struct dm_ioctl", skip=("padding", "data"))
_expect("struct dm_ioctl", _fields, (
    "version", "version", "version", "data_size", "data_start", "target_count",
    "open_count", "flags", "event_nr", "dev", "name", "uuid",
))
_SPEC, _fields = _record_struct("struct dm_target_spec")
_expect("struct dm_target_spec", _fields,
        ("sector_start", "length", "status", "next", "target_type"))
_SPEC_UNPACK = _SPEC.unpack_from

# dev and next in one call: the name starts in the struct's tail padding.
_NL_HEAD, _fields = _record_struct("struct dm_name_list", tail=False)
_expect("struct dm_name_list", _fields, ("dev", "next"))
_NL_HEAD_UNPACK = _NL_HEAD.unpack_from
_VER_NEXT, _VER_NEXT_AT = _reader("struct dm_target_versions", "next")
_VER_VERSION, _VER_VERSION_AT = _reader("struct dm_target_versions", "version")
_DEPS_COUNT, _DEPS_COUNT_AT = _reader("struct dm_target_deps", "count")
# After each name-list entry's name, at the next 8-byte boundary: __u32
# event_nr, __u32 flags (a layout the header documents in a comment only).
_U32_PAIR = struct.Struct("=2I").unpack_from
_U64 = struct.Struct("=Q")
SPEC_SIZE: int = ffi.sizeof("struct dm_target_spec")
_NAME_LIST_NAME: int = lib.PYDM_OFFSETOF_NAME_LIST_NAME
_VERSIONS_NAME: int = lib.PYDM_OFFSETOF_VERSIONS_NAME
_DEPS_DEV: int = lib.PYDM_OFFSETOF_DEPS_DEV
_MSG_SECTOR, _fields = _record_struct("struct dm_target_msg")
_expect("struct dm_target_msg", _fields, ("sector",))
if _MSG_SECTOR.size != lib.PYDM_OFFSETOF_MSG_MESSAGE:  # pragma: no cover
    raise ImportError("struct dm_target_msg: the message does not follow the sector")


def align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class ListedDevice(NamedTuple):
    """One entry of DM_LIST_DEVICES."""

    name: str
    major: int
    minor: int
    # None when the kernel does not report it (event numbers: DM 4.37,
    # uuids: 4.45 and only when asked).  "" means the device has no uuid.
    event_nr: int | None
    uuid: str | None


class TargetVersion(NamedTuple):
    """A loaded target type and its version (DM_LIST_VERSIONS)."""

    name: str
    version: tuple[int, int, int]


def _cstr(data: bytes, offset: int) -> tuple[str, int]:
    """The NUL-terminated string at offset, and the offset just past its NUL."""
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "surrogateescape"), end + 1


def encode_cstring(text: bytes) -> bytes:
    """A NUL-terminated string padded to alignment (rename, geometry)."""
    raw = text + b"\0"
    return raw + b"\0" * (align(len(raw)) - len(raw))


def encode_targets(targets: Sequence[Target]) -> bytes:
    """The DM_TABLE_LOAD payload: spec, params NUL, padding; repeated."""
    out = bytearray()
    for target in targets:
        params = target.params.encode("utf-8") + b"\0"
        record_len = align(SPEC_SIZE + len(params))
        # In a request, next counts from this spec; status is output only.
        out += _SPEC.pack(target.start, target.length, 0, record_len, target.type.encode("utf-8"))
        out += params
        out += b"\0" * (record_len - SPEC_SIZE - len(params))
    return bytes(out)


def _specs(data: bytes, count: int, kind: type) -> list:
    """Decode `count` target specs from a DM_TABLE_STATUS/DEV_WAIT reply,
    each as a ``kind`` (Target or TargetStatus) built in place."""
    result = []
    offset = 0
    size = len(data)
    index, new = data.index, build
    for _ in range(count):
        if offset + SPEC_SIZE > size:
            raise ValueError(f"target spec at offset {offset} runs past the reply")
        start, length, _status, nxt, ttype = _SPEC_UNPACK(data, offset)
        text_at = offset + SPEC_SIZE
        result.append(new(kind, (
            start, length,
            ttype.partition(b"\0")[0].decode("utf-8", "surrogateescape"),
            data[text_at:index(b"\0", text_at)].decode("utf-8", "surrogateescape"))))
        offset = nxt  # from the data area in replies
    return result


def decode_table(data: bytes, count: int) -> list[Target]:
    return _specs(data, count, Target)


def decode_status(data: bytes, count: int) -> list[TargetStatus]:
    return _specs(data, count, TargetStatus)


def decode_name_list(data: bytes, has_event_nr: bool = True) -> list[ListedDevice]:
    """Decode a DM_LIST_DEVICES reply; ``dev == 0`` in the first record means none.

    The loop is written out (no helper calls per record): it runs once per
    device, thousands of times on a busy host.
    """
    devices: list[ListedDevice] = []
    if len(data) < _NAME_LIST_NAME:
        # No devices: the kernel writes dev=0 but counts no bytes for it.
        return devices
    append = devices.append
    index, size, mask, new = data.index, len(data), ~(ALIGN - 1), build
    offset = 0
    while True:
        dev, nxt = _NL_HEAD_UNPACK(data, offset)
        if not devices and dev == 0:
            return devices
        start = offset + _NAME_LIST_NAME
        end = index(b"\0", start)
        name = data[start:end].decode("utf-8", "surrogateescape")
        event_nr: int | None = None
        uuid: str | None = None
        if has_event_nr:
            tail = (end + ALIGN) & mask  # past the NUL, 8-aligned
            if tail + 8 <= size and (nxt == 0 or tail + 8 <= offset + nxt):
                event_nr, list_flags = _U32_PAIR(data, tail)
                if list_flags & NAME_LIST_HAS_UUID:
                    uuid_end = index(b"\0", tail + 8)
                    uuid = data[tail + 8:uuid_end].decode("utf-8", "surrogateescape")
                elif list_flags:  # DOESNT_HAVE_UUID: asked, and there is none
                    uuid = ""
        # glibc's major()/minor(), inline.
        append(new(ListedDevice, (name, ((dev >> 8) & 0xFFF) | ((dev >> 32) & 0xFFFFF000),
                                  (dev & 0xFF) | ((dev >> 12) & 0xFFFFFF00), event_nr, uuid)))
        if nxt == 0:
            return devices
        offset += nxt


def decode_versions(data: bytes) -> list[TargetVersion]:
    """Decode a DM_LIST_VERSIONS / DM_GET_TARGET_VERSION reply."""
    result = []
    offset = 0
    while offset + _VERSIONS_NAME <= len(data):
        name, _ = _cstr(data, offset + _VERSIONS_NAME)
        version = _VER_VERSION(data, offset + _VER_VERSION_AT)
        result.append(TargetVersion(name, (version[0], version[1], version[2])))
        nxt = _VER_NEXT(data, offset + _VER_NEXT_AT)[0]
        if nxt == 0:
            break
        offset += nxt
    return result


def decode_deps(data: bytes) -> list[tuple[int, int]]:
    """Decode a DM_TABLE_DEPS reply into (major, minor) pairs."""
    count = _DEPS_COUNT(data, _DEPS_COUNT_AT)[0]
    if _DEPS_DEV + 8 * count > len(data):
        raise IndexError(f"deps reply holds fewer than {count} devices")
    devs = (_U64.unpack_from(data, _DEPS_DEV + 8 * i)[0] for i in range(count))
    return [(os.major(dev), os.minor(dev)) for dev in devs]


def encode_message(sector: int, message: bytes) -> bytes:
    """The DM_TARGET_MSG payload."""
    return encode_cstring(_MSG_SECTOR.pack(sector) + message)


def encode_dev(major: int, minor: int) -> int:
    # The kernel's huge_encode_dev() agrees with glibc's makedev() layout.
    return os.makedev(major, minor)
