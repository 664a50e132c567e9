# SPDX-License-Identifier: LGPL-2.1-or-later
"""I/O statistics of mapped devices (dm-stats): regions whose I/O the
kernel counts, per area, read as typed counters::

    import pydevmapper as dm
    from pydevmapper import stats

    with dm.Control() as ctl:
        region = stats.create_region(ctl, "vol", areas=4, histogram=[1_000_000, 10_000_000])
        ...                                          # I/O on vol
        areas = stats.area_counters(ctl, "vol", region, clear=True)
        total = stats.Counters.total(areas)
        print(total.reads, total.write_sectors, total.histogram)
        print(stats.Rates.of(total, interval=5.0).utilization)
        stats.delete_region(ctl, "vol", region)

Everything is a message to the device (``@stats_create``, ``@stats_list``,
``@stats_print``, ``@stats_print_clear``, ``@stats_clear``,
``@stats_delete``, ``@stats_set_aux``); the kernel keeps no regions until
one is made, so a device without them costs nothing.  Times are in
nanoseconds throughout, whatever the region counts in: the kernel counts in
milliseconds unless the region has ``precise_timestamps``, and histogram
bounds that are not whole milliseconds turn that on, as libdevmapper does.

Regions belong to no program: ``program_id`` (a word, ``-`` if none) tells
them apart, and ``list_regions(program_id=...)`` lists one program's.
dmstats, and pydmsetup's ``stats``, use ``dmstats``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence

from pydevmapper import fiemap, validate
from pydevmapper._namedtuple import NamedTuple
from pydevmapper.channel import MAX_BUFFER_SIZE, TARGET_MSG
from pydevmapper.errors import (
    DeviceNotFoundError,
    DMError,
    RegionNotFoundError,
    UnmappableFileError,
    ValidationError,
)
from pydevmapper.types import DevNo, check_id, describe

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.control import Control
    from pydevmapper.types import DeviceId

_MS = 1_000_000  # nanoseconds


class Region(NamedTuple):
    """A statistics region, as ``@stats_list`` reports it (sectors; bounds in ns)."""

    region_id: int
    start: int
    length: int
    area_size: int  # the kernel's "step"; the last area may be shorter
    program_id: str
    aux_data: str
    precise_timestamps: bool = False
    histogram_bounds: tuple[int, ...] = ()

    @property
    def areas(self) -> int:
        return -(-self.length // self.area_size)


_FIELDS = ("reads", "reads_merged", "read_sectors", "read_time", "writes", "writes_merged",
           "write_sectors", "write_time", "in_flight", "io_time", "weighted_io_time",
           "read_busy_time", "write_busy_time")
_TIMES = frozenset({"read_time", "write_time", "io_time", "weighted_io_time", "read_busy_time",
                    "write_busy_time"})


class Counters(NamedTuple):
    """One area's counters (``start``/``length`` in sectors, times in ns).

    As in /proc/diskstats: ``read_time``/``write_time`` sum each I/O's
    time from start to completion; ``io_time`` is the time with any I/O in
    flight, ``weighted_io_time`` that time multiplied by the I/Os in flight;
    ``read_busy_time``/``write_busy_time`` the time with reads (writes) in
    flight.  "Merged" counts I/Os that started where the previous one on
    the same CPU ended, in the same direction.  ``histogram`` counts completed I/Os by latency:
    one bin below the first bound, one per bound (from it up to the next).
    """

    start: int
    length: int
    reads: int
    reads_merged: int
    read_sectors: int
    read_time: int
    writes: int
    writes_merged: int
    write_sectors: int
    write_time: int
    in_flight: int
    io_time: int
    weighted_io_time: int
    read_busy_time: int
    write_busy_time: int
    histogram: tuple[int, ...] = ()

    @staticmethod
    def total(areas: Iterable[Counters]) -> Counters:
        """The region's counters: its areas' summed (start and length span them)."""
        areas = list(areas)
        if not areas:
            raise ValidationError("Counters.total: no areas")
        sums = [sum(getattr(a, f) for a in areas) for f in _FIELDS]
        bins = tuple(map(sum, zip(*(a.histogram for a in areas)))) if areas[0].histogram else ()
        start = areas[0].start
        return Counters._make([start, areas[-1].start + areas[-1].length - start, *sums, bins])

    def since(self, earlier: Counters) -> Counters:
        """The counts between ``earlier`` and this reading of the same area
        (``in_flight`` is this reading's)."""
        if (earlier.start, earlier.length) != (self.start, self.length):
            raise ValidationError("Counters.since: not the same area")
        diff = [getattr(self, f) - (0 if f == "in_flight" else getattr(earlier, f)) for f in _FIELDS]
        bins = tuple(a - b for a, b in zip(self.histogram, earlier.histogram))
        return Counters._make([self.start, self.length, *diff, bins])


class Rates(NamedTuple):
    """What iostat-like tools show for counters gathered over an interval:
    per second, sizes in sectors, latencies in ns, ``utilization`` 0 to 1."""

    reads_per_sec: float
    writes_per_sec: float
    read_sectors_per_sec: float
    write_sectors_per_sec: float
    reads_merged_per_sec: float
    writes_merged_per_sec: float
    throughput: float  # I/Os per second
    utilization: float
    average_request_size: float
    average_queue_size: float
    await_time: float
    read_await: float
    write_await: float
    service_time: float

    @classmethod
    def of(cls, counters: Counters, interval: float) -> Rates:
        """The rates of ``counters`` gathered over ``interval`` seconds (the
        counts since a clear, or ``since`` an earlier reading).  As
        libdevmapper computes them, except that merges are per second
        (libdevmapper 1.02.185 divides them by the interval in ns)."""
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValidationError(f"Rates.of: interval is a positive number of seconds, not {interval!r}")
        c = counters
        ns = interval * 1e9
        ios = c.reads + c.writes
        util = min(c.io_time, ns) / ns
        tput = ios / interval
        return cls(
            c.reads / interval, c.writes / interval, c.read_sectors / interval, c.write_sectors / interval,
            c.reads_merged / interval, c.writes_merged / interval, tput, util,
            (c.read_sectors + c.write_sectors) / ios if ios else 0.0,
            c.weighted_io_time / ns,
            (c.read_time + c.write_time) / ios if ios else 0.0,
            c.read_time / c.reads if c.reads else 0.0,
            c.write_time / c.writes if c.writes else 0.0,
            util * 1e9 / tput if tput and util else 0.0,
        )


# -- the messages --------------------------------------------------------------

def _word(value: object, what: str) -> str:
    """program_id and aux_data: one word of the message."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} is a non-empty string, not {value!r}")
    if any(ch.isspace() or ch == "\\" for ch in value):
        raise ValidationError(f"{what} is one word, without blanks or backslashes: {value!r}")
    validate.parameter_string(value, what)
    return value


# The widths the kernel reads each number with (sscanf: a wider one wraps).
_U32, _S32, _U64 = (1 << 32) - 1, (1 << 31) - 1, (1 << 64) - 1


def _positive(value: object, what: str, maximum: int = _U64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise ValidationError(f"{what} is a positive int up to {maximum}, not {value!r}")
    return value


def _send(ctl: Control, device: DeviceId, text: str, region_id: int | None = None) -> str:
    """The message's answer ('' if none); replies that do not fit are asked
    for again with a buffer twice the size (the kernel neither prints nor
    clears anything of a reply that does not fit)."""
    size = 16384
    while True:
        try:
            return ctl.message(device, 0, text, reply_size=size) or ""
        except DMError as exc:
            if exc.errno == errno.ENOBUFS and exc.command == TARGET_MSG.name and size < MAX_BUFFER_SIZE:
                size = min(size * 2, MAX_BUFFER_SIZE)
                continue
            if exc.errno == errno.ENOENT and region_id is not None:
                raise RegionNotFoundError(errno.ENOENT, exc.command, exc.device, exc.kernel_message,
                                          f"{describe(device)} has no statistics region {region_id}") from exc
            raise


def create_region(ctl: Control, device: DeviceId, *, start: int = 0, length: int | None = None,
                  area_size: int | None = None, areas: int | None = None, precise_timestamps: bool = False,
                  histogram: Sequence[int] = (), program_id: str = "-", aux_data: str = "-") -> int:
    """Start counting I/O to sectors ``start`` to ``start + length`` of the
    device (the whole device by default) and return the new region's id.

    The region is cut into areas of ``area_size`` sectors, or into
    ``areas`` areas (the kernel rounds the area size up, so there may be
    fewer: 9 sectors in 4 areas are 3 of 3 sectors), or kept whole.  ``histogram``: latency
    bounds in ns, increasing; ``precise_timestamps``: count times in ns
    instead of the kernel's ticks (turned on for bounds that are not whole
    milliseconds).  The kernel suspends the device for a moment to add it.
    """
    check_id(device)
    validate.sector_count(start, "start")
    if length is None:
        if start:
            raise ValidationError("create_region: a start needs a length")
        extent = "-"
    else:
        extent = f"{start}+{_positive(length, 'length')}"
    if area_size is not None and areas is not None:
        raise ValidationError("create_region: give area_size or areas, not both")
    step = f"/{_positive(areas, 'areas', _U32)}" if areas is not None else (
        str(_positive(area_size, "area_size")) if area_size is not None else "/1")
    features = _features(precise_timestamps, histogram)
    if length is not None and start + length > _U64:
        raise ValidationError(f"create_region: start + length is past sector {_U64}")
    # The feature count is always sent: without it a numeric program id
    # would be read as one.
    words = ["@stats_create", extent, step, str(len(features)), *features,
             _word(program_id, "program_id"), _word(aux_data, "aux_data")]
    answer = _send(ctl, device, " ".join(words)).strip()
    try:
        return int(answer)
    except ValueError:
        raise DMError(errno.EPROTO, TARGET_MSG.name, describe(device), None,
                      f"@stats_create answered {answer!r}, not a region id") from None


def _features(precise_timestamps: object, histogram: Sequence[int]) -> list[str]:
    """A region's optional words: precise timestamps (also for histogram
    bounds that are not whole milliseconds) and the histogram."""
    if isinstance(histogram, (str, bytes)) or not isinstance(histogram, (list, tuple, range)):
        raise ValidationError(f"histogram is a list of bounds in ns, not {histogram!r}")
    bounds: list[int] = list(histogram)
    for i, bound in enumerate(bounds):
        _positive(bound, "a histogram bound")
        if i and bound <= bounds[i - 1]:
            raise ValidationError(f"histogram bounds must increase: {bounds}")
    if not isinstance(precise_timestamps, bool):
        raise ValidationError(f"precise_timestamps is True or False, not {precise_timestamps!r}")
    precise = precise_timestamps or any(b % _MS for b in bounds)
    features = ["precise_timestamps"] if precise else []
    if bounds:
        features.append("histogram:" + ",".join(str(b if precise else b // _MS) for b in bounds))
    return features


def _region_id(region_id: object) -> int:
    if isinstance(region_id, Region):
        return region_id.region_id
    if isinstance(region_id, bool) or not isinstance(region_id, int) or not 0 <= region_id <= _S32:
        raise ValidationError(f"a region id is an int from 0 to {_S32}, not {region_id!r}")
    return region_id


def list_regions(ctl: Control, device: DeviceId, program_id: str | None = None) -> list[Region]:
    """The device's regions (only ``program_id``'s if given), by id."""
    check_id(device)
    text = "@stats_list" if program_id is None else f"@stats_list {_word(program_id, 'program_id')}"
    return [parse_region(line) for line in _send(ctl, device, text).splitlines() if line.strip()]


def parse_region(line: str) -> Region:
    """One line of ``@stats_list``'s answer."""
    try:
        rid, extent, step, program, aux, *options = line.split()
        start, length = extent.split("+")
        precise = "precise_timestamps" in options
        bounds: tuple[int, ...] = ()
        for option in options:
            if option.startswith("histogram:"):
                bounds = tuple(int(b) * (1 if precise else _MS) for b in option[10:].split(","))
        return Region(int(rid.rstrip(":")), int(start), int(length), int(step), program, aux, precise, bounds)
    except ValueError:
        raise ValidationError(f"not a @stats_list line: {line!r}") from None


def _find(ctl: Control, device: DeviceId, region: Region | int) -> Region:
    if isinstance(region, Region):
        return region
    rid = _region_id(region)
    for found in list_regions(ctl, device):
        if found.region_id == rid:
            return found
    raise RegionNotFoundError(errno.ENOENT, TARGET_MSG.name, describe(device), None,
                              f"{describe(device)} has no statistics region {rid}")


def area_counters(ctl: Control, device: DeviceId, region: Region | int, *, clear: bool = False,
                  first_area: int = 0, count: int | None = None) -> list[Counters]:
    """The counters of the region's areas (``count`` of them from
    ``first_area``, or all); with ``clear``, those areas' counters start
    again from zero as they are read (``@stats_print_clear``), so that each
    reading holds what happened since the last."""
    check_id(device)
    validate.unsigned(first_area, "first_area", _U64)
    window = [str(first_area), "-" if count is None else str(_positive(count, "count"))]
    reg = _find(ctl, device, region)
    words = ["@stats_print_clear" if clear else "@stats_print", str(reg.region_id)]
    if first_area or count is not None:
        words += window
    answer = _send(ctl, device, " ".join(words), reg.region_id)
    end = reg.start + reg.length
    return [parse_counters(line, reg.precise_timestamps, end) for line in answer.splitlines() if line.strip()]


def region_text(ctl: Control, device: DeviceId, region: Region | int, *, clear: bool = False) -> str:
    """The region's counters as the kernel prints them (``@stats_print``:
    one line per area, ``start+area_size`` then the 13 counters, times in
    the region's own unit, and the histogram's bins), which is what
    ``dmstats print`` shows; ``area_counters`` gives the same as typed
    values.  With ``clear`` the counters start again from zero."""
    check_id(device)
    rid = _region_id(region)
    return _send(ctl, device, f"{'@stats_print_clear' if clear else '@stats_print'} {rid}", rid)


def parse_counters(line: str, precise: bool, end: int | None = None) -> Counters:
    """One line of ``@stats_print``'s answer, times made ns; ``end``: the
    region's end, which the last area's length stops at (the kernel prints
    every area with the region's area size)."""
    try:
        extent, *values = line.split()
        start, step = (int(v) for v in extent.split("+"))
        numbers = [int(v) for v in values[:13]]
        if len(numbers) != 13 or len(values) > 14:
            raise ValueError
        bins = tuple(int(b) for b in values[13].split(":")) if len(values) == 14 else ()
    except ValueError:
        raise ValidationError(f"not a @stats_print line: {line!r}") from None
    scale = 1 if precise else _MS
    counted = [n * scale if f in _TIMES else n for f, n in zip(_FIELDS, numbers)]
    length = step if end is None else min(step, end - start)
    return Counters._make([start, length, *counted, bins])


def clear_region(ctl: Control, device: DeviceId, region: Region | int) -> None:
    """Set the region's counters back to zero (all but the I/Os in flight)."""
    check_id(device)
    rid = _region_id(region)
    _send(ctl, device, f"@stats_clear {rid}", rid)


def delete_region(ctl: Control, device: DeviceId, region: Region | int) -> None:
    """Stop counting the region; its id may be handed out again."""
    check_id(device)
    rid = _region_id(region)
    _send(ctl, device, f"@stats_delete {rid}", rid)


def set_aux_data(ctl: Control, device: DeviceId, region: Region | int, aux_data: str) -> None:
    """Replace the region's aux data (a word; ``-`` for none)."""
    check_id(device)
    rid = _region_id(region)
    _send(ctl, device, f"@stats_set_aux {rid} {_word(aux_data, 'aux_data')}", rid)


# -- groups ----------------------------------------------------------------------
# dmstats (libdevmapper) groups regions by a tag in the aux data of the
# group's first region, its leader: DMS_GROUP=<alias>:<region ids>#<aux data>.
# The kernel knows nothing of groups; reading and writing the same tag
# makes them dmstats' groups.

_GROUP_TAG = "DMS_GROUP="


class Group(NamedTuple):
    """A group of regions: its id is its leader's region id."""

    group_id: int
    regions: tuple[int, ...]
    alias: str  # "" if none
    aux_data: str  # the leader's own aux data ("-" if none)


def format_ranges(ids: Iterable[int]) -> str:
    """Region ids as dmstats writes them: ``0-2,5``."""
    ordered = sorted(set(ids))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_ranges(text: str) -> tuple[int, ...]:
    """``0-2,5`` as sorted region ids, read as libdevmapper (and the
    kernel's bitmap lists) read it: blanks around a number and empty items
    are allowed."""
    ids: set[int] = set()
    blank = " \t\n\v\f\r"
    for part in text.split(","):
        first, dash, last = part.partition("-")
        words = [first.strip(blank), last.strip(blank)]
        if not dash and not words[0]:
            continue
        if not all(w.isascii() and w.isdigit() for w in words[:1 + bool(dash)]):
            raise ValidationError(f"not a list of region ids: {text!r}")
        a, b = int(words[0]), int(words[1 if dash else 0])
        if a > b:
            raise ValidationError(f"not a list of region ids: {text!r}")
        ids.update(range(a, b + 1))
    return tuple(sorted(ids))


def parse_group_tag(region_id: int, aux_data: str) -> Group | None:
    """The group a region leads, from its aux data (None if it leads none)."""
    start = aux_data.find(_GROUP_TAG)
    if start < 0:
        return None
    alias, colon, rest = aux_data[start + len(_GROUP_TAG):].partition(":")
    if not colon:
        raise ValidationError(f"region {region_id}: a group tag without ':' in {aux_data!r}")
    members, _, own = rest.partition("#")
    ids = parse_ranges(members)
    if ids[0] != region_id:
        raise ValidationError(f"region {region_id}: a group tag led by region {ids[0]}: {aux_data!r}")
    return Group(region_id, ids, alias, own or "-")


def list_groups(ctl: Control, device: DeviceId) -> list[Group]:
    """The device's groups of regions, by id."""
    return _groups(list_regions(ctl, device))


def _groups(regions: Iterable[Region]) -> list[Group]:
    found = (parse_group_tag(r.region_id, r.aux_data) for r in regions)
    return [g for g in found if g is not None]


def create_group(ctl: Control, device: DeviceId, regions: Iterable[Region | int], alias: str = "") -> int:
    """Group existing regions (none in a group yet, histograms alike) as
    dmstats does; returns the group id, its first region's id."""
    check_id(device)
    ids = sorted({_region_id(r) for r in regions})
    if not ids:
        raise ValidationError("create_group: no regions")
    if alias:
        _check_alias(alias)
    listed = {r.region_id: r for r in list_regions(ctl, device)}
    grouped = {m for g in _groups(listed.values()) for m in g.regions}
    for rid in ids:
        if rid not in listed:
            raise RegionNotFoundError(errno.ENOENT, TARGET_MSG.name, describe(device), None,
                                      f"{describe(device)} has no statistics region {rid}")
        if rid in grouped:
            raise ValidationError(f"region {rid} of {describe(device)} is already in a group")
    if len({listed[rid].histogram_bounds for rid in ids if listed[rid].histogram_bounds}) > 1:
        raise ValidationError("the regions of a group have the same histogram bounds")
    leader = listed[ids[0]]
    own = leader.aux_data
    set_aux_data(ctl, device, leader, f"{_GROUP_TAG}{alias}:{format_ranges(ids)}#{own}")
    return leader.region_id


def delete_group(ctl: Control, device: DeviceId, group_id: int, *, regions: bool = False) -> None:
    """Undo a group: its first region gets its own aux data back; with
    ``regions``, every region of the group is deleted instead."""
    check_id(device)
    gid = _region_id(group_id)
    for group in list_groups(ctl, device):
        if group.group_id == gid:
            break
    else:
        raise RegionNotFoundError(errno.ENOENT, TARGET_MSG.name, describe(device), None,
                                  f"{describe(device)} has no statistics group {gid}")
    if not regions:
        set_aux_data(ctl, device, gid, group.aux_data)
        return
    for rid in reversed(group.regions):
        delete_region(ctl, device, rid)


# -- regions over a file -------------------------------------------------------------
# dmstats' file maps: a region over each extent of a file on a mapped
# device, grouped under the file's name, so the file's I/O is counted
# wherever its blocks are.

class FileRegions(NamedTuple):
    """The regions over a file's extents."""

    device: DevNo  # the mapped device that holds the file
    regions: tuple[int, ...]  # one per extent, in the file's order
    group_id: int | None  # None when not grouped


def create_file_regions(ctl: Control, file: str | os.PathLike[str] | int, *, group: bool = True,
                        alias: str | None = None, precise_timestamps: bool = False,
                        histogram: Sequence[int] = (), program_id: str = "dmstats") -> FileRegions:
    """A region over each extent of a regular file on a mapped device, as
    ``dmstats create --filemap`` makes them (``file``: a path, or a file
    descriptor open on it; its dirty pages are written back first so each
    block has its place).  With ``group`` they are one group whose alias is
    the file's name (none for a descriptor) unless ``alias`` is given.
    ``program_id`` is dmstats' by default so that dmstats (and its
    ``update_filemap``) sees them.  A file that cannot be mapped is an
    ``UnmappableFileError`` before anything is made; if a later step
    fails, the regions made so far are deleted again."""
    if alias is not None and not group:
        raise ValidationError("create_file_regions: an alias needs a group")
    _features(precise_timestamps, histogram)
    _word(program_id, "program_id")
    with _OpenFile(file) as (fd, name, is_path):
        if group and alias is None:
            alias = os.path.basename(name) if is_path else ""
        if alias:
            _check_alias(alias)
        devno, extents = _file_extents(ctl, fd, name)
    made: list[int] = []
    try:
        for extent in extents:
            made.append(create_region(ctl, devno, start=extent.start, length=extent.length,
                                      precise_timestamps=precise_timestamps, histogram=histogram,
                                      program_id=program_id))
        gid = create_group(ctl, devno, made, alias or "") if group else None
    except BaseException:
        _delete_quietly(ctl, devno, made)
        raise
    return FileRegions(devno, tuple(made), gid)


def update_file_regions(ctl: Control, file: str | os.PathLike[str] | int, group_id: int, *,
                        program_id: str = "dmstats") -> FileRegions:
    """Make a file's group (``create_file_regions``) follow the file's
    extents now, as ``dmstats update_filemap`` does: the regions of
    extents that went are deleted, a region is made for each new extent
    (with the group's histogram bounds and precision) and added.  When the
    group's first region went, or a new region has a lower id, the group is
    made again over its regions with its alias: its id is then its new first
    region's.  If a step fails, the regions it made are deleted again and
    the group is left over the regions it kept (those of the extents that
    went are not made again)."""
    if isinstance(group_id, bool) or not isinstance(group_id, int) or group_id < 0:
        raise ValidationError(f"a group id is an int from 0, not {group_id!r}")
    with _OpenFile(file) as (fd, name, _):
        devno, extents = _file_extents(ctl, fd, name, empty_ok=True)
    listed = {r.region_id: r for r in list_regions(ctl, devno, program_id)}
    found = {g.group_id: g for g in _groups(listed.values())}
    if group_id not in found:
        raise RegionNotFoundError(errno.ENOENT, TARGET_MSG.name, describe(devno), None,
                                  f"{describe(devno)} has no statistics group {group_id}")
    grp, leader = found[group_id], listed[group_id]
    wanted = {(e.start, e.length) for e in extents}
    kept: dict[tuple[int, int], int] = {}
    for rid in reversed(grp.regions):
        region = listed.get(rid)
        if region is not None and (region.start, region.length) in wanted:
            kept[(region.start, region.length)] = rid
        elif region is not None:
            delete_region(ctl, devno, rid)
    ids: list[int] = []
    made: list[int] = []
    try:
        for e in extents:
            this = kept.get((e.start, e.length))
            if this is None:
                this = create_region(ctl, devno, start=e.start, length=e.length,
                                     precise_timestamps=leader.precise_timestamps,
                                     histogram=leader.histogram_bounds, program_id=program_id)
                made.append(this)
            ids.append(this)
        return FileRegions(devno, tuple(ids), _regroup(ctl, devno, grp, ids))
    except BaseException:
        _delete_quietly(ctl, devno, made)
        try:
            _regroup(ctl, devno, grp, list(kept.values()))
        except (DMError, ValidationError):
            pass  # the failure being raised says more
        raise


def _regroup(ctl: Control, device: DeviceId, grp: Group, members: list[int]) -> int | None:
    """``grp`` over ``members`` now: its leader's tag rewritten while the
    leader stays first, else the group made again (None if no members)."""
    if members and grp.group_id == min(members):
        _retag(ctl, device, grp, members)
        return grp.group_id
    if grp.group_id in members:  # the leader stays, no longer first: its tag goes
        set_aux_data(ctl, device, grp.group_id, grp.aux_data)
    return create_group(ctl, device, members, grp.alias) if members else None


def _retag(ctl: Control, device: DeviceId, grp: Group, members: Iterable[int]) -> None:
    """The group's tag in its leader's aux data, listing ``members``."""
    set_aux_data(ctl, device, grp.group_id,
                 f"{_GROUP_TAG}{grp.alias}:{format_ranges(members)}#{grp.aux_data}")


def _check_alias(alias: str) -> None:
    _word(alias, "alias")
    if ":" in alias or "#" in alias:
        raise ValidationError(f"alias has no ':' or '#': {alias!r}")


class _OpenFile:
    """A path opened read-only for the block (a descriptor is used as it is):
    (descriptor, name, whether a path was given)."""

    def __init__(self, file: str | os.PathLike[str] | int) -> None:
        self.file, self.fd = file, -1

    def __enter__(self) -> tuple[int, str, bool]:
        if isinstance(self.file, bool) or not isinstance(self.file, (int, str, os.PathLike)):
            raise ValidationError(f"file is a path or a file descriptor, not {self.file!r}")
        if isinstance(self.file, int):
            return self.file, f"fd {self.file}", False
        name = os.fspath(self.file)
        self.fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        return self.fd, name, True

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _file_extents(ctl: Control, fd: int, name: str, *, empty_ok: bool = False) -> tuple[DevNo, list[fiemap.Extent]]:
    """The mapped device that holds the regular file ``fd``, and the file's
    extents on it; ``UnmappableFileError`` for a file that cannot be mapped."""
    # In libdevmapper's order: on btrfs a file's st_dev names no block
    # device, so that is asked first.
    if fiemap.on_btrfs(fd):
        raise UnmappableFileError("no_physical_extents",
                                  f"{name}: btrfs gives no physical extents (FIEMAP has its own addresses)")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnmappableFileError("not_regular", f"{name} is not a regular file")
    devno = DevNo(os.major(st.st_dev), os.minor(st.st_dev))
    try:
        ctl.info(devno)
    except DeviceNotFoundError:
        raise UnmappableFileError("not_device_mapper",
                                  f"{name} is not on a device-mapper device ({devno})") from None
    extents = fiemap.file_extents(fd)
    if not extents and not empty_ok:
        raise UnmappableFileError("no_extents", f"{name}: no allocated extents to map")
    if any(e.length == 0 for e in extents):
        raise UnmappableFileError("short_extent", f"{name}: a piece of it is shorter than a sector")
    return devno, extents


def _delete_quietly(ctl: Control, device: DeviceId, regions: Iterable[int]) -> None:
    for rid in reversed(list(regions)):
        try:
            delete_region(ctl, device, rid)
        except DMError:
            pass  # the failure being raised says more
