# SPDX-License-Identifier: LGPL-2.1-or-later
"""Waiting for device events: DEV_WAIT, and arm_poll + poll as a blocking
iterator and an asyncio async iterator.  Events come from targets that
really raise them: basic_target's ``event`` message and a snapshot whose
exception store fills up.  No sleeps: every wait is bounded by a timeout
and woken by the kernel.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

import pydevmapper as dm
from pydevmapper.events import DeviceEvent, async_watch, watch

pytestmark = pytest.mark.dm_root

TIMEOUT = 60.0  # generous for TCG; tests return as soon as the event arrives


@pytest.fixture
def event_dev(dm_basic_target, dm_loop_device, dm_make_device, dm_prefix):
    size = 2048
    return dm_make_device(dm.Table.single(size, "basic_target", f"{dm_loop_device.devno_str} 0"))


@pytest.mark.dm_needs_basic_target
def test_wait_returns_when_the_event_number_moves(dm_control, event_dev):
    before = event_dev.info().event_nr
    sender = threading.Thread(target=event_dev.message, args=("event",))
    sender.start()
    try:
        after = dm_control.wait(event_dev.devno, before)
    finally:
        sender.join()
    assert after.event_nr == before + 1
    # An event number that already moved returns at once.
    assert dm_control.wait(event_dev.devno, before).event_nr == before + 1


@pytest.mark.dm_needs_basic_target
def test_blocking_iterator_yields_the_device_and_its_new_event_number(
        dm_control, event_dev, dm_prefix):
    before = event_dev.info().event_nr
    with watch(dm_control, timeout=TIMEOUT, name_prefix=dm_prefix) as events:
        event_dev.message("event")  # after watch() returned: must not be missed
        ev = next(events)
        assert isinstance(ev, DeviceEvent)
        assert (ev.name, ev.event_nr, ev.devno) == (event_dev.name, before + 1, event_dev.devno)
        event_dev.message("event")
        event_dev.message("event")
        ev = next(events)
        assert ev.name == event_dev.name and ev.event_nr >= before + 2


def test_blocking_iterator_times_out_and_closes(dm_control, dm_prefix):
    events = watch(dm_control, timeout=0.2, name_prefix=dm_prefix + "nothing-")
    assert list(events) == []
    assert list(events) == []  # stays exhausted


@pytest.mark.dm_needs_basic_target
def test_async_iterator(dm_control, event_dev, dm_prefix):
    before = event_dev.info().event_nr

    async def main():
        async with async_watch(dm_control, timeout=TIMEOUT, name_prefix=dm_prefix) as events:
            # The loop stays free while waiting: a task raises the event.
            loop = asyncio.get_running_loop()
            loop.call_soon(event_dev.message, "event")
            return await events.__anext__()

    ev = asyncio.run(main())
    assert (ev.name, ev.event_nr) == (event_dev.name, before + 1)


def test_async_iterator_times_out(dm_control, dm_prefix):
    async def main():
        return [ev async for ev in async_watch(dm_control, timeout=0.2,
                                               name_prefix=dm_prefix + "nothing-")]

    assert asyncio.run(main()) == []


def test_a_filling_snapshot_raises_an_event(dm_control, dm_make_loop, dm_make_device, dm_prefix):
    origin = dm_make_loop(16)
    cow = dm_make_loop(1)  # 1 MiB of exceptions: 2 MiB of writes overflow it
    size = 16 * 2048
    snap = dm_make_device(dm.Table.single(
        size, "snapshot", f"{origin.devno_str} {cow.devno_str} N 8"))
    before = snap.info().event_nr
    assert snap.status()[0].status != "Invalid"
    with watch(dm_control, timeout=TIMEOUT, name_prefix=dm_prefix) as events:
        fd = os.open(snap.path, os.O_WRONLY | os.O_SYNC)
        try:
            chunk = b"\xa5" * 65536
            for offset in range(0, 4 * 1024 * 1024, len(chunk)):
                try:
                    os.pwrite(fd, chunk, offset)
                except OSError:
                    break  # the snapshot was invalidated: writes now fail
        finally:
            os.close(fd)
        ev = next(events)
    assert ev.devno == snap.devno
    assert ev.event_nr > before
    assert snap.status()[0].status == "Invalid"


def test_watch_reports_devices_added_renamed_and_removed(dm_control, dm_prefix):
    name = f"{dm_prefix}watched"
    seen = []
    with watch(dm_control, timeout=TIMEOUT, name_prefix=dm_prefix) as events:
        dev = dm_control.create_device(name, dm.Table.single(8, "zero"))
        try:
            for step in (lambda: dev.rename(f"{name}-2"), lambda: dev.remove(retry=30.0), None):
                ev = next(events)
                while ev.devno != dev.devno:
                    ev = next(events)
                seen.append((ev.kind, ev.name))
                if step is not None:
                    step()
        finally:
            if dm_control.exists(dev.devno):
                dm_control.remove(dev.devno, retry=30.0)
    assert seen == [("added", name), ("renamed", f"{name}-2"), ("removed", f"{name}-2")]
