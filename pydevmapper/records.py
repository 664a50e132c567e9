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
from typing import List, NamedTuple, Optional, Sequence, Tuple

from pydevmapper._dm import ffi, lib
from pydevmapper.flags import NAME_LIST_HAS_UUID
from pydevmapper.table import Target, TargetStatus

ALIGN = 8
# Records are read with ffi.from_buffer("T *", slice): that pointer keeps its
# slice alive, where ffi.cast() of a temporary from_buffer() would dangle.
SPEC_SIZE: int = ffi.sizeof("struct dm_target_spec")
_SPEC_TYPE_LEN: int = lib.DM_MAX_TYPE_NAME
_NAME_LIST_NAME: int = lib.PYDM_OFFSETOF_NAME_LIST_NAME
_VERSIONS_NAME: int = lib.PYDM_OFFSETOF_VERSIONS_NAME
_DEPS_DEV: int = lib.PYDM_OFFSETOF_DEPS_DEV
_MSG_MESSAGE: int = lib.PYDM_OFFSETOF_MSG_MESSAGE


def align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class ListedDevice(NamedTuple):
    """One entry of DM_LIST_DEVICES."""

    name: str
    major: int
    minor: int
    # None when the kernel does not report it (event numbers: DM 4.37,
    # uuids: 4.45 and only when asked).  "" means the device has no uuid.
    event_nr: Optional[int]
    uuid: Optional[str]


class TargetVersion(NamedTuple):
    """A loaded target type and its version (DM_LIST_VERSIONS)."""

    name: str
    version: Tuple[int, int, int]


def _cstr(data: bytes, offset: int) -> Tuple[str, int]:
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
        spec = ffi.new("struct dm_target_spec *")  # zeroed: no stale type bytes
        params = target.params.encode("utf-8") + b"\0"
        record_len = align(SPEC_SIZE + len(params))
        spec.sector_start = target.start
        spec.length = target.length
        spec.status = 0
        spec.next = record_len
        spec.target_type = target.type.encode("utf-8")
        out += ffi.buffer(spec)[:]
        out += params
        out += b"\0" * (record_len - SPEC_SIZE - len(params))
    return bytes(out)


def _specs(data: bytes, count: int) -> List[Tuple[int, int, str, str]]:
    """Decode `count` target specs from a DM_TABLE_STATUS/DEV_WAIT reply."""
    result = []
    offset = 0
    for _ in range(count):
        if offset + SPEC_SIZE > len(data):
            raise ValueError(f"target spec at offset {offset} runs past the reply")
        spec = ffi.from_buffer("struct dm_target_spec *", data[offset:offset + SPEC_SIZE])
        ttype = ffi.string(spec.target_type, _SPEC_TYPE_LEN).decode("utf-8", "surrogateescape")
        text, _ = _cstr(data, offset + SPEC_SIZE)
        result.append((int(spec.sector_start), int(spec.length), ttype, text))
        offset = spec.next  # relative to the data area in replies
    return result


def decode_table(data: bytes, count: int) -> List[Target]:
    return [Target(*fields) for fields in _specs(data, count)]


def decode_status(data: bytes, count: int) -> List[TargetStatus]:
    return [TargetStatus(*fields) for fields in _specs(data, count)]


def decode_name_list(data: bytes, has_event_nr: bool = True) -> List[ListedDevice]:
    """Decode a DM_LIST_DEVICES reply; ``dev == 0`` in the first record means none."""
    devices: List[ListedDevice] = []
    offset = 0
    while True:
        rec = ffi.from_buffer("struct dm_name_list *", data[offset:offset + _NAME_LIST_NAME])
        dev, nxt = int(rec.dev), int(rec.next)
        if not devices and dev == 0:
            return devices
        name, after = _cstr(data, offset + _NAME_LIST_NAME)
        event_nr: Optional[int] = None
        uuid: Optional[str] = None
        if has_event_nr:
            tail = align(after)
            if tail + 8 <= len(data) and (nxt == 0 or tail + 8 <= offset + nxt):
                pair = ffi.from_buffer("uint32_t[]", data[tail:tail + 8])
                event_nr, list_flags = int(pair[0]), int(pair[1])
                if list_flags & NAME_LIST_HAS_UUID:
                    uuid, _ = _cstr(data, tail + 8)
                elif list_flags:  # DOESNT_HAVE_UUID: asked, and there is none
                    uuid = ""
        devices.append(ListedDevice(name, _major(dev), _minor(dev), event_nr, uuid))
        if nxt == 0:
            return devices
        offset += nxt


def decode_versions(data: bytes) -> List[TargetVersion]:
    """Decode a DM_LIST_VERSIONS / DM_GET_TARGET_VERSION reply."""
    result = []
    offset = 0
    while offset + _VERSIONS_NAME <= len(data):
        rec = ffi.from_buffer("struct dm_target_versions *", data[offset:offset + _VERSIONS_NAME])
        name, _ = _cstr(data, offset + _VERSIONS_NAME)
        result.append(TargetVersion(name, (int(rec.version[0]), int(rec.version[1]), int(rec.version[2]))))
        if rec.next == 0:
            break
        offset += int(rec.next)
    return result


def decode_deps(data: bytes) -> List[Tuple[int, int]]:
    """Decode a DM_TABLE_DEPS reply into (major, minor) pairs."""
    head = ffi.from_buffer("struct dm_target_deps *", data[:_DEPS_DEV])
    count = int(head.count)
    devs = ffi.from_buffer("uint64_t[]", data[_DEPS_DEV:_DEPS_DEV + 8 * count])
    return [(_major(int(devs[i])), _minor(int(devs[i]))) for i in range(count)]


def encode_message(sector: int, message: bytes) -> bytes:
    """The DM_TARGET_MSG payload."""
    msg = ffi.new("struct dm_target_msg *")
    msg.sector = sector
    head = ffi.buffer(msg)[:_MSG_MESSAGE]
    return encode_cstring(head + message)


def _major(dev: int) -> int:
    # The kernel encodes with huge_encode_dev(), which agrees with glibc's
    # makedev() layout, so the C library decodes it.
    return os.major(dev)


def _minor(dev: int) -> int:
    return os.minor(dev)


def encode_dev(major: int, minor: int) -> int:
    return os.makedev(major, minor)
