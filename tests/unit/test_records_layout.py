# SPDX-License-Identifier: LGPL-2.1-or-later
"""Record encoding and decoding against byte layouts built without the binding.

Every expected byte string here is packed with ``struct`` from the x86_64
layouts documented in <linux/dm-ioctl.h>, so a mistake in the compiled
binding or in pydevmapper.records cannot hide behind itself.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydevmapper import records
from pydevmapper._dm import HEADER_SIZE, ffi, lib
from pydevmapper.tables import Target, TargetStatus
from pydevmapper.types import ListedDevice, TargetVersion

# -- the independent layouts (little-endian x86_64, packed as the kernel lays them out)

# struct dm_ioctl: version[3], data_size, data_start, target_count, open_count,
# flags, event_nr, padding, dev, name[128], uuid[129], data[7]
DM_IOCTL = struct.Struct("<3I I I I i I I I Q 128s 129s 7s")
DM_IOCTL_SIZE = 312
# struct dm_target_spec: sector_start, length, status, next, target_type[16]
DM_TARGET_SPEC = struct.Struct("<Q Q i I 16s")
DM_TARGET_SPEC_SIZE = 40
# struct dm_name_list: dev, next, name[] at 12
NAME_LIST_HEAD = struct.Struct("<Q I")
NAME_LIST_NAME_OFFSET = 12
# struct dm_target_versions: next, version[3], name[] at 16
VERSIONS_HEAD = struct.Struct("<I 3I")
VERSIONS_NAME_OFFSET = 16
# struct dm_target_deps: count, padding, dev[] at 8
DEPS_HEAD = struct.Struct("<I I")
DEPS_DEV_OFFSET = 8
# struct dm_target_msg: sector, message[] at 8
MSG_HEAD = struct.Struct("<Q")
MSG_MESSAGE_OFFSET = 8


def pad8(raw: bytes) -> bytes:
    return raw + b"\0" * (-len(raw) % 8)


def huge_encode_dev(major: int, minor: int) -> int:
    """The kernel's encoding of a dev_t into the u64 fields (include/linux/kdev_t.h)."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def spec_record(start: int, length: int, ttype: str, params: str, next_: int,
                status: int = 0) -> bytes:
    """One spec, its NUL-terminated params and zero padding to 8 bytes."""
    head = DM_TARGET_SPEC.pack(start, length, status, next_, ttype.encode())
    return pad8(head + params.encode() + b"\0")


def status_reply(targets) -> bytes:
    """A DM_TABLE_STATUS data area: ``next`` counts from the data area's start."""
    out = b""
    for start, length, ttype, text in targets:
        record_len = len(pad8(b"\0" * DM_TARGET_SPEC_SIZE + text.encode() + b"\0"))
        out += spec_record(start, length, ttype, text, len(out) + record_len)
    return out


def name_list_reply(devices, *, with_tail: bool = True) -> bytes:
    """A DM_LIST_DEVICES data area as the kernel writes it.

    ``devices``: (name, major, minor, event_nr, uuid_flags, uuid) tuples;
    ``next`` counts from the start of each record, 0 in the last one.
    """
    records_out = []
    for name, major, minor, event_nr, uuid_flags, uuid in devices:
        body = name.encode("utf-8", "surrogateescape") + b"\0"
        rec = NAME_LIST_HEAD.pack(huge_encode_dev(major, minor), 0) + body
        if with_tail:
            rec = pad8(rec) + struct.pack("<II", event_nr, uuid_flags)
            if uuid_flags & 1:
                rec += uuid.encode("utf-8", "surrogateescape") + b"\0"
        records_out.append(pad8(rec))
    out = b""
    for i, rec in enumerate(records_out):
        nxt = len(rec) if i + 1 < len(records_out) else 0
        out += NAME_LIST_HEAD.pack(struct.unpack_from("<Q", rec)[0], nxt) + rec[12:]
    return out


def versions_reply(entries) -> bytes:
    out = []
    for name, version in entries:
        out.append(pad8(VERSIONS_HEAD.pack(0, *version) + name.encode() + b"\0"))
    data = b""
    for i, rec in enumerate(out):
        nxt = len(rec) if i + 1 < len(out) else 0
        data += struct.pack("<I", nxt) + rec[4:]
    return data


# -- the binding agrees with the documented layout --------------------------------


@pytest.mark.parametrize(
    "struct_name, size",
    [("struct dm_ioctl", DM_IOCTL_SIZE), ("struct dm_target_spec", DM_TARGET_SPEC_SIZE)],
)
def test_struct_sizes_match_header(struct_name, size):
    assert ffi.sizeof(struct_name) == size
    assert DM_IOCTL.size == DM_IOCTL_SIZE and DM_TARGET_SPEC.size == DM_TARGET_SPEC_SIZE


@pytest.mark.parametrize(
    "struct_name, field, offset",
    [
        ("struct dm_ioctl", "version", 0),
        ("struct dm_ioctl", "data_size", 12),
        ("struct dm_ioctl", "data_start", 16),
        ("struct dm_ioctl", "target_count", 20),
        ("struct dm_ioctl", "open_count", 24),
        ("struct dm_ioctl", "flags", 28),
        ("struct dm_ioctl", "event_nr", 32),
        ("struct dm_ioctl", "dev", 40),
        ("struct dm_ioctl", "name", 48),
        ("struct dm_ioctl", "uuid", 176),
        ("struct dm_target_spec", "sector_start", 0),
        ("struct dm_target_spec", "length", 8),
        ("struct dm_target_spec", "status", 16),
        ("struct dm_target_spec", "next", 20),
        ("struct dm_target_spec", "target_type", 24),
        ("struct dm_name_list", "dev", 0),
        ("struct dm_name_list", "next", 8),
        ("struct dm_target_versions", "next", 0),
        ("struct dm_target_versions", "version", 4),
        ("struct dm_target_deps", "count", 0),
        ("struct dm_target_msg", "sector", 0),
    ],
)
def test_field_offsets_match_header(struct_name, field, offset):
    assert ffi.offsetof(struct_name, field) == offset


def test_flexible_array_offsets_match_header():
    assert lib.PYDM_OFFSETOF_NAME_LIST_NAME == NAME_LIST_NAME_OFFSET
    assert lib.PYDM_OFFSETOF_VERSIONS_NAME == VERSIONS_NAME_OFFSET
    assert lib.PYDM_OFFSETOF_DEPS_DEV == DEPS_DEV_OFFSET
    assert lib.PYDM_OFFSETOF_MSG_MESSAGE == MSG_MESSAGE_OFFSET
    assert lib.PYDM_OFFSETOF_IOCTL_DATA == 305  # 312 minus data[7]


def test_array_lengths_match_header():
    hdr = ffi.new("struct dm_ioctl *")
    assert len(hdr.name) == 128 and lib.DM_NAME_LEN == 128
    assert len(hdr.uuid) == 129 and lib.DM_UUID_LEN == 129
    assert len(ffi.new("struct dm_target_spec *").target_type) == 16
    assert HEADER_SIZE == DM_IOCTL_SIZE


def test_header_written_through_binding_unpacks_with_struct():
    buf = ffi.new("char[]", DM_IOCTL_SIZE)
    hdr = ffi.cast("struct dm_ioctl *", buf)
    hdr.version = (4, 2, 1)
    hdr.data_size = 4096
    hdr.data_start = 312
    hdr.target_count = 3
    hdr.open_count = -1
    hdr.flags = 0x8001
    hdr.event_nr = 77
    hdr.dev = huge_encode_dev(253, 300)
    hdr.name = b"vol"
    hdr.uuid = b"LVM-x"
    fields = DM_IOCTL.unpack(ffi.buffer(buf, DM_IOCTL_SIZE)[:])
    assert fields[:3] == (4, 2, 1)
    assert fields[3:10] == (4096, 312, 3, -1, 0x8001, 77, 0)
    assert fields[10] == huge_encode_dev(253, 300)
    assert fields[11].rstrip(b"\0") == b"vol"
    assert fields[12].rstrip(b"\0") == b"LVM-x"


def test_header_struct_packs_the_independent_layout():
    # The one-call header codec that Channel.call uses, built from the
    # compiler's offsets, against the hand-written layout above.
    buf = bytearray(b"\xff" * DM_IOCTL_SIZE)  # pack must zero padding and data[7]
    records.HEADER.pack_into(buf, 0, 4, 2, 1, 4096, 312, 3, -1, 0x8001, 77,
                             huge_encode_dev(253, 300), b"vol", b"LVM-x")
    assert bytes(buf) == DM_IOCTL.pack(4, 2, 1, 4096, 312, 3, -1, 0x8001, 77, 0,
                                       huge_encode_dev(253, 300), b"vol", b"LVM-x", b"")
    assert records.HEADER.unpack_from(bytes(buf)) == (
        4, 2, 1, 4096, 312, 3, -1, 0x8001, 77, huge_encode_dev(253, 300),
        b"vol".ljust(128, b"\0"), b"LVM-x".ljust(129, b"\0"))


# -- DM_TABLE_LOAD input ----------------------------------------------------------


def test_encode_targets_single_target_exact_bytes():
    encoded = records.encode_targets([Target(0, 2048, "linear", "7:0 0")])
    # 40 + len("7:0 0\0") = 46 -> 48
    assert encoded == spec_record(0, 2048, "linear", "7:0 0", 48)
    assert len(encoded) == 48


def test_encode_targets_next_counts_from_this_spec():
    targets = [
        Target(0, 100, "linear", "7:0 0"),          # 40 + 6 -> 48
        Target(100, 50, "zero", ""),                # 40 + 1 -> 48
        Target(150, 8, "error", "x" * 23),          # 40 + 24 -> 64
        Target(158, 1, "striped", "y" * 24),        # 40 + 25 -> 72
    ]
    encoded = records.encode_targets(targets)
    expected = b"".join(
        spec_record(t.start, t.length, t.type, t.params, len(pad8(b"\0" * 40 + t.params.encode() + b"\0")))
        for t in targets
    )
    assert encoded == expected
    offset = 0
    nexts = []
    for _ in targets:
        start, length, status, nxt, ttype = DM_TARGET_SPEC.unpack_from(encoded, offset)
        assert status == 0
        assert nxt % 8 == 0
        nexts.append(nxt)
        offset += nxt  # relative to this spec, not to the data area
    assert nexts == [48, 48, 64, 72]
    assert offset == len(encoded)


def test_encode_targets_doubles_backslashes_as_libdevmapper_does():
    # The kernel unescapes them (dm_split_args): doubled, the target gets
    # the parameter as written; sent once, "a\\b" would reach it as "ab".
    encoded = records.encode_targets([Target(0, 1, "linear", "/tmp/a\\b 0")])
    assert encoded[40:52] == b"/tmp/a\\\\b 0\0"
    assert records.encode_targets([Target(0, 1, "linear", "/tmp/ab 0")])[40:50] == b"/tmp/ab 0\0"


def test_encode_targets_params_nul_terminated_and_zero_padded():
    encoded = records.encode_targets([Target(0, 1, "zero", "abc")])
    assert encoded[40:44] == b"abc\0"
    assert encoded[44:] == b"\0" * 4
    assert len(encoded) % 8 == 0


def test_encode_targets_params_fill_exact_alignment_gets_nul_and_full_pad():
    # 40 + 7 chars + NUL = 48: no padding needed, but the NUL must be there.
    encoded = records.encode_targets([Target(0, 1, "zero", "1234567")])
    assert len(encoded) == 48
    assert encoded[40:48] == b"1234567\0"
    # One more char spills into a new 8-byte block.
    encoded = records.encode_targets([Target(0, 1, "zero", "12345678")])
    assert len(encoded) == 56
    assert encoded[40:56] == b"12345678" + b"\0" * 8


def test_encode_targets_no_stale_bytes_in_target_type():
    encoded = records.encode_targets([
        Target(0, 1, "thin-pool-long1", "p"),  # 15 bytes: fills the field but its NUL
        Target(1, 1, "zero", ""),
    ])
    first_type = DM_TARGET_SPEC.unpack_from(encoded, 0)[4]
    assert first_type == b"thin-pool-long1\0"
    second = DM_TARGET_SPEC.unpack_from(encoded, 48)
    assert second[4] == b"zero" + b"\0" * 12


def test_encode_targets_utf8_params_counted_in_bytes():
    encoded = records.encode_targets([Target(0, 1, "zero", "é" * 4)])  # 8 bytes
    assert encoded[40:49] == "é".encode() * 4 + b"\0"
    assert len(encoded) == 56


def test_encode_targets_large_sectors():
    big = (1 << 64) - 2
    encoded = records.encode_targets([Target(0, big, "zero", "")])
    assert DM_TARGET_SPEC.unpack_from(encoded, 0)[:2] == (0, big)


def test_encode_targets_empty_is_empty():
    assert records.encode_targets([]) == b""


# -- DM_TABLE_STATUS output -------------------------------------------------------


def test_decode_table_single_target():
    data = status_reply([(0, 2048, "linear", "7:0 0")])
    assert records.decode_table(data, 1) == [Target(0, 2048, "linear", "7:0 0")]


def test_decode_table_next_counts_from_data_area_start():
    rows = [
        (0, 100, "linear", "7:0 0"),
        (100, 50, "zero", ""),
        (150, 8, "error", "x" * 23),
        (158, 1, "striped", "2 8 7:0 0 7:1 0"),
    ]
    data = status_reply(rows)
    # Sanity: absolute offsets, so the third spec's next is the sum of lengths so far.
    nexts = []
    offset = 0
    for _ in rows:
        nxt = DM_TARGET_SPEC.unpack_from(data, offset)[3]
        nexts.append(nxt)
        offset = nxt
    assert nexts == [48, 96, 160, 216]
    assert records.decode_table(data, len(rows)) == [Target(*r) for r in rows]


def test_decode_status_multiple_targets_and_empty_status():
    rows = [(0, 8, "zero", ""), (8, 8, "thin-pool", "1 2/3 4/5 - rw"), (16, 8, "error", "")]
    data = status_reply(rows)
    assert records.decode_status(data, 3) == [TargetStatus(*r) for r in rows]


def test_decode_status_reads_only_count_targets():
    data = status_reply([(0, 8, "zero", ""), (8, 8, "error", "")])
    assert records.decode_status(data, 1) == [TargetStatus(0, 8, "zero", "")]
    assert records.decode_status(data, 0) == []


def test_decode_table_ignores_status_field_and_full_type_name():
    head = DM_TARGET_SPEC.pack(0, 16, -5, 48, b"abcdefghijklmnop")  # 16 bytes, no NUL
    data = pad8(head + b"args\0")
    [target] = records.decode_table(data, 1)
    assert target == Target(0, 16, "abcdefghijklmnop", "args")


def test_decode_table_truncated_reply_raises():
    data = status_reply([(0, 8, "zero", "")])
    with pytest.raises(ValueError, match="past"):
        records.decode_table(data[:30], 1)


# -- DM_LIST_DEVICES output -------------------------------------------------------


def test_decode_name_list_empty():
    data = NAME_LIST_HEAD.pack(0, 0) + b"\0" * 4
    assert records.decode_name_list(data) == []
    assert records.decode_name_list(data, has_event_nr=False) == []


def test_decode_name_list_one_device_with_uuid():
    data = name_list_reply([("vol", 253, 0, 5, 1, "LVM-abc")])
    assert records.decode_name_list(data) == [ListedDevice("vol", 253, 0, 5, "LVM-abc")]
    assert records.decode_name_list(data)[0].devno == (253, 0)


def test_decode_name_list_doesnt_have_uuid_gives_empty_string():
    data = name_list_reply([("vol", 253, 1, 0, 2, "")])
    assert records.decode_name_list(data) == [ListedDevice("vol", 253, 1, 0, "")]


def test_decode_name_list_uuid_not_asked_gives_none():
    data = name_list_reply([("vol", 253, 1, 9, 0, "")])
    assert records.decode_name_list(data) == [ListedDevice("vol", 253, 1, 9, None)]


def test_decode_name_list_many_devices_mixed_uuid_flags():
    devices = [
        ("a", 253, 0, 1, 1, "uuid-a"),
        ("exactly7", 253, 1, 2, 2, ""),       # name + NUL ends on an 8-byte boundary
        ("a-much-longer-device-name", 253, 300, 3, 1, "CRYPT-LUKS2-" + "f" * 40),
        ("n", 254, 2, 4, 0, ""),
    ]
    data = name_list_reply(devices)
    assert records.decode_name_list(data) == [
        ListedDevice("a", 253, 0, 1, "uuid-a"),
        ListedDevice("exactly7", 253, 1, 2, ""),
        ListedDevice("a-much-longer-device-name", 253, 300, 3, "CRYPT-LUKS2-" + "f" * 40),
        ListedDevice("n", 254, 2, 4, None),
    ]


def test_decode_name_list_tail_at_next_8_aligned_offset():
    # name "abc": 12 + 4 = 16 -> tail at 16; name "abcd": 12 + 5 = 17 -> tail at 24.
    for name, tail in (("abc", 16), ("abcd", 24)):
        data = name_list_reply([(name, 7, 7, 42, 1, "u")])
        assert struct.unpack_from("<II", data, tail) == (42, 1)
        assert records.decode_name_list(data)[0].event_nr == 42


def test_decode_name_list_without_event_nr():
    devices = [("a", 253, 0, 0, 0, ""), ("bb", 253, 1, 0, 0, "")]
    data = name_list_reply(devices, with_tail=False)
    assert records.decode_name_list(data, has_event_nr=False) == [
        ListedDevice("a", 253, 0, None, None),
        ListedDevice("bb", 253, 1, None, None),
    ]


def test_decode_name_list_has_event_nr_false_ignores_present_tail():
    data = name_list_reply([("vol", 253, 0, 5, 1, "u")])
    assert records.decode_name_list(data, has_event_nr=False) == [
        ListedDevice("vol", 253, 0, None, None)
    ]


def test_decode_name_list_big_minor():
    data = name_list_reply([("vol", 253, 0xABCDE, 1, 0, "")])
    assert records.decode_name_list(data)[0][1:3] == (253, 0xABCDE)


def _text_of(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


NAME_BYTES = st.binary(min_size=1, max_size=127).filter(lambda b: b"\0" not in b)
UUID_BYTES = st.binary(max_size=128).filter(lambda b: b"\0" not in b)
LISTED = st.tuples(NAME_BYTES, st.integers(0, 0xFFF), st.integers(0, 0xFFFFF),
                   st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2]), UUID_BYTES)


@settings(max_examples=300, deadline=None)
@given(st.lists(LISTED, max_size=40), st.booleans())
def test_decode_name_list_any_names_uuids_and_tails(devices, with_tail):
    # Any bytes but NUL, valid UTF-8 or not; every mix of uuid flags; the
    # 4.37+ tail written or not.  The kernel's dev=0 "no devices" marker
    # only counts in the first record, so no device 0:0 may come first
    # (dropping one can bring another to the front).
    while devices and devices[0][1:3] == (0, 0):
        devices = devices[1:]
    rows = [(_text_of(n), major, minor, ev, fl, _text_of(u)) for n, major, minor, ev, fl, u in devices]
    data = name_list_reply(rows, with_tail=with_tail) if rows else NAME_LIST_HEAD.pack(0, 0)
    expected = []
    for name, major, minor, ev, fl, uuid in rows:
        if not with_tail:
            expected.append(ListedDevice(name, major, minor, None, None))
        else:
            expected.append(ListedDevice(name, major, minor, ev,
                                         uuid if fl == 1 else "" if fl == 2 else None))
    assert records.decode_name_list(data, has_event_nr=True) == expected
    assert records.decode_name_list(data, has_event_nr=False) == [
        ListedDevice(d.name, d.major, d.minor, None, None) for d in expected]


def test_decode_name_list_tail_on_some_records_only():
    # No kernel mixes them, but the decoder must not shift columns if one did.
    first = name_list_reply([("a", 253, 0, 7, 1, "uuid-a")])
    second = name_list_reply([("b", 253, 1, 0, 0, "")], with_tail=False)
    data = NAME_LIST_HEAD.pack(huge_encode_dev(253, 0), len(first)) + first[12:] + second
    assert records.decode_name_list(data) == [
        ListedDevice("a", 253, 0, 7, "uuid-a"), ListedDevice("b", 253, 1, None, None)]


def test_decode_name_list_thousands_of_devices():
    rows = [(f"dev-{i}", 253, i, i * 3, 1 + i % 2, f"U-{i}" if i % 2 == 0 else "")
            for i in range(5000)]
    decoded = records.decode_name_list(name_list_reply(rows))
    assert decoded == [ListedDevice(n, ma, mi, ev, u) for n, ma, mi, ev, _, u in rows]


@pytest.mark.parametrize("damage", ["name without NUL", "next past the end",
                                    "uuid without NUL", "records overlapping"])
def test_decode_name_list_malformed_reply_raises(damage):
    data = bytearray(name_list_reply([("aaaa", 253, 0, 1, 1, "uuid-a"), ("b", 253, 1, 2, 0, "")]))
    first_next = struct.unpack_from("<I", data, 8)[0]
    if damage == "name without NUL":
        data = data[:12] + b"x" * 4
    elif damage == "next past the end":
        struct.pack_into("<I", data, 8, len(data) + 8)
    elif damage == "uuid without NUL":
        # "aaaa\0" ends at 17, so event_nr and flags sit at 24 and the uuid
        # at 32: keep only the first record, cut after "uui".
        assert first_next == 40
        struct.pack_into("<I", data, 8, 0)
        data = data[:35]
    else:  # every record's next is 1: each starts inside the one before
        data = bytearray(NAME_LIST_HEAD.pack(huge_encode_dev(253, 0), 1) + b"\x01" * 200 + b"\0")
    with pytest.raises(ValueError, match="DM_LIST_DEVICES"):
        records.decode_name_list(bytes(data))


# -- DM_LIST_VERSIONS output ------------------------------------------------------


def test_decode_versions_several():
    entries = [("linear", (1, 4, 0)), ("striped", (1, 7, 0)), ("thin-pool", (1, 23, 0)),
               ("zero", (1, 2, 0))]
    assert records.decode_versions(versions_reply(entries)) == [
        TargetVersion(n, v) for n, v in entries
    ]


def test_decode_versions_layout_name_at_16():
    data = versions_reply([("error", (1, 6, 0))])
    assert data[16:22] == b"error\0"
    assert records.decode_versions(data) == [TargetVersion("error", (1, 6, 0))]


def test_decode_versions_empty_data():
    assert records.decode_versions(b"") == []


# -- DM_TABLE_DEPS output ---------------------------------------------------------


def deps_reply(devs) -> bytes:
    return DEPS_HEAD.pack(len(devs), 0) + b"".join(
        struct.pack("<Q", huge_encode_dev(ma, mi)) for ma, mi in devs
    )


def test_decode_deps_none():
    assert records.decode_deps(deps_reply([])) == []


def test_decode_deps_several_including_big_minor():
    devs = [(7, 0), (8, 16), (253, 255), (253, 256), (253, 300), (259, 0xFFFFF), (4095, 1)]
    assert records.decode_deps(deps_reply(devs)) == devs


def test_huge_encode_dev_matches_encode_dev():
    for major, minor in [(0, 0), (7, 0), (253, 300), (259, 0xFFFFF), (4095, 0xFFFFF)]:
        assert records.encode_dev(major, minor) == huge_encode_dev(major, minor)


# -- DM_TARGET_MSG input ----------------------------------------------------------


def test_encode_message_layout():
    encoded = records.encode_message(4096, b"create_thin 0")
    assert MSG_HEAD.unpack_from(encoded, 0) == (4096,)
    assert encoded[MSG_MESSAGE_OFFSET:MSG_MESSAGE_OFFSET + 14] == b"create_thin 0\0"
    assert encoded == pad8(struct.pack("<Q", 4096) + b"create_thin 0\0")
    assert len(encoded) % 8 == 0


def test_encode_message_big_sector():
    encoded = records.encode_message((1 << 64) - 1, b"x")
    assert encoded == struct.pack("<Q", (1 << 64) - 1) + b"x\0" + b"\0" * 6


# -- plain strings (rename, geometry) ---------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (b"", b"\0" * 8),
        (b"a", b"a" + b"\0" * 7),
        (b"1234567", b"1234567\0"),
        (b"12345678", b"12345678" + b"\0" * 8),
        (b"new-name-9", b"new-name-9" + b"\0" * 6),
    ],
)
def test_encode_cstring_nul_and_alignment(text, expected):
    assert records.encode_cstring(text) == expected


@pytest.mark.parametrize("n, aligned", [(0, 0), (1, 8), (7, 8), (8, 8), (9, 16), (312, 312)])
def test_align(n, aligned):
    assert records.align(n) == aligned


# -- regressions ------------------------------------------------------------------


def test_decoders_do_not_read_freed_slices():
    # The decoders once cast a temporary ffi.from_buffer() of a slice: the
    # slice was freed at once and the next same-sized allocation overwrote
    # what they read.  Allocate in between, many times, to catch that.
    versions = versions_reply([("linear", (1, 4, 0)), ("zero", (1, 2, 0))])
    table = status_reply([(0, 8, "zero", ""), (8, 8, "error", "")])
    deps = deps_reply([(253, 300), (7, 0)])
    names = name_list_reply([("a", 253, 0, 1, 1, "u"), ("b", 253, 1, 2, 2, "")])
    for _ in range(200):
        assert records.decode_versions(versions)[0].version == (1, 4, 0)
        assert records.decode_table(table, 2)[1] == Target(8, 8, "error", "")
        assert records.decode_deps(deps) == [(253, 300), (7, 0)]
        assert records.decode_name_list(names)[1] == ListedDevice("b", 253, 1, 2, "")


def test_decode_deps_count_beyond_reply_does_not_read_past_it():
    data = DEPS_HEAD.pack(3, 0) + struct.pack("<Q", huge_encode_dev(7, 0))
    with pytest.raises(IndexError):
        records.decode_deps(data)


def test_name_list_with_no_data_at_all_is_empty():
    # With no devices the kernel sets data_size to data_start: zero bytes.
    assert records.decode_name_list(b"") == []
