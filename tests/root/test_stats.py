# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydevmapper.stats against the kernel: regions made, listed, counted per
area from real O_DIRECT I/O (sectors, times, latency histograms), cleared,
given aux data and deleted; a missing region is typed."""

from __future__ import annotations

import mmap
import os
import stat

import pytest

import pydevmapper as dm
from pydevmapper import stats
from pydevmapper import targets as t
from tests.root.target_helpers import MIB

pytestmark = pytest.mark.dm_root


def _direct(node: str, offset: int, size: int, write: bool) -> None:
    buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
    fd = os.open(node, (os.O_WRONLY if write else os.O_RDONLY) | os.O_DIRECT)
    try:
        if write:
            buf.write(b"\x5a" * size)
            assert os.pwritev(fd, [buf], offset) == size
        else:
            assert os.preadv(fd, [buf], offset) == size
    finally:
        os.close(fd)
        buf.close()


def _private_node(tmp_path, devno) -> str:
    """A node of the device that udev does not watch: closing it after a
    write sets off no probe, whose reads would count in the regions."""
    path = str(tmp_path / "node")
    os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(devno.major, devno.minor))
    return path


def test_regions_count_real_io_per_area(dm_control, dm_make_loop, dm_make_device, tmp_path):
    ctl = dm_control
    loop = dm_make_loop(8)
    dev = dm_make_device(dm.Table.single(8 * MIB, t.Linear(loop.devno, 0)))
    node = _private_node(tmp_path, dev.devno)
    assert stats.list_regions(ctl, dev.name) == []
    whole = stats.create_region(ctl, dev.name, areas=4, histogram=[1_000_000, 1_000_000_000])
    part = stats.create_region(ctl, dev.name, start=8192, length=4096, area_size=1024, precise_timestamps=True,
                               program_id="pydmtest", aux_data="first")
    regions = {r.region_id: r for r in stats.list_regions(ctl, dev.name)}
    assert regions[whole] == stats.Region(whole, 0, 16384, 4096, "-", "-", False, (1_000_000, 1_000_000_000))
    assert regions[part] == stats.Region(part, 8192, 4096, 1024, "pydmtest", "first", True, ())
    assert stats.list_regions(ctl, dev.name, program_id="pydmtest") == [regions[part]]
    for rid in (whole, part):  # udev's probe may have read since the regions were made
        stats.clear_region(ctl, dev.name, rid)

    _direct(node, 0, 65536, write=True)  # area 0 of the whole device
    areas = stats.area_counters(ctl, dev.name, whole)
    assert [(a.start, a.length) for a in areas] == [(0, 4096), (4096, 4096), (8192, 4096), (12288, 4096)]
    assert areas[0].write_sectors == 128 and areas[0].writes >= 1 and areas[0].reads == 0
    assert [a.writes + a.reads for a in areas[1:]] == [0, 0, 0]
    assert sum(areas[0].histogram) == areas[0].writes  # every completed I/O in one latency bin

    for rid in (whole, part):
        stats.clear_region(ctl, dev.name, rid)
    _direct(node, 8192 * 512, 4096, write=False)  # area 2, and area 0 of the part
    areas = stats.area_counters(ctl, dev.name, whole)
    assert areas[2].read_sectors == 8 and areas[2].reads >= 1 and areas[2].writes == 0
    assert areas[1] == stats.Counters(4096, 4096, *[0] * 13, (0, 0, 0))
    assert sum(areas[2].histogram) == areas[2].reads
    total = stats.Counters.total(areas)
    assert (total.read_sectors, total.write_sectors, total.length) == (8, 0, 16384)
    [first, *rest] = stats.area_counters(ctl, dev.name, part)
    assert first.read_sectors == 8 and first.read_time > 0 and all(a.reads == 0 for a in rest)
    # A window of areas; reading with clear starts them again from zero.
    [third] = stats.area_counters(ctl, dev.name, whole, clear=True, first_area=2, count=1)
    assert third.start == 8192 and third.read_sectors == 8
    assert stats.area_counters(ctl, dev.name, whole)[2].read_sectors == 0
    assert stats.area_counters(ctl, dev.name, part)[0].read_sectors == 8  # another region: not cleared

    stats.set_aux_data(ctl, dev.name, part, "second")
    assert stats.list_regions(ctl, dev.name, program_id="pydmtest")[0].aux_data == "second"
    stats.delete_region(ctl, dev.name, part)
    assert [r.region_id for r in stats.list_regions(ctl, dev.name)] == [whole]
    with pytest.raises(dm.RegionNotFoundError, match=f"no statistics region {part}"):
        stats.area_counters(ctl, dev.name, part)
    with pytest.raises(dm.RegionNotFoundError) as err:
        stats.delete_region(ctl, dev.name, part)
    assert err.value.command == "DM_TARGET_MSG"
    # The kernel hands out the lowest free id.
    assert stats.create_region(ctl, dev.name) == part
    stats.delete_region(ctl, dev.name, part)
    stats.delete_region(ctl, dev.name, whole)
    assert stats.list_regions(ctl, dev.name) == []


def test_many_areas_are_read_whole(dm_control, dm_make_loop, dm_make_device):
    """An answer longer than the first buffer is asked for again."""
    ctl = dm_control
    loop = dm_make_loop(8)
    dev = dm_make_device(dm.Table.single(8 * MIB, t.Linear(loop.devno, 0)))
    rid = stats.create_region(ctl, dev.name, area_size=8)
    areas = stats.area_counters(ctl, dev.name, rid)
    assert len(areas) == 2048 and areas[-1].start == 16376
    stats.delete_region(ctl, dev.name, rid)
