# SPDX-License-Identifier: LGPL-2.1-or-later
"""The reliability tier, live reloads under I/O: 100 reloads between two
equivalent tables while a writer does O_DIRECT writes to the device.
Every write completes without an error, every block reads back as last
written, and the device is never left suspended."""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import threading

import pytest

import pydevmapper as dm
from pydevmapper import udev
from tests.root.helpers import record_cases

pytestmark = pytest.mark.dm_root

RELOADS = 100
BLOCK = 4096
BLOCKS = 1024  # the first 4 MiB
SECTORS = 64 * 1024 * 2  # dm_loop_device: 64 MiB


def _pattern(block: int, generation: int) -> bytes:
    head = struct.pack("<QQ", block, generation)
    return (head * (BLOCK // len(head)))[:BLOCK]


def test_100_live_reloads_under_direct_io_lose_nothing(dm_make_device, dm_loop_device):
    lo = dm_loop_device.devno_str
    whole = f"0 {SECTORS} linear {lo} 0"
    halves = f"0 {SECTORS // 2} linear {lo} 0\n{SECTORS // 2} {SECTORS // 2} linear {lo} {SECTORS // 2}"
    dev = dm_make_device(whole)
    written = [0] * BLOCKS  # the generation each block last got
    io_errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        buf = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT wants
        fd = os.open(dev.path, os.O_WRONLY | os.O_DIRECT)
        try:
            generation = 0
            while not stop.is_set():
                generation += 1
                for block in range(0, BLOCKS, 7):
                    buf[:] = _pattern(block, generation)
                    try:
                        if os.pwrite(fd, buf, block * BLOCK) != BLOCK:
                            io_errors.append(f"short write at block {block}")
                        written[block] = generation
                    except OSError as exc:
                        io_errors.append(f"block {block}: {exc}")
        finally:
            os.close(fd)

    with dm.Control(udev_sync=False) as ctl:  # the reloads' speed, not udev's
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        suspended_after = []
        try:
            for i in range(RELOADS):
                info = ctl.reload(dev.devno, halves if i % 2 == 0 else whole)
                if info.suspended or ctl.info(dev.devno).suspended:
                    suspended_after.append(i)
        finally:
            stop.set()
            thread.join(120)
            if udev.udev_running():
                # 100 resumes unsynced: let udev work through their uevents
                # before the fixture's remove waits for its own.
                subprocess.run(["udevadm", "settle", "--timeout=300"], check=False, timeout=400)
    assert not thread.is_alive(), "the writer is blocked"

    corrupted = []
    buf = mmap.mmap(-1, BLOCK)
    fd = os.open(dev.path, os.O_RDONLY | os.O_DIRECT)
    try:
        for block in range(0, BLOCKS, 7):
            os.preadv(fd, [buf], block * BLOCK)
            if written[block] and buf[:] != _pattern(block, written[block]):
                corrupted.append(block)
    finally:
        os.close(fd)
    record_cases(f"live reloads under O_DIRECT writes ({RELOADS} reloads)", RELOADS,
                 RELOADS - len(suspended_after) if not (io_errors or corrupted) else 0)
    assert not io_errors, io_errors[:10]
    assert not corrupted, f"{len(corrupted)} blocks read back wrong: {corrupted[:10]}"
    assert not suspended_after, f"left suspended after reloads {suspended_after}"
    assert dev.table() == dm.Table.parse(whole if RELOADS % 2 == 0 else halves)
    assert min(written[b] for b in range(0, BLOCKS, 7)) > 1, "the writer did not keep up with the reloads"
