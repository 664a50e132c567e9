# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of the typed-target root tests (pydevmapper.targets against the
real kernel).

With PYDM_CAPTURE_STATUS=<dir> (a directory the guest may write: pass it
to the sandbox with --rwdir) every table and status line the tests see is
appended to <dir>/<kernel release>.jsonl; the unit tier's fixtures
(tests/unit/fixtures/targets/) come from there.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import subprocess
import time

from pydevmapper import targets as t
from tests.root.helpers import dm_block_node

MIB = 2048  # sectors


def capture(kind: str, ttype: str, text: str) -> None:
    where = os.environ.get("PYDM_CAPTURE_STATUS")
    if where:
        with open(os.path.join(where, f"{os.uname().release}.jsonl"), "a") as fh:
            fh.write(json.dumps({"kind": kind, "type": ttype, "text": text}) + "\n")


def loaded_equal(dev, *built: t.Params) -> None:
    """The live table, target by target, parses equal to the typed
    parameters it was built from, and its text is the kernel's (as dmsetup
    prints it, less the trailing blank some targets leave)."""
    table = dev.table()
    for got in table:
        capture("table", got.type, got.params)
        assert got.parsed().format() == got.params
    assert [got.parsed() for got in table] == list(built)
    out = subprocess.run(["dmsetup", "table", "--showkeys", dev.name], capture_output=True, text=True, check=True)
    assert [line.rstrip(" ") for line in out.stdout.splitlines()] == [str(x) for x in table]


def status(dev, index: int = 0) -> t.Status:
    st = dev.status()[index]
    capture("status", st.type, st.status)
    return st.parsed()


def write(dev, offset: int, data: bytes) -> None:
    write_path(dm_block_node(dev.devno), offset, data)


def write_path(path: str, offset: int, data: bytes) -> None:
    """Write and fsync (a loop device's contents, a device's node)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def direct_read(path: str, offset: int, size: int) -> bytes:
    """Read past the page cache (O_DIRECT, page-aligned buffer)."""
    buf = mmap.mmap(-1, size)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        got = os.preadv(fd, [buf], offset)
        return bytes(buf[:got])
    finally:
        os.close(fd)
        buf.close()


def wait_until(predicate, timeout: float = 60.0, step: float = 0.2) -> bool:
    """Poll predicate() until it holds (for work the kernel does in the
    background: resync, merge, writeback)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(step)
    return True


def agrees(built: t.Params, got: t.Params) -> None:
    """For targets whose table the kernel prints normalised (defaults filled
    in): every field given when building reads back the same, and the
    kernel's text round-trips through the typed form."""
    assert type(built) is type(got)
    defaults = type(built)(**{f: getattr(built, f) for f in _required(built)})
    for name in built.__dataclass_fields__:
        mine = getattr(built, name)
        if mine != getattr(defaults, name):
            assert getattr(got, name) == mine, (name, mine, getattr(got, name))


def _required(params: t.Params) -> list[str]:
    return [f.name for f in dataclasses.fields(params)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
