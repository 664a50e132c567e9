# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reading uevent messages without a kernel: the two wire formats, and the
typed event a mapped device's message becomes.  The socket, the kernel's
events and the overflow are proven in tests/root/test_uevents.py."""

from __future__ import annotations

import errno
import struct
import sys

import pytest

from pydevmapper import uevents
from pydevmapper.errors import ValidationError
from pydevmapper.types import DevNo, ListedDevice


def kernel_message(action: str, devpath: str, **props: str) -> bytes:
    fields = {"ACTION": action, "DEVPATH": devpath, "SUBSYSTEM": "block", **props}
    return f"{action}@{devpath}\0".encode() + b"".join(f"{k}={v}\0".encode() for k, v in fields.items())


def udev_message(props: dict, order: str = sys.byteorder) -> bytes:
    body = b"".join(f"{k}={v}\0".encode() for k, v in props.items())
    # udev's monitor header: prefix, magic (big-endian), then its own sizes
    # and filters in host order; the properties start where it says, which
    # need not be right after it.
    gap = b"\xff" * 8
    sizes = struct.pack((">" if order == "big" else "<") + "IIIIIII", 40, 48, len(body), 0, 0, 0, 0)
    header = b"libudev\0" + struct.pack(">I", 0xFEEDCAFE) + sizes
    return header + gap + body


def test_kernel_message():
    source, props = uevents.parse(kernel_message("change", "/devices/virtual/block/dm-3",
                                                  MAJOR="253", MINOR="3", DM_COOKIE="4194305"))
    assert source == "kernel"
    assert props["ACTION"] == "change" and props["MINOR"] == "3" and props["DM_COOKIE"] == "4194305"


def test_udev_message_reads_its_properties_from_the_offset_given():
    source, props = uevents.parse(udev_message({"ACTION": "add", "DEVPATH": "/devices/virtual/block/dm-0",
                                                "DM_NAME": "vol"}))
    assert source == "udev"
    assert props == {"ACTION": "add", "DEVPATH": "/devices/virtual/block/dm-0", "DM_NAME": "vol"}


@pytest.mark.parametrize("order", ["little", "big"])
def test_udev_message_sizes_are_in_the_host_byte_order(monkeypatch, order):
    monkeypatch.setattr(uevents, "_HOST_ORDER", order)
    source, props = uevents.parse(udev_message({"ACTION": "add", "DM_NAME": "vol"}, order))
    assert (source, props) == ("udev", {"ACTION": "add", "DM_NAME": "vol"})


@pytest.mark.parametrize("junk", [b"", b"\x1c\0\0\0", b"libudev\0short",
                                  b"libudev\0" + b"\0" * 40, b"no at sign\0A=b\0"])
def test_anything_else_is_not_a_uevent(junk):
    assert uevents.parse(junk) is None


def listener():
    """A _Listener's event logic without its socket and control descriptor."""
    made = object.__new__(uevents._Listener)
    made.source = "kernel"
    made.known = {DevNo(253, 1): ("old-name", "")}
    return made


def test_event_of_a_mapped_device_takes_names_from_the_message_or_what_was_seen():
    lis = listener()
    ev = lis._event(kernel_message("remove", "/devices/virtual/block/dm-1", MAJOR="253", MINOR="1",
                                   SEQNUM="77"))
    assert ev == uevents.Uevent("kernel", "remove", DevNo(253, 1), "old-name", "", None, 77, ev.properties)
    # The block layer's remove follows device-mapper's: it has the name too.
    assert lis._event(kernel_message("remove", "/devices/virtual/block/dm-1", MAJOR="253",
                                     MINOR="1")).name == "old-name"
    ev = lis._event(udev_message({"ACTION": "change", "DEVPATH": "/devices/virtual/block/dm-2",
                                  "SUBSYSTEM": "block", "MAJOR": "253", "MINOR": "2", "DM_NAME": "a b",
                                  "DM_UUID": "LVM-x", "DM_COOKIE": "0x0d4d0001", "SEQNUM": "9"}))
    assert (ev.source, ev.name, ev.uuid, ev.cookie, ev.seqnum) == ("udev", "a b", "LVM-x", 0x0D4D0001, 9)
    assert lis.known[DevNo(253, 2)] == ("a b", "LVM-x")


@pytest.mark.parametrize("message", [
    kernel_message("add", "/devices/virtual/block/loop0", MAJOR="7", MINOR="0"),
    kernel_message("add", "/devices/virtual/block/dm-0", MAJOR="253"),
    kernel_message("add", "/devices/virtual/block/dm-0", MAJOR="253", MINOR="x"),
    kernel_message("add", "/devices/virtual/block/dm-0", SUBSYSTEM="bdi", MAJOR="253", MINOR="0"),
])
def test_other_devices_and_malformed_messages_are_passed_over(message):
    assert listener()._event(message) is None


@pytest.mark.parametrize("kwargs", [{"source": "both"}, {"receive_buffer": 0}, {"receive_buffer": True}])
def test_bad_arguments_are_refused_before_opening_anything(kwargs):
    with pytest.raises(ValidationError):
        uevents.monitor(**kwargs)


def test_wait_for_device_needs_exactly_one_address():
    with pytest.raises(ValidationError):
        uevents.wait_for_device()
    with pytest.raises(ValidationError):
        uevents.wait_for_device("a", uuid="b")


class FakeSocket:
    """recvfrom answers from a script: a message (sent by the kernel), or an
    errno raised."""

    def __init__(self, script):
        self.script = list(script)

    def recvfrom(self, size):
        step = self.script.pop(0) if self.script else errno.EAGAIN
        if isinstance(step, int):
            raise (BlockingIOError if step == errno.EAGAIN else OSError)(step, "")
        return step, (0, 1)


class FakeControl:
    def __init__(self, listed=(), infos=None):
        self.listed, self.infos, self.lists = list(listed), infos or {}, 0

    def list_devices(self):
        self.lists += 1
        return self.listed

    def info(self, devno):
        from pydevmapper.errors import DeviceNotFoundError

        if devno not in self.infos:
            raise DeviceNotFoundError(errno.ENXIO, "DM_DEV_STATUS", str(devno), None)
        return self.infos[devno]


def _change(minor):
    return kernel_message("change", f"/devices/virtual/block/dm-{minor}", MAJOR="253", MINOR=str(minor),
                          DM_NAME=f"d{minor}", DM_UUID="")


def test_an_overflow_comes_after_the_events_still_queued_with_the_list_read_then():
    lis = listener()
    listed = ListedDevice("d9", 253, 9, None, "")
    lis.ctl = FakeControl(listed=[listed])
    lis.sock = FakeSocket([_change(1), errno.ENOBUFS, _change(2), _change(3)])
    got = lis.drain()
    assert [getattr(ev, "name", None) for ev in got] == ["d1", "d2", "d3", None]
    assert got[-1] == uevents.Overflow([listed]) and lis.ctl.lists == 1
    lis.sock = FakeSocket([_change(4)])
    assert [ev.name for ev in lis.drain()] == ["d4"]  # reported once


def test_a_name_not_yet_in_sysfs_is_asked_of_the_kernel():
    from pydevmapper.flags import DMFlag
    from pydevmapper.types import DeviceInfo

    lis = listener()
    lis.ctl = FakeControl(infos={DevNo(253, 7): DeviceInfo("late", "LVM-y", 253, 7, 0, 0, 1, DMFlag(0))})
    ev = lis._event(kernel_message("add", "/devices/virtual/block/dm-7", MAJOR="253", MINOR="7"))
    assert (ev.name, ev.uuid) == ("late", "LVM-y")
    ev = lis._event(kernel_message("add", "/devices/virtual/block/dm-8", MAJOR="253", MINOR="8"))
    assert (ev.name, ev.uuid) == (None, None)  # gone already: unknown, not an error
