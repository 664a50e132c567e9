# SPDX-License-Identifier: LGPL-2.1-or-later
"""Uevents of mapped devices against the real kernel and udevd: devices made,
renamed and removed by dmsetup in another process, seen in order and as
pyroute2's UeventSocket sees them; udev's events after its rules; an
overflow reported and re-listed; waiting for a device another process
makes."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time

import pytest
from pyroute2.netlink.uevent import AsyncUeventSocket

import pydevmapper as dm
from pydevmapper import udev, uevents

pytestmark = [pytest.mark.dm_root, pytest.mark.udev]

UDEV = udev.udev_running()
needs_udev = pytest.mark.skipif(not UDEV, reason="needs udevd running (the udev boot)")
needs_no_udev = pytest.mark.skipif(UDEV, reason="needs udevd stopped (the --no-udev boot)")


async def dmsetup(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("dmsetup", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (args, out, err)


async def until(events, predicate, seen):
    """Take events into ``seen`` until one satisfies ``predicate``."""
    async for ev in events:
        seen.append(ev)
        if predicate(ev):
            return
    raise AssertionError(f"the monitor timed out; seen: {seen}")


async def pyroute2_events(sock, minor: int):
    """(ACTION, SEQNUM) of every kernel event of dm-<minor> pyroute2's socket holds."""
    found = []

    async def collect():
        while True:  # each get() returns what one datagram held
            async for msg in sock.get():
                if msg.get("DEVPATH", "").endswith(f"/dm-{minor}"):
                    found.append((msg["ACTION"], int(msg["SEQNUM"])))

    try:
        await asyncio.wait_for(collect(), 2.0)
    except asyncio.TimeoutError:
        pass
    return found


def test_kernel_events_of_another_process_in_order_as_pyroute2_sees_them(dm_name):
    renamed = f"{dm_name}-renamed"

    async def scenario():
        sock = AsyncUeventSocket()
        await sock.bind(groups=1)
        seen = []
        try:
            async with uevents.async_monitor("kernel", timeout=120, name_prefix=dm_name) as events:
                await dmsetup("create", dm_name, "--table", "0 8 zero")
                await until(events, lambda e: e.action == "change" and e.name == dm_name, seen)
                await dmsetup("rename", dm_name, renamed)
                await until(events, lambda e: e.action == "change" and e.name == renamed, seen)
                await dmsetup("remove", renamed)
                await until(events, lambda e: e.action == "remove", seen)
                theirs = await pyroute2_events(sock, seen[0].devno.minor)  # 2 s without one
                seen += events.pending()
        finally:
            sock.close()
        return seen, theirs

    try:
        seen, theirs = asyncio.run(scenario())
    finally:
        for name in (dm_name, renamed):
            subprocess.run(["dmsetup", "remove", name], capture_output=True)
    # Two removes: device-mapper's (with the cookie), then the block
    # layer's as the disk goes.
    assert [(e.action, e.name) for e in seen] == [
        ("add", dm_name), ("change", dm_name), ("change", renamed), ("remove", renamed),
        ("remove", renamed)]
    assert {e.devno for e in seen} == {seen[0].devno}
    assert all(e.source == "kernel" and e.uuid == "" for e in seen)
    assert [e.seqnum for e in seen] == sorted(e.seqnum for e in seen)
    assert [(e.action, e.seqnum) for e in seen] == theirs
    for e in seen:
        assert e.cookie == (int(e.properties["DM_COOKIE"]) if "DM_COOKIE" in e.properties else None)
    if UDEV:  # dmsetup asks udev to confirm its resume, rename and remove
        assert [bool(e.cookie) for e in seen] == [False, True, True, True, False]


@needs_udev
def test_udev_events_come_after_its_rules_ran(dm_control, dm_name):
    with uevents.monitor("udev", timeout=120, name_prefix=dm_name) as events:
        dev = dm_control.create_device(dm_name, dm.Table.single(8, "zero"), uuid=f"{dm_name}-uuid")
        seen = []
        for ev in events:
            seen.append((ev.action, os.path.exists(f"/dev/mapper/{dm_name}")))
            if ev.action == "change":
                assert (ev.source, ev.name, ev.uuid, ev.devno) == ("udev", dm_name, f"{dm_name}-uuid", dev.devno)
                break
        dev.remove(retry=30.0)
        for ev in events:
            if ev.action == "remove":
                assert not os.path.lexists(f"/dev/mapper/{dm_name}")
                break
        else:
            raise AssertionError("no udev remove event")
    # udev's change event is sent once /dev/mapper/<name> exists.
    assert seen[-1] == ("change", True)


@needs_no_udev
def test_without_udevd_only_the_kernel_speaks(dm_control, dm_name):
    with uevents.monitor("udev", timeout=3) as from_udev, uevents.monitor("kernel", timeout=60) as from_kernel:
        with dm_control.create_device(dm_name, dm.Table.single(8, "zero")):
            pass
        actions = []
        for ev in from_kernel:
            actions.append(ev.action)
            if ev.action == "remove":
                break
        assert actions == ["add", "change", "remove"]
        assert list(from_udev) == []


def test_an_overflow_is_reported_and_the_devices_relisted(dm_name):
    # A few kernel events fill a buffer this small; without waiting for
    # udev, they come faster than anything reads them.  With udevd, fewer:
    # it would run its rules on each for a minute after the test.
    flood = 100 if UDEV else 1000
    with uevents.monitor("kernel", timeout=10, receive_buffer=4096) as events, \
            dm.Control(udev_sync=False) as ctl:
        dev = ctl.create_device(dm_name, dm.Table.single(8, "zero"))
        try:
            for _ in range(flood):  # a resume is a change event; a suspend none
                ctl.suspend(dev.devno)
                ctl.resume(dev.devno)
            got = events.pending()
            overflows = [e for e in got if isinstance(e, uevents.Overflow)]
            assert overflows, f"{len(got)} events and no overflow"
            assert isinstance(got[-1], uevents.Overflow)  # listed after the last event read
            assert len([e for e in got if isinstance(e, uevents.Uevent)]) < flood
            ours = sorted((d.name, d.devno) for d in overflows[-1].devices)
            assert ours == sorted((d.name, d.devno) for d in ctl.list_devices())
            # The monitor goes on after an overflow.
            ctl.suspend(dev.devno)
            ctl.resume(dev.devno)
            after = next(e for e in events if isinstance(e, uevents.Uevent) and e.name == dm_name)
            assert after.action == "change"
        finally:
            dev.remove(retry=30.0)


def test_wait_for_device_made_by_another_process(dm_name):
    def make_later():
        time.sleep(1.0)
        subprocess.run(["dmsetup", "create", dm_name, "--uuid", f"{dm_name}-u", "--table", "0 8 zero"],
                       check=True, capture_output=True)

    maker = threading.Thread(target=make_later)
    maker.start()
    try:
        info = uevents.wait_for_device(uuid=f"{dm_name}-u", timeout=120)
        assert info.name == dm_name and info.live_table and not info.suspended
    finally:
        maker.join()
        subprocess.run(["dmsetup", "remove", dm_name], capture_output=True)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=re.escape(f"no device '{dm_name}-never'")):
        uevents.wait_for_device(f"{dm_name}-never", timeout=1.0)
    assert time.monotonic() - started < 30
