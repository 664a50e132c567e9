# SPDX-License-Identifier: LGPL-2.1-or-later
"""File maps (``dmstats create --filemap``, ``update_filemap``) on ext4 over
a linear device: the API's regions against the extents ``filefrag``
reports and the reads they count, and pydmstats against Debian's dmstats,
byte for byte and region for region, each starting from the same regions.

Both tools look for lvm2's ``dmfilemapd`` in PATH; the comparisons give
them a PATH of their own: without it (Debian's dmsetup package has none),
or with a stand-in that records how it was started.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import subprocess
import time

import pytest

import pydevmapper as dm
from pydevmapper import fiemap, stats
from pydevmapper.errors import UnmappableFileError, ValidationError
from tests.root.helpers import dm_block_node, dmsetup_installed, forked_main  # noqa: F401 (fixture)
from tests.root.target_helpers import MIB

pytestmark = [pytest.mark.dm_root, pytest.mark.usefixtures("dmsetup_installed")]


def _write(path, size, offset=0):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, os.urandom(size), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


class Volume:
    """ext4 on a linear device over a loop device, mounted, with files:
    ``a`` (2.5 MiB in one write), ``b`` (written in pieces between other
    files, so in several extents), ``sparse`` (a hole first), ``empty``,
    ``link`` (to ``b``)."""

    def __init__(self, ctl, dev, mnt):
        self.ctl, self.dev, self.mnt = ctl, dev, str(mnt)
        _write(self.path("a"), 2560 * 1024)
        for i in range(1, 7):
            _write(self.path(f"f{i}"), 12 * 1024)
            _write(self.path("b"), 8 * 1024, offset=i * 8192)
        _write(self.path("sparse"), 16 * 1024, offset=256 * 1024)
        open(self.path("empty"), "w").close()
        os.symlink("b", self.path("link"))  # a group's alias is the real file's name

    def path(self, name):
        return os.path.join(self.mnt, name)

    def empty(self):
        for region in stats.list_regions(self.ctl, self.dev.name):
            stats.delete_region(self.ctl, self.dev.name, region)

    def regions(self):
        return stats.list_regions(self.ctl, self.dev.name)


@pytest.fixture
def volume(dm_control, dm_make_loop, dm_make_device, tmp_path):
    disk = dm_make_loop(64)
    dev = dm_make_device(dm.Table.single(64 * MIB, "linear", f"{disk.devno_str} 0"))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "1024", "-E", "nodiscard", dm_block_node(dev.devno)],
                   check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", dm_block_node(dev.devno), str(mnt)], check=True)
    try:
        yield Volume(dm_control, dev, mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _filefrag(path):
    """The file's extents as e2fsprogs' filefrag reads them, in sectors,
    joined where they follow each other on the device (as libdm joins them)."""
    out = subprocess.run(["filefrag", "-v", "-b512", path], check=True, capture_output=True, text=True).stdout
    joined = []
    for m in re.finditer(r"^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):", out, re.M):
        start, end = int(m.group(1)), int(m.group(2))
        if joined and joined[-1][0] + joined[-1][1] == start:
            joined[-1][1] += end - start + 1
        else:
            joined.append([start, end - start + 1])
    return [tuple(e) for e in joined]


def _read_direct(path):
    size = os.stat(path).st_size
    buf = mmap.mmap(-1, size)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        assert os.preadv(fd, [buf], 0) == size
    finally:
        os.close(fd)
        buf.close()
    return size


def test_a_file_map_is_a_region_per_extent_counting_the_files_reads(volume, dm_control):
    name = volume.dev.name
    for f in ("a", "b", "sparse"):
        with open(volume.path(f), "rb") as fh:
            assert [tuple(e) for e in fiemap.file_extents(fh.fileno())] == _filefrag(volume.path(f)), f
    assert len(_filefrag(volume.path("b"))) > 1  # the interleaved writes split it
    made = stats.create_file_regions(dm_control, volume.path("b"))
    assert made.device == volume.dev.devno and made.group_id == min(made.regions)
    listed = {r.region_id: r for r in volume.regions()}
    assert [(listed[r].start, listed[r].length) for r in made.regions] == _filefrag(volume.path("b"))
    [group] = stats.list_groups(dm_control, name)
    assert (group.group_id, group.regions, group.alias) == (made.group_id, tuple(sorted(made.regions)), "b")
    for rid in made.regions:
        stats.clear_region(dm_control, name, rid)
    subprocess.run(["sync"], check=True)
    _read_direct(volume.path("b"))
    _read_direct(volume.path("a"))  # elsewhere on the device: not counted
    counted = stats.Counters.total(c for rid in made.regions for c in stats.area_counters(dm_control, name, rid))
    # What is allocated is read: b starts with a hole, which reads as zeros without I/O.
    assert counted.read_sectors == sum(n for _, n in _filefrag(volume.path("b"))) and counted.writes == 0

    # Ungrouped, with an alias of its own, a histogram; refusals first, with nothing made.
    stats.delete_group(dm_control, name, made.group_id, regions=True)
    with pytest.raises(ValidationError):
        stats.create_file_regions(dm_control, volume.path("empty"))
    with pytest.raises(ValidationError):
        stats.create_file_regions(dm_control, volume.mnt)
    with pytest.raises(ValidationError):
        stats.create_file_regions(dm_control, "/proc/version")
    with pytest.raises(ValidationError):
        stats.create_file_regions(dm_control, volume.path("a"), group=False, alias="x")
    with pytest.raises(ValidationError):
        stats.create_file_regions(dm_control, volume.path("a"), alias="x:y")
    os.link(volume.path("a"), volume.path("a b"))  # its name cannot be a group's alias
    with pytest.raises(ValidationError, match="alias"):
        stats.create_file_regions(dm_control, volume.path("a b"))
    with open(volume.path("a"), "rb") as fh:  # a descriptor: no alias unless given
        assert stats.list_groups(dm_control, name) == []
        by_fd = stats.create_file_regions(dm_control, fh.fileno())
        assert stats.list_groups(dm_control, name)[0].alias == ""
        stats.delete_group(dm_control, name, by_fd.group_id, regions=True)
    assert volume.regions() == []
    code, _, err = forked_main(["create", "--filemap", "--nomonitor", volume.path("a b")], prog="dmstats")
    assert code == 1 and err.decode().endswith(f"Could not create regions from file {volume.path('a b')}.\n"
                                               "Command failed.\n")
    assert volume.regions() == []
    loose = stats.create_file_regions(dm_control, volume.path("a"), group=False, histogram=[1000, 10**6])
    assert loose.group_id is None and stats.list_groups(dm_control, name) == []
    assert all(r.precise_timestamps and r.histogram_bounds == (1000, 10**6) for r in volume.regions())


def test_a_file_map_follows_the_file(volume, dm_control):
    """update_file_regions: a region made again for an extent whose region
    went, and a group moved wholly onto another file's extents."""
    name = volume.dev.name
    made = stats.create_file_regions(dm_control, volume.path("b"), alias="bee")
    assert len(made.regions) > 1
    stats.delete_region(dm_control, name, made.regions[-1])
    again = stats.update_file_regions(dm_control, volume.path("b"), made.group_id)
    assert again.group_id == made.group_id and len(again.regions) == len(made.regions)
    listed = {r.region_id: r for r in volume.regions()}
    assert [(listed[r].start, listed[r].length) for r in again.regions] == _filefrag(volume.path("b"))
    assert stats.list_groups(dm_control, name)[0].regions == tuple(sorted(again.regions))
    moved = stats.update_file_regions(dm_control, volume.path("a"), made.group_id)
    listed = {r.region_id: r for r in volume.regions()}
    assert sorted(listed) == sorted(moved.regions)  # b's regions went
    assert [(listed[r].start, listed[r].length) for r in moved.regions] == _filefrag(volume.path("a"))
    [group] = stats.list_groups(dm_control, name)
    assert (group.group_id, group.alias) == (moved.group_id, "bee")
    with pytest.raises(dm.RegionNotFoundError):
        stats.update_file_regions(dm_control, volume.path("a"), moved.group_id + 100)


def _drop_last(ctl, name, made):
    """As if the file's last extent had come since its map was made."""
    stats.delete_region(ctl, name, made.regions[-1])
    grp = stats.list_groups(ctl, name)[0]
    stats.set_aux_data(ctl, name, grp.group_id,
                       f"DMS_GROUP={grp.alias}:{stats.format_ranges(made.regions[:-1])}#-")


def test_a_group_whose_new_region_comes_first_is_made_again_under_it(volume, dm_control):
    """The kernel hands out the lowest free id: a new extent's region may
    come before the group's first region, which must lead a group (dmstats
    1.02.185 leaves such a group unreadable; here it is made again)."""
    name = volume.dev.name
    spare = stats.create_region(dm_control, name, program_id="dmstats")  # holds id 0
    made = stats.create_file_regions(dm_control, volume.path("b"))
    assert made.group_id == 1
    _drop_last(dm_control, name, made)
    stats.delete_region(dm_control, name, spare)  # id 0 free
    again = stats.update_file_regions(dm_control, volume.path("b"), made.group_id)
    [group] = stats.list_groups(dm_control, name)
    assert again.group_id == group.group_id == 0 and group.regions == tuple(sorted(again.regions))
    assert group.alias == "b" and len(again.regions) == len(made.regions)


def test_a_failed_update_leaves_the_group_over_what_it_kept(volume, dm_control, monkeypatch):
    name = volume.dev.name
    made = stats.create_file_regions(dm_control, volume.path("b"))
    _drop_last(dm_control, name, made)

    def failing(*args, **kwargs):
        raise dm.DMError(12, "DM_TARGET_MSG", name, None, "injected")

    monkeypatch.setattr(stats, "create_region", failing)
    with pytest.raises(dm.DMError, match="injected"):
        stats.update_file_regions(dm_control, volume.path("b"), made.group_id)
    [group] = stats.list_groups(dm_control, name)
    assert group.regions == tuple(sorted(made.regions[:-1]))
    assert sorted(r.region_id for r in volume.regions()) == sorted(made.regions[:-1])
    # Moved onto another file, failing: the regions kept (none) and no group.
    with pytest.raises(dm.DMError, match="injected"):
        stats.update_file_regions(dm_control, volume.path("a"), made.group_id)
    assert volume.regions() == [] and stats.list_groups(dm_control, name) == []


def test_a_failed_file_map_leaves_no_region(volume, dm_control, monkeypatch):
    made = []
    real = stats.create_region

    def failing(*args, **kwargs):
        if made:
            raise dm.DMError(12, "DM_TARGET_MSG", volume.dev.name, None, "injected")
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(stats, "create_region", failing)
    with pytest.raises(dm.DMError, match="injected"):
        stats.create_file_regions(dm_control, volume.path("b"))
    assert made and volume.regions() == []


# -- pydmstats against dmstats ----------------------------------------------------

@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Both tools with a PATH of their own: ``daemon(True)`` puts a
    stand-in dmfilemapd there that records its arguments and what its
    descriptor is open on."""
    dmstats = shutil.which("dmstats")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "started"
    monkeypatch.setenv("PATH", str(bindir))

    def daemon(present):
        script = bindir / "dmfilemapd"
        if present:
            script.write_text("#!/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                              f'echo "$$ $2 $3 $4 $5 $6 $(readlink /proc/self/fd/$1)" > {record}.tmp\n'
                              f"mv {record}.tmp {record}\n")
            script.chmod(0o755)
        elif script.exists():
            script.unlink()

    def started():
        """What the stand-in was started with (waited for: it runs in the background)."""
        deadline = time.monotonic() + 30
        while not record.exists():
            assert time.monotonic() < deadline, "dmfilemapd was not started"
            time.sleep(0.05)
        pid, _, text = record.read_text().partition(" ")
        record.unlink()
        # Gone before the volume is unmounted: it holds the file open.
        while os.path.exists(f"/proc/{pid}"):
            assert time.monotonic() < deadline, "dmfilemapd did not end"
            time.sleep(0.05)
        return text

    def run(tool, args, cwd):
        if tool == "dm":
            p = subprocess.run([dmstats, *args], capture_output=True, timeout=60, cwd=cwd)
            return p.returncode, p.stdout.decode(), p.stderr.decode()
        here = os.getcwd()
        os.chdir(cwd)
        try:
            code, out, err = forked_main(args, prog="dmstats")
        finally:
            os.chdir(here)
        return code, out.decode(), err.decode()

    run.daemon, run.started = daemon, started
    return run


def _compare(volume, tools, args, reset):
    outcomes = []
    for tool in ("dm", "py"):
        volume.empty()
        reset()
        outcomes.append((*tools(tool, args, volume.mnt), volume.regions()))
    assert outcomes[1] == outcomes[0], (args, outcomes)
    return outcomes[0]


CREATE_CASES = [
    ["a"], ["link"], ["--nogroup", "b"], ["--alias", "xx", "--bounds", "1ms,2ms", "b"], ["{mnt}/b"], ["sparse"],
    ["a", "b"], ["--programid", "", "--force", "a"], ["empty"], ["nonexistent"], ["{mnt}"], ["/proc/version"],
    ["--areas", "2", "a"], ["--areasize", "8", "a"], ["--start", "8", "a"], ["--userdata", "x", "a"],
    ["--segments", "a"], ["--alldevices", "a"], ["-u", "x", "a"], ["--programid", "", "a"], [],
    ["--nogroup", "--alias", "q", "a"], ["--bounds", "1x", "a"], ["-j", "1", "-m", "2", "a"],
    ["--bounds", "2ms,1ms", "a"], ["--bounds", "1ms,2ms", "empty"],
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=lambda c: "_".join(c)[:50] or "none")
def test_create_filemap_as_dmstats(volume, tools, case):
    args = [a.format(mnt=volume.mnt) for a in case]
    tools.daemon(False)
    _compare(volume, tools, ["create", "--filemap", "--nomonitor", *args], lambda: None)


def test_create_filemap_starts_dmfilemapd_as_dmstats_does(volume, tools):
    """Without --nomonitor: dmfilemapd started on the file's descriptor with
    the group id, the file's real path and the mode; when it is missing,
    the child's report of the failed exec; --nogroup without --nomonitor,
    and a bad --follow, refused."""
    tools.daemon(False)
    for args in (["a"], ["--follow", "path", "b"], ["--nogroup", "a"], ["--follow", "bogus", "a"]):
        _compare(volume, tools, ["create", "--filemap", *args], lambda: None)
    tools.daemon(True)
    for args in (["a"], ["--follow", "path", "b"]):
        outcomes = []
        for tool in ("dm", "py"):
            volume.empty()
            outcomes.append((tools(tool, ["create", "--filemap", *args], volume.mnt), tools.started(),
                             volume.regions()))
        assert outcomes[1] == outcomes[0], args
        (code, _, _), started, _ = outcomes[0]
        mode = "path" if "path" in args else "inode"
        assert code == 0 and started.split() == ["0", volume.path(args[-1]), mode, "0", "0", volume.path(args[-1])]


def test_update_filemap_as_dmstats(volume, tools):
    def mapped(name, drop=None):
        """The file's map; with ``drop``, as if that extent had come since:
        its region deleted and out of the group."""
        def reset():
            made = stats.create_file_regions(volume.ctl, volume.path(name))
            if drop is not None:
                gone = made.regions[drop]
                stats.delete_region(volume.ctl, volume.dev.name, gone)
                left = stats.format_ranges(r for r in made.regions if r != gone)
                stats.set_aux_data(volume.ctl, volume.dev.name, made.group_id, f"DMS_GROUP={name}:{left}#-")
        return reset

    tools.daemon(False)
    cases = [
        (["--groupid", "0", "a"], mapped("a")), (["--groupid", "0", "b"], mapped("b", drop=-1)),
        (["--groupid", "0", "b"], mapped("a")), (["--groupid", "0", "{mnt}/a"], mapped("b")),
        (["--groupid", "0", "empty"], mapped("b")), (["--groupid", "1", "b"], mapped("b")),
        (["--groupid", "99", "b"], mapped("b")), (["b"], mapped("b")), (["--groupid", "0"], mapped("b")),
        (["--groupid", "0", "nonexistent"], mapped("b")), (["--groupid", "0", "{mnt}"], mapped("b")),
        (["--groupid", "0", "--areas", "2", "b"], mapped("b")), (["--groupid", "-1", "b"], mapped("b")),
        (["--groupid", "0", "--programid", "", "b"], mapped("b", drop=-1)),
    ]
    for args, reset in cases:
        args = [a.format(mnt=volume.mnt) for a in args]
        _compare(volume, tools, ["update_filemap", "--nomonitor", *args], reset)
    # Without --nomonitor dmfilemapd does the update: nothing changes here.
    _compare(volume, tools, ["update_filemap", "--groupid", "0", "b"], mapped("a"))
    tools.daemon(True)
    outcomes = []
    for tool in ("dm", "py"):
        volume.empty()
        mapped("a")()
        outcomes.append((tools(tool, ["update_filemap", "--groupid", "0", "b"], volume.mnt), tools.started(),
                         volume.regions()))
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][1].split() == ["0", volume.path("b"), "inode", "0", "0", volume.path("b")]


def test_filemap_options_dmstats_drops_are_kept(volume, tools):
    """Deliberate differences: dmstats 1.02.185 makes a file map's regions
    under its own program id and without precise timestamps whatever
    --programid and --precise say; pydmstats makes them as asked.  The
    rest is the same."""
    tools.daemon(False)
    args = ["create", "--filemap", "--nomonitor", "--precise", "--programid", "other", "a"]
    outcomes = []
    for tool in ("dm", "py"):
        volume.empty()
        outcomes.append((tools(tool, args, volume.mnt), volume.regions()))
    (dm_out, dm_regions), (py_out, py_regions) = outcomes
    assert py_out == dm_out and dm_out[0] == 0
    assert {(r.program_id, r.precise_timestamps) for r in dm_regions} == {("dmstats", False)}
    assert {(r.program_id, r.precise_timestamps) for r in py_regions} == {("other", True)}
    assert [(r.start, r.length) for r in py_regions] == [(r.start, r.length) for r in dm_regions]


@pytest.fixture
def btrfs_volume(dm_control, dm_make_loop, dm_make_device, tmp_path):
    """btrfs on a linear device, mounted, with a file ``f``; the btrfs
    module unloaded after if mounting loaded it."""
    if not shutil.which("mkfs.btrfs"):
        pytest.fail("mkfs.btrfs is missing: scripts/setup-host.sh installs btrfs-progs")
    loaded = os.path.exists("/sys/module/btrfs")
    disk = dm_make_loop(64)
    dev = dm_make_device(dm.Table.single(64 * MIB, "linear", f"{disk.devno_str} 0"))
    mnt = tmp_path / "btrfs"
    mnt.mkdir()
    try:
        subprocess.run(["mkfs.btrfs", "-q", "-f", "--mixed", dm_block_node(dev.devno)], check=True)
        subprocess.run(["mount", "-t", "btrfs", dm_block_node(dev.devno), str(mnt)], check=True)
        try:
            _write(mnt / "f", 256 * 1024)
            yield dev, mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        if not loaded:
            subprocess.run(["modprobe", "-r", "btrfs"], check=False)


def test_a_file_on_btrfs_is_refused_as_dmstats_refuses_it(btrfs_volume, dm_control, tools):
    """btrfs's FIEMAP addresses are not the device's and a file's st_dev
    there names no block device: libdm asks the file system first and
    refuses; so do the API and pydmstats, and no region is made."""
    dev, mnt = btrfs_volume
    assert os.major(os.stat(mnt / "f").st_dev) == 0  # the subvolume's own number
    with pytest.raises(UnmappableFileError) as e:
        stats.create_file_regions(dm_control, mnt / "f")
    assert e.value.reason == "no_physical_extents"
    with pytest.raises(UnmappableFileError) as e:
        stats.update_file_regions(dm_control, mnt / "f", 0)
    assert e.value.reason == "no_physical_extents"
    tools.daemon(False)
    outcomes = [tools(tool, ["create", "--filemap", "--nomonitor", "f"], str(mnt)) for tool in ("dm", "py")]
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][0] == 1 and "btrfs does not provide physical FIEMAP extent data" in outcomes[0][2]
    assert stats.list_regions(dm_control, dev.name) == []
