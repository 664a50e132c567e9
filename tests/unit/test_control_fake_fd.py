# SPDX-License-Identifier: LGPL-2.1-or-later
"""Control's ioctl path against the fake kernel (fake_kernel.py).

It checks what ``Control`` writes into the request buffer and how it reads
replies, buffer growth and failures.
"""

from __future__ import annotations

import errno
import os
import struct

import pytest
from fake_kernel import FULL, FakeCursor, device_reply, fail, huge_encode_dev, pad8, put_data

from pydevmapper import channel, records
from pydevmapper._dm import HEADER_SIZE, ffi, lib
from pydevmapper.control import Control
from pydevmapper.errors import (
    DeviceBusyError,
    DeviceExistsError,
    DeviceNotFoundError,
    DMError,
    DMPermissionError,
    InvalidTableError,
    UnsupportedError,
    ValidationError,
)
from pydevmapper.flags import DMFlag
from pydevmapper.tables import Table, Target, TargetStatus
from pydevmapper.types import DevNo, ListedDevice, TargetVersion, Uuid

# -- the fake itself --------------------------------------------------------------


def test_fake_errno_reaches_control(kernel, ctl):
    kernel.handlers["DM_DEV_STATUS"] = fail(errno.ENXIO)
    with pytest.raises(DeviceNotFoundError) as info:
        ctl.info("vol")
    assert info.value.errno == errno.ENXIO


def test_control_opens_the_given_path(tmp_path):
    path = tmp_path / "control"
    path.write_bytes(b"")
    with Control(path=str(path)) as c:
        assert c.path == str(path)
        assert c.fileno() >= 0
    assert c.fileno() == -1


def test_missing_control_node_is_unavailable_error(tmp_path):
    from pydevmapper.errors import DeviceMapperUnavailableError

    with pytest.raises(DeviceMapperUnavailableError, match="modprobe"):
        Control(path=str(tmp_path / "nope"))


# -- version stamping and header fields ---------------------------------------------


@pytest.mark.parametrize(
    "command, call, stamped",
    [
        ("DM_VERSION", lambda c: c.version(), (4, 0, 0)),
        ("DM_DEV_STATUS", lambda c: c.info("vol"), (4, 0, 0)),
        ("DM_LIST_DEVICES", lambda c: c.list_devices(), (4, 0, 0)),
        ("DM_REMOVE_ALL", lambda c: c.remove_all(), (4, 0, 0)),
        ("DM_TABLE_LOAD", lambda c: c.load("vol", "0 8 zero"), (4, 0, 0)),
        ("DM_LIST_VERSIONS", lambda c: c.targets(), (4, 1, 0)),
        ("DM_TARGET_MSG", lambda c: c.message("vol", 0, "hello"), (4, 2, 0)),
        ("DM_DEV_SET_GEOMETRY", lambda c: c.set_geometry("vol", 1, 2, 3, 0), (4, 6, 0)),
        ("DM_DEV_ARM_POLL", lambda c: c.arm_poll(), (4, 37, 0)),
        ("DM_GET_TARGET_VERSION", lambda c: c.target_version("linear"), (4, 41, 0)),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_version_stamped_per_command(kernel, ctl, command, call, stamped):
    kernel.handlers["DM_LIST_VERSIONS"] = kernel.handlers["DM_GET_TARGET_VERSION"] = (
        lambda c, hdr, buf: put_data(hdr, buf, pad8(struct.pack("<I3I", 0, 1, 4, 0) + b"linear\0"))
    )
    kernel.handlers["DM_LIST_DEVICES"] = lambda c, hdr, buf: put_data(hdr, buf, b"\0" * 16)
    call(ctl)
    [sent] = kernel.of(command)
    assert sent.version == stamped
    assert sent.data_start == HEADER_SIZE == 312


def test_every_request_has_data_start_312_and_sane_size(kernel, ctl):
    ctl.info("vol")
    ctl.rename("vol", "new")
    ctl.load("vol", "0 8 zero")
    ctl.status("vol")
    for call in kernel.calls:
        assert call.data_start == 312
        assert call.data_size >= 312


def test_header_only_commands_send_just_the_header(kernel, ctl):
    ctl.info("vol")
    ctl.suspend("vol")
    ctl.remove("vol")
    assert [c.data_size for c in kernel.calls] == [312, 312, 312]


def test_version_is_asked_once(kernel, ctl):
    assert ctl.version() == (4, 47, 0)
    ctl.targets()
    ctl.arm_poll()
    assert ctl.supports((4, 45, 0))
    assert kernel.commands().count("DM_VERSION") == 1


# -- addressing ---------------------------------------------------------------------


def test_address_by_name_fills_name_field(kernel, ctl):
    ctl.info("my-vol")
    [call] = kernel.calls
    assert (call.name, call.uuid, call.dev) == (b"my-vol", b"", 0)


def test_address_by_uuid_fills_uuid_field(kernel, ctl):
    ctl.info(Uuid("LVM-abc"))
    [call] = kernel.calls
    assert (call.name, call.uuid, call.dev) == (b"", b"LVM-abc", 0)


def test_address_by_devno_fills_dev_field(kernel, ctl):
    ctl.info(DevNo(253, 300))
    [call] = kernel.calls
    assert (call.name, call.uuid) == (b"", b"")
    assert call.dev == huge_encode_dev(253, 300) == os.makedev(253, 300)


def test_address_by_plain_tuple_fills_dev_field(kernel, ctl):
    # check_id() accepts a plain (major, minor); the ioctl path must too.
    ctl.info((253, 300))
    [call] = kernel.calls
    assert (call.name, call.uuid, call.dev) == (b"", b"", huge_encode_dev(253, 300))


def test_plain_tuple_failure_is_labelled_like_devno(kernel, ctl):
    kernel.handlers["DM_DEV_STATUS"] = fail(errno.ENXIO)
    with pytest.raises(DeviceNotFoundError) as info:
        ctl.info((253, 300))
    assert info.value.device == "253:300"


def test_bad_address_raises_before_any_ioctl(kernel, ctl):
    for bad in ("a/b", "", "control", Uuid("u" * 129), DevNo(-1, 0), 42):
        with pytest.raises(ValidationError):
            ctl.info(bad)
    assert kernel.calls == []


def test_reply_decoded_into_device_info(kernel, ctl):
    kernel.handlers["DM_DEV_STATUS"] = device_reply(
        "vol", 253, 300, DMFlag.ACTIVE_PRESENT | DMFlag.READONLY | DMFlag.UEVENT_GENERATED, "u-1")
    info = ctl.info("vol")
    assert info.devno == DevNo(253, 300)
    assert (info.name, info.uuid, info.event_nr) == ("vol", "u-1", 3)
    assert info.live_table and info.read_only and not info.suspended
    assert not info.flags & DMFlag.UEVENT_GENERATED  # only state flags are kept


def test_create_sends_name_uuid_and_persistent_dev(kernel, ctl):
    kernel.handlers["DM_DEV_CREATE"] = device_reply("vol", 253, 9)
    info = ctl.create("vol", uuid="LVM-x", devno=DevNo(253, 9))
    [call] = kernel.calls
    assert (call.name, call.uuid, call.dev) == (b"vol", b"LVM-x", huge_encode_dev(253, 9))
    assert call.flags & DMFlag.PERSISTENT_DEV
    assert info.devno == DevNo(253, 9)


# -- payloads -----------------------------------------------------------------------


def test_table_load_payload_and_flags(kernel, ctl):
    table = Table([Target(0, 8, "zero"), Target(8, 8, "linear", "7:0 0")])
    ctl.load("vol", table, readonly=True)
    [call] = kernel.calls
    assert call.target_count == 2
    assert call.payload == records.encode_targets(table)
    assert call.data_size == 312 + len(call.payload)
    assert call.flags & DMFlag.SECURE_DATA and call.flags & DMFlag.READONLY


def test_rename_payload_is_new_name(kernel, ctl):
    ctl.rename("old", "new-name")
    [call] = kernel.calls
    assert call.name == b"old"
    assert call.payload == b"new-name\0" + b"\0" * 7


def test_set_uuid_sends_uuid_flag_and_payload(kernel, ctl):
    ctl.set_uuid("vol", "LVM-1")
    call = kernel.of("DM_DEV_RENAME")[0]
    assert call.flags & DMFlag.UUID
    assert call.payload == b"LVM-1\0\0\0"


def test_geometry_payload(kernel, ctl):
    ctl.set_geometry("vol", 1024, 255, 63, 0)
    call = kernel.of("DM_DEV_SET_GEOMETRY")[0]
    assert call.payload.rstrip(b"\0") == b"1024 255 63 0"
    with pytest.raises(ValidationError, match="heads"):
        ctl.set_geometry("vol", 1, 256, 1, 0)


def test_suspend_and_resume_flags(kernel, ctl):
    ctl.suspend("vol", noflush=True, nolockfs=True)
    ctl.resume("vol")
    suspend, resume = kernel.calls
    assert suspend.flags & DMFlag.SUSPEND
    assert suspend.flags & DMFlag.NOFLUSH and suspend.flags & DMFlag.SKIP_LOCKFS
    assert not resume.flags & DMFlag.SUSPEND


def test_wait_sends_event_nr_and_never_repeats(kernel, ctl):
    def full(call, hdr, buf):
        hdr.flags |= FULL
    kernel.handlers["DM_DEV_WAIT"] = full
    ctl.wait("vol", 7)
    [call] = kernel.of("DM_DEV_WAIT")
    assert call.event_nr == 7


# -- replies ------------------------------------------------------------------------


def status_data(rows) -> bytes:
    out = b""
    for start, length, ttype, text in rows:
        rec_len = len(pad8(b"\0" * 40 + text.encode() + b"\0"))
        out += pad8(struct.pack("<QQiI16s", start, length, 0, len(out) + rec_len, ttype.encode())
                    + text.encode() + b"\0")
    return out


def test_table_and_status_decoding(kernel, ctl):
    rows = [(0, 8, "zero", ""), (8, 8, "linear", "7:0 0")]

    def handler(call, hdr, buf):
        hdr.flags = DMFlag.ACTIVE_PRESENT
        hdr.target_count = 2
        put_data(hdr, buf, status_data(rows))
    kernel.handlers["DM_TABLE_STATUS"] = handler
    assert ctl.table("vol") == Table([Target(*r) for r in rows])
    assert ctl.status("vol") == [TargetStatus(*r) for r in rows]
    assert kernel.calls[0].flags & DMFlag.STATUS_TABLE
    assert not kernel.calls[1].flags & DMFlag.STATUS_TABLE
    assert ctl.table("vol", inactive=True) is None  # no INACTIVE_PRESENT in the reply
    assert kernel.calls[2].flags & DMFlag.QUERY_INACTIVE_TABLE


def table_handler(rows):
    def handler(call, hdr, buf):
        hdr.flags = DMFlag.ACTIVE_PRESENT
        hdr.target_count = len(rows)
        put_data(hdr, buf, status_data(rows))
    return handler


def test_reply_buffer_shrinks_to_what_replies_use(kernel, ctl):
    # The kernel copies in the whole buffer: small replies need not pay
    # for 8 KiB each time.  Every call still gets its whole table.
    rows = [(0, 8, "linear", "7:0 0")]
    kernel.handlers["DM_TABLE_STATUS"] = table_handler(rows)
    for _ in range(60):
        assert ctl.table("vol") == Table([Target(*rows[0])])
    sizes = [c.data_size for c in kernel.of("DM_TABLE_STATUS")]
    assert sizes[0] == 8192
    assert all(a >= b for a, b in zip(sizes, sizes[1:]))  # never grows back unasked
    assert sizes[-1] == channel.MIN_REPLY_SIZE  # and no lower
    assert ctl.channel.buffer_retries == 0


def test_reply_buffer_keeps_a_quarter_over_the_reply(kernel, ctl):
    rows = [(i * 8, 8, "linear", f"7:0 {i * 8} " + "p" * 60) for i in range(100)]
    used = 312 + len(status_data(rows))
    assert used > 8192  # one retry for the first call
    kernel.handlers["DM_TABLE_STATUS"] = table_handler(rows)
    for _ in range(60):
        assert len(ctl.status("vol")) == 100
    sizes = [c.data_size for c in kernel.of("DM_TABLE_STATUS")]
    assert sizes[:2] == [8192, 16384]
    assert ctl.channel.buffer_retries == 1
    assert used + used // 4 - 8 <= sizes[-1] < used + used // 4 + 8


def test_a_larger_reply_after_small_ones_is_asked_for_again(kernel, ctl):
    small = [(0, 8, "zero", "")]
    big = [(i * 8, 8, "linear", f"7:0 {i * 8} " + "p" * 100) for i in range(40)]
    kernel.handlers["DM_TABLE_STATUS"] = table_handler(small)
    for _ in range(60):
        ctl.table("small")
    kernel.handlers["DM_TABLE_STATUS"] = table_handler(big)
    kernel.calls.clear()
    assert list(ctl.table("big")) == [Target(*row) for row in big]
    sizes = [c.data_size for c in kernel.of("DM_TABLE_STATUS")]
    assert sizes == [1024, 2048, 4096, 8192]
    assert ctl.channel.buffer_retries == 3
    # A few small tables in between cost the large one no retry.
    kernel.calls.clear()
    for _ in range(3):
        kernel.handlers["DM_TABLE_STATUS"] = table_handler(small)
        ctl.table("small")
        kernel.handlers["DM_TABLE_STATUS"] = table_handler(big)
        assert len(ctl.table("big")) == 40
    assert ctl.channel.buffer_retries == 3


def test_reply_buffer_stays_when_the_kernel_leaves_data_size_as_sent(kernel, ctl):
    def handler(call, hdr, buf):
        hdr.flags = DMFlag.ACTIVE_PRESENT
        hdr.target_count = 1
        ffi.memmove(buf + hdr.data_start, status_data([(0, 8, "zero", "")]), 48)
    kernel.handlers["DM_TABLE_STATUS"] = handler
    for _ in range(10):
        assert len(ctl.table("vol")) == 1
    assert {c.data_size for c in kernel.of("DM_TABLE_STATUS")} == {8192}


def test_message_buffer_is_the_reply_size_every_time(kernel, ctl):
    # A message is never asked again, so its buffer is not learnt.
    kernel.handlers["DM_TARGET_MSG"] = lambda c, hdr, buf: put_data(hdr, buf, b"ok\0")
    for _ in range(20):
        ctl.message("vol", 0, "stats")
    assert {c.data_size for c in kernel.of("DM_TARGET_MSG")} == {8192}


def test_a_reply_returned_full_does_not_size_the_next(kernel, ctl):
    def full(call, hdr, buf):
        hdr.flags |= FULL
        hdr.data_size = 400  # what the kernel had written when it ran out
    kernel.handlers["DM_TABLE_STATUS"] = full
    ctl.channel.call(channel.TABLE_STATUS, "vol", retry_full=False)
    assert "DM_TABLE_STATUS" not in ctl.channel.size_hints


def test_next_size_rule():
    assert channel.next_size(8192, 353) == 8192 - (8192 - 441) // 8
    assert channel.next_size(1100, 353) == channel.MIN_REPLY_SIZE
    assert channel.next_size(4096, 4000) == 5000  # room for a quarter more
    assert channel.next_size(4096, 4096) == 4096  # all used, or data_size left as sent


def test_table_without_live_table_is_none(kernel, ctl):
    assert ctl.table("vol") is None
    assert ctl.status("vol") == []


def test_deps_decoding(kernel, ctl):
    devs = [(7, 0), (253, 300)]
    kernel.handlers["DM_TABLE_DEPS"] = lambda c, hdr, buf: put_data(
        hdr, buf, struct.pack("<II", 2, 0) + b"".join(struct.pack("<Q", huge_encode_dev(*d)) for d in devs))
    assert ctl.deps("vol") == [DevNo(7, 0), DevNo(253, 300)]


def test_message_answer(kernel, ctl):
    def handler(call, hdr, buf):
        hdr.flags |= DMFlag.DATA_OUT
        put_data(hdr, buf, b"answer 42\0")
    kernel.handlers["DM_TARGET_MSG"] = handler
    assert ctl.message("vol", 16, "stats_list") == "answer 42"
    [call] = kernel.of("DM_TARGET_MSG")
    assert call.payload[:8] == struct.pack("<Q", 16)
    assert call.payload[8:19] == b"stats_list\0"
    assert call.data_size == 8 * 1024  # the default reply_size, header included


def test_message_without_answer_is_none(kernel, ctl):
    assert ctl.message("vol", 0, "hello") is None


def test_message_validation_before_ioctl(kernel, ctl):
    for bad in ("", "   ", "a\nb", "a\0b"):
        with pytest.raises(ValidationError):
            ctl.message("vol", 0, bad)
    with pytest.raises(ValidationError):
        ctl.message("vol", -1, "hello")
    assert "DM_TARGET_MSG" not in kernel.commands()


# -- buffer growth ----------------------------------------------------------------------


def name_list_data(names) -> bytes:
    recs = []
    for i, name in enumerate(names):
        rec = pad8(struct.pack("<QI", huge_encode_dev(253, i), 0) + name.encode() + b"\0")
        recs.append(pad8(rec + struct.pack("<II", i, 1) + f"uuid-{i}".encode() + b"\0"))
    out = b""
    for i, rec in enumerate(recs):
        nxt = len(rec) if i + 1 < len(recs) else 0
        out += rec[:8] + struct.pack("<I", nxt) + rec[12:]
    return out


def test_list_devices_grows_buffer_then_remembers_size(kernel, ctl):
    names = [f"device-{i:05d}-" + "x" * 60 for i in range(1000)]
    data = name_list_data(names)
    assert len(data) > 64 * 1024  # needs 8K -> 16K -> 32K -> 64K -> 128K
    kernel.handlers["DM_LIST_DEVICES"] = lambda c, hdr, buf: put_data(hdr, buf, data)

    devices = ctl.list_devices()
    sizes = [c.data_size for c in kernel.of("DM_LIST_DEVICES")]
    assert sizes == [8192, 16384, 32768, 65536, 131072]
    assert len(devices) == 1000
    assert devices[0] == ListedDevice(names[0], 253, 0, 0, "uuid-0")
    assert devices[999] == ListedDevice(names[999], 253, 999, 999, "uuid-999")

    used = 312 + len(data)
    kernel.calls.clear()
    assert ctl.list_devices() == devices
    # No retries: a quarter over what the last listing used.
    assert [c.data_size for c in kernel.of("DM_LIST_DEVICES")] == [used + used // 4]
    assert ctl.channel.buffer_retries == 4


def test_size_hint_is_per_command(kernel, ctl):
    big = name_list_data(["n" * 100] * 200)
    kernel.handlers["DM_LIST_DEVICES"] = lambda c, hdr, buf: put_data(hdr, buf, big)
    ctl.list_devices()
    ctl.targets()
    assert kernel.of("DM_LIST_VERSIONS")[0].data_size == 8192


def test_list_devices_asks_for_uuids_on_new_kernels(kernel, ctl):
    kernel.handlers["DM_LIST_DEVICES"] = lambda c, hdr, buf: put_data(hdr, buf, name_list_data(["a"]))
    assert ctl.list_devices() == [ListedDevice("a", 253, 0, 0, "uuid-0")]
    assert kernel.of("DM_LIST_DEVICES")[0].flags & DMFlag.UUID
    kernel.calls.clear()
    ctl.list_devices(uuids=False)
    assert not kernel.of("DM_LIST_DEVICES")[0].flags & DMFlag.UUID


def test_list_devices_prefix_filters_go_in_name_and_uuid(kernel, ctl):
    ctl.list_devices(name_prefix="pydm-", uuid_prefix="LVM-")
    call = kernel.of("DM_LIST_DEVICES")[0]
    assert (call.name, call.uuid) == (b"pydm-", b"LVM-")


@pytest.mark.parametrize(
    "kwargs, word",
    [(dict(name_prefix="n" * 128), "name prefix"), (dict(uuid_prefix="u" * 129), "uuid prefix")],
)
def test_list_devices_overlong_prefix_raises_before_listing(kernel, ctl, kwargs, word):
    # A 129-byte uuid prefix once filled uuid[129] with no NUL; 130 bytes
    # raised cffi's IndexError.
    with pytest.raises(ValidationError, match=word):
        ctl.list_devices(**kwargs)
    assert "DM_LIST_DEVICES" not in kernel.commands()


def test_buffer_growth_stops_at_the_limit(kernel, ctl, monkeypatch):
    monkeypatch.setattr(channel, "MAX_BUFFER_SIZE", 64 * 1024)

    def always_full(call, hdr, buf):
        hdr.flags |= FULL
    kernel.handlers["DM_LIST_VERSIONS"] = always_full
    with pytest.raises(DMError) as info:
        ctl.targets()
    assert info.value.errno == errno.ENOBUFS
    assert info.value.command == "DM_LIST_VERSIONS"
    assert [c.data_size for c in kernel.of("DM_LIST_VERSIONS")] == [8192, 16384, 32768, 65536]


def test_target_msg_is_never_resent_on_buffer_full(kernel, ctl):
    def full(call, hdr, buf):
        hdr.flags |= FULL | DMFlag.DATA_OUT
    kernel.handlers["DM_TARGET_MSG"] = full
    with pytest.raises(DMError) as info:
        ctl.message("vol", 0, "stats_print 0", reply_size=1024)
    assert info.value.errno == errno.ENOBUFS
    assert info.value.command == "DM_TARGET_MSG"
    assert info.value.device == "vol"
    [call] = kernel.of("DM_TARGET_MSG")
    assert call.data_size == 1024


def test_target_msg_reply_size_sets_the_buffer(kernel, ctl):
    ctl.message("vol", 0, "hello", reply_size=1 << 20)
    assert kernel.of("DM_TARGET_MSG")[0].data_size == 1 << 20  # header included


def test_target_msg_buffer_always_holds_the_message(kernel, ctl):
    ctl.message("vol", 0, "x" * 2000, reply_size=1024)
    [call] = kernel.of("DM_TARGET_MSG")
    # sector (8) + message + NUL, padded to 8: 2016
    assert call.data_size == 312 + 2016 and call.payload[8:2009] == b"x" * 2000 + b"\0"


# -- failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "device, label",
    [("vol", "vol"), (Uuid("LVM-x"), "uuid:LVM-x"), (DevNo(253, 300), "253:300")],
)
def test_enxio_raises_device_not_found_with_command_and_device(kernel, ctl, device, label):
    kernel.handlers["DM_DEV_STATUS"] = fail(errno.ENXIO)
    with pytest.raises(DeviceNotFoundError) as info:
        ctl.info(device)
    assert info.value.command == "DM_DEV_STATUS"
    assert info.value.device == label
    assert label in str(info.value)
    assert not ctl.exists(device)


@pytest.mark.parametrize(
    "command, err, cls, call",
    [
        ("DM_DEV_CREATE", errno.EBUSY, DeviceExistsError, lambda c: c.create("vol")),
        ("DM_DEV_REMOVE", errno.EBUSY, DeviceBusyError, lambda c: c.remove("vol")),
        ("DM_VERSION", errno.EPERM, DMPermissionError, lambda c: c.version()),
        ("DM_TABLE_LOAD", errno.EINVAL, InvalidTableError, lambda c: c.load(DevNo(253, 1), "0 8 zero")),
    ],
)
def test_failures_map_to_typed_errors(kernel, ctl, command, err, cls, call):
    kernel.handlers[command] = fail(err)
    with pytest.raises(cls) as info:
        call(ctl)
    assert info.value.command == command


def test_create_failure_names_the_device(kernel, ctl):
    kernel.handlers["DM_DEV_CREATE"] = fail(errno.EBUSY)
    with pytest.raises(DeviceExistsError) as info:
        ctl.create("vol")
    assert info.value.device == "vol"


def test_table_load_failure_carries_kernel_log(kernel, ctl, monkeypatch):
    monkeypatch.setattr(FakeCursor, "lines", [
        "device-mapper: table: 253:1: linear: Device lookup failed",
        "device-mapper: ioctl: error adding target to table",
    ])
    kernel.handlers["DM_TABLE_LOAD"] = fail(errno.EINVAL)
    with pytest.raises(InvalidTableError) as info:
        ctl.load(DevNo(253, 1), "0 8 linear 7:99 0")
    assert info.value.kernel_message == (
        "device-mapper: table: 253:1: linear: Device lookup failed; "
        "device-mapper: ioctl: error adding target to table")
    assert "Device lookup failed" in str(info.value)


def test_target_version_unknown_type(kernel, ctl):
    kernel.handlers["DM_GET_TARGET_VERSION"] = fail(errno.EINVAL)
    with pytest.raises(DMError) as info:
        ctl.target_version("nonesuch")
    assert info.value.errno == errno.ENOENT
    assert "nonesuch" in str(info.value)
    assert kernel.of("DM_GET_TARGET_VERSION")[0].name == b"nonesuch"


def test_target_version_reply(kernel, ctl):
    kernel.handlers["DM_GET_TARGET_VERSION"] = lambda c, hdr, buf: put_data(
        hdr, buf, pad8(struct.pack("<I3I", 0, 1, 23, 1) + b"thin-pool\0"))
    assert ctl.target_version("thin-pool") == TargetVersion("thin-pool", (1, 23, 1))


# -- interface version gating ----------------------------------------------------------


@pytest.fixture
def old_kernel(kernel):
    kernel.version = (4, 30, 0)
    return kernel


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.arm_poll(),
        lambda c: c.target_version("linear"),
        lambda c: c.list_devices(name_prefix="x"),
        lambda c: c.ima_measurement("vol"),
    ],
    ids=["arm_poll", "target_version", "list_prefix", "ima"],
)
def test_commands_needing_newer_interface_raise_unsupported(old_kernel, ctl, call):
    with pytest.raises(UnsupportedError) as info:
        call(ctl)
    assert info.value.errno == errno.ENOTSUP
    assert "4.30.0" in str(info.value)
    assert old_kernel.commands() == ["DM_VERSION"]  # nothing else was sent


def test_old_kernel_list_devices_omits_uuid_and_event_nr(old_kernel, ctl):
    data = b""
    recs = [pad8(struct.pack("<QI", huge_encode_dev(253, i), 0) + n.encode() + b"\0")
            for i, n in enumerate(["a", "bb"])]
    data = recs[0][:8] + struct.pack("<I", len(recs[0])) + recs[0][12:] + recs[1]
    old_kernel.handlers["DM_LIST_DEVICES"] = lambda c, hdr, buf: put_data(hdr, buf, data)
    assert ctl.list_devices(uuids=False) == [ListedDevice("a", 253, 0, None, None),
                                             ListedDevice("bb", 253, 1, None, None)]
    assert not old_kernel.of("DM_LIST_DEVICES")[0].flags & DMFlag.UUID
    assert "DM_DEV_STATUS" not in old_kernel.commands()


def test_old_kernel_list_devices_reads_uuids_per_device(old_kernel, ctl):
    # Before 4.45 the listing has no uuids: each is read with DM_DEV_STATUS,
    # and a device gone in between is left out.
    recs = [pad8(struct.pack("<QI", huge_encode_dev(253, i), 0) + n.encode() + b"\0")
            for i, n in enumerate(["a", "bb", "gone"])]
    data = b"".join(r[:8] + struct.pack("<I", len(r)) + r[12:] for r in recs[:2]) + recs[2]
    old_kernel.handlers["DM_LIST_DEVICES"] = lambda c, hdr, buf: put_data(hdr, buf, data)
    uuids = {0: "LVM-a", 1: ""}

    def status(call, hdr, buf):
        minor = hdr.dev & 0xFF
        if minor not in uuids:
            return errno.ENXIO
        device_reply(f"n{minor}", 253, minor, uuid=uuids[minor])(call, hdr, buf)
        return 0

    old_kernel.handlers["DM_DEV_STATUS"] = status
    assert ctl.list_devices() == [ListedDevice("a", 253, 0, None, "LVM-a"),
                                  ListedDevice("bb", 253, 1, None, "")]
    assert not old_kernel.of("DM_LIST_DEVICES")[0].flags & DMFlag.UUID
    assert len(old_kernel.of("DM_DEV_STATUS")) == 3


def test_old_kernel_still_supports_older_features(old_kernel, ctl):
    ctl.remove("vol", deferred=True)  # 4.27
    ctl.set_uuid("vol", "u")          # 4.19
    assert old_kernel.of("DM_DEV_REMOVE")[0].flags & DMFlag.DEFERRED_REMOVE


# -- several commands -------------------------------------------------------------------


def test_create_device_issues_create_load_resume(kernel, ctl):
    kernel.handlers["DM_DEV_CREATE"] = device_reply("vol", 253, 5)
    dev = ctl.create_device("vol", "0 8 zero", uuid="u-1")
    assert kernel.commands() == ["DM_DEV_CREATE", "DM_TABLE_LOAD", "DM_DEV_SUSPEND"]
    load, resume = kernel.calls[1:]
    assert load.dev == resume.dev == huge_encode_dev(253, 5)
    assert not resume.flags & DMFlag.SUSPEND
    assert dev.devno == DevNo(253, 5)
    kernel.calls.clear()
    with dev:
        pass
    assert kernel.commands() == ["DM_TABLE_CLEAR", "DM_DEV_REMOVE"]


def test_create_device_rolls_back_when_load_fails(kernel, ctl):
    kernel.handlers["DM_DEV_CREATE"] = device_reply("vol", 253, 5)
    kernel.handlers["DM_TABLE_LOAD"] = fail(errno.EINVAL)
    with pytest.raises(InvalidTableError):
        ctl.create_device("vol", "0 8 linear 7:0 0")
    assert kernel.commands()[:2] == ["DM_DEV_CREATE", "DM_TABLE_LOAD"]
    assert "DM_DEV_SUSPEND" not in kernel.commands()
    [remove] = kernel.of("DM_DEV_REMOVE")
    assert remove.dev == huge_encode_dev(253, 5)


def test_create_device_rolls_back_when_resume_fails(kernel, ctl):
    kernel.handlers["DM_DEV_CREATE"] = device_reply("vol", 253, 5)
    kernel.handlers["DM_DEV_SUSPEND"] = fail(errno.EIO)
    with pytest.raises(DMError):
        ctl.create_device("vol", "0 8 zero")
    assert kernel.commands()[-1] == "DM_DEV_REMOVE"


def test_create_device_places_the_kernel_log_cursor_once(kernel, ctl, monkeypatch):
    kernel.handlers["DM_DEV_CREATE"] = device_reply("vol", 253, 5)
    ctl.load(DevNo(253, 5), "0 8 zero")  # the thread's cursor now exists
    placed = []
    monkeypatch.setattr(FakeCursor, "to_end", lambda self: placed.append(len(kernel.calls)))
    ctl.create_device("vol", "0 8 zero")
    # Before the create; the load and resume that follow read from there.
    assert placed == [1]
    ctl.load(DevNo(253, 5), "0 8 zero")
    assert placed == [1, 4]  # a command on its own places it again


def test_create_device_resume_failure_carries_kernel_log(kernel, ctl, monkeypatch):
    kernel.handlers["DM_DEV_CREATE"] = device_reply("vol", 253, 5)
    kernel.handlers["DM_DEV_SUSPEND"] = fail(errno.EINVAL)
    monkeypatch.setattr(FakeCursor, "lines", [
        "device-mapper: table: 253:9: linear: Device lookup failed",  # another device
        "device-mapper: table: 253:5: zero: preresume failed, error = -22",
    ])
    with pytest.raises(DMError) as info:
        ctl.create_device("vol", "0 8 zero")
    assert info.value.kernel_message == "device-mapper: table: 253:5: zero: preresume failed, error = -22"
    assert kernel.commands()[-1] == "DM_DEV_REMOVE"


def test_create_device_rollback_survives_failing_cleanup(kernel, ctl):
    kernel.handlers["DM_DEV_CREATE"] = device_reply("vol", 253, 5)
    kernel.handlers["DM_TABLE_LOAD"] = fail(errno.EINVAL)
    kernel.handlers["DM_TABLE_CLEAR"] = fail(errno.ENXIO)
    with pytest.raises(InvalidTableError):  # the original error, not the cleanup's
        ctl.create_device("vol", "0 8 zero")
    assert "DM_DEV_REMOVE" in kernel.commands()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="vol", table="0 8 zero\n10 8 zero"),
        dict(name="vol", table=""),
        dict(name="vol", table="0 8 zero\n8 0 error"),
        dict(name="vol", table=[Target(0, 8, "two words")]),
        dict(name="a/b", table="0 8 zero"),
        dict(name="vol", table="0 8 zero", uuid="u" * 129),
    ],
)
def test_create_device_invalid_input_sends_nothing(kernel, ctl, kwargs):
    with pytest.raises(ValidationError):
        ctl.create_device(**kwargs)
    assert kernel.calls == []


def test_reload_failing_load_issues_no_suspend(kernel, ctl):
    kernel.handlers["DM_TABLE_LOAD"] = fail(errno.EINVAL)
    with pytest.raises(InvalidTableError):
        ctl.reload(DevNo(253, 5), "0 8 zero")
    # The old table is read first, to be put back; the failure path may ask
    # whether the device exists; nothing is suspended.
    assert kernel.commands()[:3] == ["DM_DEV_STATUS", "DM_TABLE_STATUS", "DM_TABLE_LOAD"]
    assert "DM_DEV_SUSPEND" not in kernel.commands()


def test_reload_by_name_failing_load_issues_no_suspend(kernel, ctl):
    kernel.handlers["DM_TABLE_LOAD"] = fail(errno.EINVAL)
    with pytest.raises(InvalidTableError):
        ctl.reload("vol", "0 8 zero")
    assert "DM_DEV_SUSPEND" not in kernel.commands()


def test_reload_swaps_table(kernel, ctl):
    ctl.reload("vol", "0 8 zero", noflush=True)
    assert kernel.commands() == ["DM_DEV_STATUS", "DM_TABLE_STATUS", "DM_TABLE_LOAD", "DM_DEV_SUSPEND",
                                 "DM_DEV_SUSPEND"]
    suspend, resume = kernel.calls[-2:]
    assert suspend.flags & DMFlag.SUSPEND and suspend.flags & DMFlag.NOFLUSH
    assert not resume.flags & DMFlag.SUSPEND


def test_reload_failing_suspend_clears_new_table(kernel, ctl):
    kernel.handlers["DM_DEV_SUSPEND"] = fail(errno.EBUSY)
    with pytest.raises(DeviceBusyError):
        ctl.reload(DevNo(253, 5), "0 8 zero")
    # The old table found live, the new one dropped, the device resumed and checked.
    assert kernel.commands()[2:] == ["DM_TABLE_LOAD", "DM_DEV_SUSPEND", "DM_DEV_STATUS", "DM_TABLE_STATUS",
                                     "DM_TABLE_CLEAR", "DM_DEV_SUSPEND", "DM_DEV_STATUS", "DM_TABLE_STATUS"]


def test_reload_failing_resume_restores_old_table(kernel, ctl):
    def resume_fails(call, hdr, buf):
        if not call.flags & DMFlag.SUSPEND and not kernel.of("DM_TABLE_CLEAR"):
            return errno.EINVAL
    kernel.handlers["DM_DEV_SUSPEND"] = resume_fails
    with pytest.raises(DMError):
        ctl.reload(DevNo(253, 5), "0 8 zero")
    assert kernel.commands()[2:] == [
        "DM_TABLE_LOAD", "DM_DEV_SUSPEND", "DM_DEV_SUSPEND", "DM_DEV_STATUS", "DM_TABLE_STATUS",
        "DM_TABLE_CLEAR", "DM_DEV_SUSPEND", "DM_DEV_STATUS", "DM_TABLE_STATUS"]


def test_reload_invalid_table_sends_nothing(kernel, ctl):
    with pytest.raises(ValidationError):
        ctl.reload("vol", "0 8 zero\n4 8 zero")
    assert kernel.calls == []


# -- read-ahead: checked before anything is asked --------------------------------

@pytest.mark.parametrize("sectors", [-1, 1 << 32, (1 << 32) - 1, True, 8.0, "8", None])
def test_bad_read_ahead_sends_nothing(kernel, ctl, sectors):
    with pytest.raises(ValidationError):
        ctl.set_read_ahead("vol", sectors)
    with pytest.raises(ValidationError):
        ctl.set_read_ahead(DevNo(253, 0), sectors)
    assert kernel.calls == []


def test_read_ahead_of_a_bad_address_sends_nothing(kernel, ctl):
    with pytest.raises(ValidationError):
        ctl.read_ahead("a/b")
    with pytest.raises(ValidationError):
        ctl.set_read_ahead(DevNo(1 << 12, 0), 256)
    assert kernel.calls == []


# -- replies hold only what the kernel wrote in this call ----------------------------

MARK = b"\xa5"  # fills the reused buffer before each call; never a valid record byte here


def mark_thread_buffer(ctl) -> None:
    """Fill this thread's reused ioctl buffer as an earlier reply might have."""
    ctl.version()  # the buffer exists from the first call on
    _buf, view, size, dirty = ctl.channel._local.buffer
    # Strings of an earlier reply: marker bytes, each run NUL-terminated,
    # as far as that reply's data_size went (here the whole buffer).
    view[:] = (MARK * 63 + b"\0") * (size // 64)
    dirty[0] = size


def silent_targets(types):
    """DM_TABLE_STATUS as the kernel's retrieve_status() answers it for
    targets whose status method writes nothing: it writes each spec, then
    takes the text to be whatever the buffer holds up to the first NUL."""
    def handler(call, hdr, buf):
        data = ffi.buffer(buf, hdr.data_size)
        at = hdr.data_start
        for i, ttype in enumerate(types):
            text_at = at + 40
            length = bytes(data[text_at:hdr.data_size]).find(b"\0")
            if length < 0:  # the kernel's strlen would run off the end
                hdr.flags |= FULL
                return
            nxt = len(pad8(b"\0" * (text_at + length + 1 - hdr.data_start)))
            data[at:text_at] = struct.pack("<QQiI16s", i * 8, 8, 0, nxt, ttype.encode())
            at = hdr.data_start + nxt
        hdr.flags = DMFlag.ACTIVE_PRESENT
        hdr.target_count = len(types)
        hdr.data_size = at
    return handler


@pytest.mark.parametrize("read", ["status", "table"])
def test_a_silent_target_reads_empty_not_the_last_reply(kernel, ctl, read):
    # pydmsetup status S U printed S's status line for U (an unstriped target).
    kernel.handlers["DM_TABLE_STATUS"] = silent_targets(["unstriped", "error"])
    mark_thread_buffer(ctl)
    got = getattr(ctl, read)("vol")
    assert [(t.type, t[3]) for t in got] == [("unstriped", ""), ("error", "")]


def test_what_an_earlier_reply_wrote_is_cleared_before_the_next_call(kernel, ctl):
    # The buffer is cleared only as far as earlier calls wrote into it: a
    # long answer to a message, then targets whose status writes nothing.
    answer = (MARK * 63 + b"\0") * 64
    kernel.handlers["DM_TARGET_MSG"] = lambda c, hdr, buf: (
        setattr(hdr, "flags", hdr.flags | DMFlag.DATA_OUT), put_data(hdr, buf, answer))[0]
    kernel.handlers["DM_TABLE_STATUS"] = silent_targets(["unstriped", "error"])
    assert ctl.message("vol", 0, "m") == (MARK * 63).decode("utf-8", "surrogateescape")
    assert [(t.type, t[3]) for t in ctl.status("vol")] == [("unstriped", ""), ("error", "")]


def test_what_a_failed_call_may_have_written_is_cleared_before_the_next_call(kernel, ctl):
    def fails_after_writing(call, hdr, buf):
        answer = (MARK * 63 + b"\0") * ((hdr.data_size - hdr.data_start) // 64)
        ffi.memmove(buf + hdr.data_start, answer, len(answer))
        return errno.EINVAL

    kernel.handlers["DM_TARGET_MSG"] = fails_after_writing
    kernel.handlers["DM_TABLE_STATUS"] = silent_targets(["unstriped", "error"])
    with pytest.raises(DMError):
        ctl.message("vol", 0, "m")
    assert [(t.type, t[3]) for t in ctl.status("vol")] == [("unstriped", ""), ("error", "")]


def test_no_marker_byte_reaches_a_decoded_reply(kernel, ctl):
    # Every reading command, the buffer pre-filled before each: the
    # kernel's records are complete except the silent targets' texts.
    devs = [(7, 0), (253, 3)]
    kernel.handlers.update({
        "DM_TABLE_STATUS": silent_targets(["zero", "unstriped"]),
        "DM_TABLE_DEPS": lambda c, hdr, buf: put_data(
            hdr, buf, struct.pack("<II", 2, 0)
            + b"".join(struct.pack("<Q", huge_encode_dev(*d)) for d in devs)),
        "DM_LIST_VERSIONS": lambda c, hdr, buf: put_data(
            hdr, buf, pad8(struct.pack("<I3I", 0, 1, 4, 0) + b"linear\0")),
        "DM_LIST_DEVICES": lambda c, hdr, buf: put_data(
            hdr, buf, struct.pack("<QI", huge_encode_dev(253, 3), 0) + b"vol\0"),
        "DM_TARGET_MSG": lambda c, hdr, buf: (
            setattr(hdr, "flags", hdr.flags | DMFlag.DATA_OUT), put_data(hdr, buf, b"ok\0"))[0],
        "DM_DEV_STATUS": device_reply(),
    })
    reads = [
        lambda: ctl.status("vol"), lambda: ctl.table("vol"), lambda: ctl.deps("vol"),
        lambda: ctl.targets(), lambda: ctl.list_devices(), lambda: ctl.message("vol", 0, "m"),
        lambda: ctl.info("vol"),
    ]
    for read in reads:
        mark_thread_buffer(ctl)
        result = repr(read())
        assert "\\udca5" not in result and "\\xa5" not in result and "165" not in result, result


def test_module_functions_take_controls_argument_order(kernel, ctl, monkeypatch):
    from pydevmapper import api

    monkeypatch.setattr(api, "_control", ctl)
    kernel.handlers["DM_TARGET_MSG"] = lambda c, hdr, buf: (
        setattr(hdr, "flags", hdr.flags | DMFlag.DATA_OUT), put_data(hdr, buf, b"ok\0"))[0]
    assert api.message("vol", 8, "stats") == "ok"
    [sent] = kernel.of("DM_TARGET_MSG")
    assert sent.payload[:8] == struct.pack("=Q", 8)
    assert sent.payload[8:].rstrip(b"\0") == b"stats"


def test_a_table_read_back_leaves_no_key_in_the_buffer(kernel, ctl):
    # A crypt table comes back with its key: the request carries
    # DM_SECURE_DATA_FLAG (the kernel wipes its copy) and the reused buffer
    # is zeroed once the reply is copied out.
    key = b"0123456789abcdef" * 4
    params = b"aes-xts-plain64 " + key + b" 0 7:0 0\0"

    def handler(call, hdr, buf):
        nxt = len(pad8(b"\0" * (40 + len(params))))
        record = struct.pack("<QQiI16s", 0, 8, 0, 0, b"crypt") + params
        ffi.memmove(buf + hdr.data_start, record, len(record))
        hdr.flags = DMFlag.ACTIVE_PRESENT
        hdr.target_count = 1
        hdr.data_size = hdr.data_start + nxt

    kernel.handlers["DM_TABLE_STATUS"] = handler
    [target] = ctl.table("vol")
    assert target.params == params[:-1].decode()
    assert kernel.of("DM_TABLE_STATUS")[0].flags & lib.DM_SECURE_DATA_FLAG
    _buf, view, _size, _dirty = ctl.channel._local.buffer
    assert key not in bytes(view)
    ctl.status("vol")  # a status read is not secure data
    assert not kernel.of("DM_TABLE_STATUS")[1].flags & lib.DM_SECURE_DATA_FLAG


def test_a_create_whose_minor_is_taken_is_a_device_exists_error(ctl, kernel):
    """dm_create() answers ENXIO when the minor asked for is taken; without
    one asked for, ENXIO stays what it is."""
    kernel.handlers["DM_DEV_CREATE"] = fail(errno.ENXIO)
    with pytest.raises(DeviceExistsError, match="minor 9 is already in use") as exc:
        ctl.create("x", devno=DevNo(253, 9))
    assert (exc.value.errno, exc.value.command) == (errno.ENXIO, "DM_DEV_CREATE")
    with pytest.raises(DeviceNotFoundError):
        ctl.create("x")


def test_wipe_table_of_a_missing_device_says_so(ctl, kernel):
    kernel.handlers["DM_TABLE_STATUS"] = fail(errno.ENXIO)
    with pytest.raises(DeviceNotFoundError):
        ctl.wipe_table("gone")
    assert "DM_TABLE_LOAD" not in kernel.commands()
