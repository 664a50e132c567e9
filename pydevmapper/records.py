# SPDX-License-Identifier: LGPL-2.1-or-later
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
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat

from pydevmapper._dm import ffi, lib
from pydevmapper._namedtuple import build
from pydevmapper.tables import Target, TargetStatus
from pydevmapper.types import ListedDevice, TargetVersion

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import TypeVar

    from pydevmapper._dm_cffi import CData, CField, CType

    Spec = TypeVar("Spec", Target, TargetStatus)
    T = TypeVar("T")

ALIGN = 8
_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def _reader(ctype: str, member: str) -> tuple[Callable[[bytes, int], tuple[int, ...]], int]:
    """An unpacker for one integer member (or integer array) of a record.

    Offset, width and signedness come from the compiled binding; decoding
    with struct at those offsets costs a fraction of a cffi cast per record,
    which matters when listing thousands of devices.
    """
    field = dict(ffi.typeof(ctype).fields)[member]
    return struct.Struct("=" + _int_format(*_element(field))).unpack_from, field.offset


def _element(field: CField) -> tuple[CType, int]:
    """A member's element type and count (1 unless it is an array)."""
    if field.type.kind == "array":
        length = field.type.length
        assert length is not None, "a struct member is a sized array"
        return field.type.item, length
    return field.type, 1


def _int_format(ftype: CType, count: int) -> str:
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
    fmt, at = "=", 0
    names: list[str] = []
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

_VER_NEXT, _VER_NEXT_AT = _reader("struct dm_target_versions", "next")
_VER_VERSION, _VER_VERSION_AT = _reader("struct dm_target_versions", "version")
_DEPS_COUNT, _DEPS_COUNT_AT = _reader("struct dm_target_deps", "count")
_U64 = struct.Struct("=Q")
SPEC_SIZE: int = ffi.sizeof("struct dm_target_spec")
# What pydm_name_list_columns found after a listed device's name.
_HAS_EVENT_NR: int = lib.PYDM_LISTED_EVENT_NR
_HAS_UUID: int = lib.PYDM_LISTED_UUID
# Its output arrays are filled before they are read: no need to zero them.
_raw_new = ffi.new_allocator(should_clear_after_alloc=False)
_unpack = ffi.unpack
_VERSIONS_NAME: int = lib.PYDM_OFFSETOF_VERSIONS_NAME
_DEPS_DEV: int = lib.PYDM_OFFSETOF_DEPS_DEV
_MSG_SECTOR, _fields = _record_struct("struct dm_target_msg")
_expect("struct dm_target_msg", _fields, ("sector",))
if _MSG_SECTOR.size != lib.PYDM_OFFSETOF_MSG_MESSAGE:  # pragma: no cover
    raise ImportError("struct dm_target_msg: the message does not follow the sector")


def align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def _cstr(data: bytes, offset: int) -> tuple[str, int]:
    """The NUL-terminated string at offset, and the offset just past its NUL."""
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "surrogateescape"), end + 1


def encode_cstring(text: bytes) -> bytes:
    """A NUL-terminated string padded to alignment (rename, geometry)."""
    raw = text + b"\0"
    return raw + b"\0" * (align(len(raw)) - len(raw))


def encode_targets(targets: Sequence[Target]) -> bytes:
    """The DM_TABLE_LOAD payload: spec, params NUL, padding; repeated.

    Each backslash is sent doubled, as libdevmapper sends it: the kernel
    reads a backslash as an escape when it splits the parameters
    (``dm_split_args``), so this is what makes a parameter reach the target
    as written, and a table read back load again unchanged.
    """
    out = bytearray()
    for target in targets:
        params = target.params.replace("\\", "\\\\").encode("utf-8") + b"\0"
        record_len = align(SPEC_SIZE + len(params))
        # In a request, next counts from this spec; status is output only.
        out += _SPEC.pack(target.start, target.length, 0, record_len, target.type.encode("utf-8"))
        out += params
        out += b"\0" * (record_len - SPEC_SIZE - len(params))
    return bytes(out)


def _specs(data: bytes, count: int, kind: type[Spec]) -> list[Spec]:
    """Decode `count` target specs from a DM_TABLE_STATUS/DEV_WAIT reply,
    each as a ``kind`` (Target or TargetStatus) built in place."""
    result: list[Spec] = []
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

    The binding's ``pydm_name_list_columns`` walks the records in C and
    hands back columns; the records are then built by C-level passes (a
    decode and split per text, one ``map``), with no bytecode run per
    device: listing thousands of devices is a common call, and a Python
    loop cost about 15 us a device under emulation.  ``has_event_nr``:
    the kernel may write event numbers and uuids (interface 4.37+).
    """
    size = len(data)
    # A record is at least 16 bytes (12 of header, a name, 8-aligned) but
    # the last, which may end at its name's NUL.
    capacity = size // 16 + 1
    majors = _raw_new("uint32_t[]", capacity)
    minors = _raw_new("uint32_t[]", capacity)
    event_nrs = _raw_new("uint32_t[]", capacity)
    present = _raw_new("uint8_t[]", capacity)
    names = _raw_new("char[]", size)
    uuids = _raw_new("char[]", size)
    totals = _raw_new("size_t[4]")
    count = lib.pydm_name_list_columns(data, size, has_event_nr, capacity, majors, minors,
                                       event_nrs, present, names, uuids, totals)
    if count <= 0:
        if count < 0:
            raise ValueError("DM_LIST_DEVICES reply: a record runs past the data")
        return []
    names_len, uuids_len, with_event_nr, with_uuid = totals
    return list(map(build, repeat(ListedDevice, count), zip(
        _texts(names, names_len), _unpack(majors, count), _unpack(minors, count),
        _optional(count, with_event_nr, present, _HAS_EVENT_NR, lambda: _unpack(event_nrs, count)),
        _optional(count, with_uuid, present, _HAS_UUID, lambda: _texts(uuids, uuids_len)))))


def _optional(count: int, having: int, present: CData, bit: int,
              values: Callable[[], Sequence[T]]) -> Iterable[T | None]:
    """An optional column: all there, all absent (an older kernel, or uuids
    not asked for), or, in a reply no kernel sends, a mix sorted out per
    device."""
    if having == count:
        return values()
    if having == 0:
        return repeat(None, count)
    return [v if p & bit else None for v, p in zip(values(), _unpack(present, count))]


def _texts(buffer: CData, length: int) -> list[str]:
    """NUL-terminated strings laid end to end, as a list of str."""
    # Without the last NUL, split gives exactly one entry per string.
    raw: bytes = _unpack(buffer, length - 1)  # a char array unpacks to bytes
    return raw.decode("utf-8", "surrogateescape").split("\0")


def decode_versions(data: bytes) -> list[TargetVersion]:
    """Decode a DM_LIST_VERSIONS / DM_GET_TARGET_VERSION reply."""
    result: list[TargetVersion] = []
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
