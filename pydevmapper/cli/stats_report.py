# SPDX-License-Identifier: LGPL-2.1-or-later
"""The reports of ``dmsetup stats`` (``list`` and ``report``), as dmsetup
1.02.185 builds them on libdm: its walk of a device's regions (every area,
then a row per region -- for ``report`` and ``list -v`` only those of two
areas or more -- then the groups), sizes in libdm's units, the derived
figures over the interval, the histogram strings.  Also the rows of other
commands' ``-c`` reports that ask for statistics fields.
"""

from __future__ import annotations

import struct
from functools import partial

from pydevmapper.cli.report import Keyed
from pydevmapper.cli.session import Failed, Session
from pydevmapper.cparse import UINT64_MAX, atoi, strtoul

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from pydevmapper.cli.report import Options, Row
    from pydevmapper.stats import Counters, Group, Region
    from pydevmapper.types import DeviceId, DeviceInfo

PROGRAM_ID = "dmstats"  # libdm's DM_STATS_PROGRAM_ID
_NS = 1_000_000_000
_NO_GROUP = UINT64_MAX  # libdm's DM_STATS_GROUP_NONE
# libdm's walk flags (DM_STATS_WALK_*)
AREA, REGION, GROUP, SKIP_SINGLE_AREA = 1 << 48, 1 << 49, 1 << 50, 1 << 51

# -- the report's defaults (dmsetup's _report_init for stats) -------------------
_DEV_INFO = "statsname,group_id,region_id,obj_type"
_AREA_INFO = "area_id,area_start,area_len"
_REGION_INFO = _DEV_INFO + ",region_start,region_len,area_count,area_len"
_AREA_INFO_FULL = _DEV_INFO + ",region_start,region_len,area_count,area_id,area_start,area_len"
_METRICS = ("reads_merged_per_sec,writes_merged_per_sec,reads_per_sec,writes_per_sec,"
            "read_size_per_sec,write_size_per_sec,avg_request_size,queue_size,util,"
            "await,read_await,write_await")
_COUNTERS = ("read_count,reads_merged_count,read_sector_count,read_time,read_ticks,"
             "write_count,writes_merged_count,write_sector_count,write_time,write_ticks,"
             "in_progress_count,io_ticks,queue_ticks")
_HIST = _REGION_INFO + ",util,await"


def default_fields(s: Session, subcommand: str) -> str:
    if subcommand == "list":
        tail = ",hist_bins,hist_bounds" if s.has("histogram") else ",program_id"
        return (_AREA_INFO_FULL if s.has("verbose") else _REGION_INFO) + tail
    if s.has("histogram"):
        return _HIST + (",hist_percent_bounds" if s.has("relative") else ",hist_count_bounds")
    return f"{_DEV_INFO},{_AREA_INFO}," + (_COUNTERS if s.has("raw") else _METRICS)

# -- sizes and units, as libdm shows and reads them ---------------------------------
class Units:
    """--units: libdm's unit character and factor (dm_units_to_factor)."""

    def __init__(self, text: str) -> None:
        self.factor, self.char = units_to_factor(text)  # factor 0: not a unit

    def size(self, sectors: int) -> str:
        return size_string(sectors, self.char, self.factor)


def units_to_factor(text: str) -> tuple[int, str]:
    """(factor, unit character); factor 0 for a unit libdm does not know."""
    value, custom, rest = 1, 0.0, text
    if text[:1].isdigit():
        end = 0
        while end < len(text) and (text[end].isdigit() or text[end] == "."):
            end += 1
        try:
            custom = float(text[:end])
        except ValueError:
            return 0, ""
        value = strtoul(text)[0]
        if abs(value - custom) < 1e-9:
            custom = 0.0
        rest = text[end:]
    char = rest[:1] if value == 1 else "U"
    unit = rest[:1]
    powers = "kmgtpe"
    if unit in ("h", "H", "r", "R"):
        value, multiplier, char = 1, 1, unit
    elif unit in ("b", "B"):
        multiplier = 1
    elif unit in ("s", "S"):
        multiplier = 512
    elif unit and unit in powers:
        multiplier = 1024 ** (powers.index(unit) + 1)
    elif unit and unit in powers.upper():
        multiplier = 1000 ** (powers.upper().index(unit) + 1)
    else:
        return 0, char
    if custom:
        return int(custom * multiplier) & UINT64_MAX, char
    return (value * multiplier) & UINT64_MAX, char


def size_string(sectors: int, unit: str, factor: int) -> str:
    """libdm's dm_size_to_string(sectors, unit, use_si_units=1, factor, no suffix)."""
    if sectors == 0:
        return "0"
    size = (sectors * 512) & UINT64_MAX
    if unit in "hHrR":
        base = 1000 if unit in "HR" else 1024
        letters = "EPTGMK" if base == 1000 else "eptgmk"
        byte, s = base ** 6, 0
        while s < 6 and size < byte:
            byte //= base
            s += 1
        suffix = letters[s] if s < 6 else ("B" if base == 1000 else "b")
        precision = 0 if suffix in "bB" else 2
        return f"{size / byte:.{precision}f}{suffix}"
    precision = 0 if unit.upper() in "BS" else 2
    return f"{size / factor:.{precision}f}"


# -- libdm's derived figures ------------------------------------------------------
def _f32(x: float) -> float:
    """x as a C float."""
    value: float = struct.unpack("f", struct.pack("f", x))[0]
    return value


def _percent(numerator: int, denominator: int) -> int:
    """dm_make_percent: a fraction in millionths of a percent."""
    hundred = 100_000_000
    if not denominator:
        return hundred
    if not numerator:
        return 0
    if numerator == denominator:
        return hundred
    percent = int(hundred * (numerator / denominator))
    return hundred - 1 if percent == hundred else 1 if percent == 0 else percent


def _percent_text(percent: int) -> str:
    """dm_report_field_percent: two decimals, never 0.00 or 100.00 for
    what is neither."""
    one, hundred = 1_000_000, 100_000_000
    f = _f32(_f32(percent) / one)
    r = _f32(one * _f32(0.01))
    if 0 < percent < r:
        f = _f32(0.01)
    elif hundred - r < percent < hundred:
        f = _f32(_f32(hundred - r) / one)
    return f"{f:.2f}"


def _utilization(c: Counters, interval_ns: int) -> float:
    return min(c.io_time, interval_ns) / interval_ns


def _service_time(c: Counters, interval_ns: int) -> float:
    """libdm's svctm in ms: through a truncated percent of a C float."""
    tput = _NS * (c.reads + c.writes) / interval_ns
    util = _utilization(c, interval_ns) * 100
    if int(tput) == 0 or int(util) == 0:
        return 0.0
    return (_NS * _f32(_f32(int(util)) / 1_000_000)) / (100.0 * tput) / 1e6


def _per_io(total: int, ios: int) -> float:
    return total / ios if total and ios else 0.0


def _bits(x: float) -> int:
    """A double's bits as a uint64: dmsetup keeps its rates as doubles in
    number fields, which libdm sorts and selects as uint64 (so the order is
    the numbers', and ``reads_per_sec<5`` keeps only rates of 0)."""
    bits: int = struct.unpack("<Q", struct.pack("<d", x))[0]
    return bits


def _two(x: float) -> Keyed:
    return Keyed(f"{x:.2f}", _bits(x))


def _sized(sectors: float, units: Units) -> Keyed:
    return Keyed(units.size(int(sectors)), _bits(sectors))


def _util(c: Counters, interval_ns: int) -> Keyed:
    percent = _percent(int(1_000_000 * _utilization(c, interval_ns)), 1_000_000)
    return Keyed(_percent_text(percent), percent)


# libdm's derived figures as dmsetup shows them, keyed by the value libdm
# sorts and selects them by: (counters, interval in ns, units) -> value.
# Merges per second are divided by the interval in ns, not seconds, as
# libdm 1.02.185 does.
_FIGURES: dict[str, Callable[[Counters, int, Units], Keyed | int]] = {
    "reads_merged_per_sec": lambda c, i, u: _two(c.reads_merged / i),
    "writes_merged_per_sec": lambda c, i, u: _two(c.writes_merged / i),
    "reads_per_sec": lambda c, i, u: _two(c.reads * _NS / i),
    "writes_per_sec": lambda c, i, u: _two(c.writes * _NS / i),
    "read_size_per_sec": lambda c, i, u: _sized(c.read_sectors * float(_NS) / i, u),
    "write_size_per_sec": lambda c, i, u: _sized(c.write_sectors * float(_NS) / i, u),
    "avg_request_size": lambda c, i, u: _sized(_per_io(c.read_sectors + c.write_sectors, c.reads + c.writes), u),
    "queue_size": lambda c, i, u: _two(c.weighted_io_time / i),
    "await": lambda c, i, u: _two(_per_io(c.read_time + c.write_time, c.reads + c.writes) / 1e6),
    "read_await": lambda c, i, u: _two(_per_io(c.read_time, c.reads) / 1e6),
    "write_await": lambda c, i, u: _two(_per_io(c.write_time, c.writes) / 1e6),
    "throughput": lambda c, i, u: _two(_NS * (c.reads + c.writes) / i),
    "service_time": lambda c, i, u: _two(_service_time(c, i)),
    "util": lambda c, i, u: _util(c, i),
    "interval_ns": lambda c, i, u: i,
    "interval": lambda c, i, u: Keyed(f"{i / _NS:2.6f}", _bits(i / _NS)),
}


def metric(field: str, c: Counters, interval_ns: int, units: Units) -> Keyed | int:
    """One of libdm's derived figures: its text as dmsetup shows it, its key
    as libdm sorts and selects it."""
    return _FIGURES[field](c, interval_ns, units)


_COUNTER_OF = {
    "read_count": "reads", "reads_merged_count": "reads_merged", "read_sector_count": "read_sectors",
    "read_time": "read_time", "read_ticks": "read_busy_time", "write_count": "writes",
    "writes_merged_count": "writes_merged", "write_sector_count": "write_sectors",
    "write_time": "write_time", "write_ticks": "write_busy_time", "in_progress_count": "in_flight",
    "io_ticks": "io_time", "queue_ticks": "weighted_io_time",
}

# -- libdm's histogram strings (dm_histogram_to_string) ------------------------------
# Its flags (DM_HISTOGRAM_*): time suffixes, values, values as percentages,
# and which bounds each bin is shown with.
_SUFFIX, _VALUES, _PERCENT, _LOWER, _UPPER, _RANGE = 0x1, 0x2, 0x4, 0x10, 0x20, 0x30
_HISTOGRAMS = {
    "hist_count": _VALUES, "hist_count_bounds": _VALUES | _LOWER, "hist_count_ranges": _VALUES | _RANGE,
    "hist_percent": _VALUES | _PERCENT, "hist_percent_bounds": _VALUES | _PERCENT | _LOWER,
    "hist_percent_ranges": _VALUES | _PERCENT | _RANGE, "hist_bounds": _LOWER, "hist_ranges": _RANGE,
}


def _scaled(ns: int) -> str:
    """A bound in the largest unit that divides it whole."""
    for unit, size in (("s", _NS), ("ms", 1_000_000), ("us", 1000)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _bounds_text(lower: int, upper: int, flags: int, width: int) -> str:
    """libdm's _make_bounds_string: one bin's bound(s), padded to ``width``."""
    bounds = flags & _RANGE
    low, up = (_scaled(lower), _scaled(upper)) if flags & _SUFFIX else (str(lower), str(upper))
    sep = ":" if flags & _VALUES else ""
    if bounds == _LOWER:
        return f"{low:>{width}}{sep}"
    if upper == UINT64_MAX:  # the last bin, unbounded: only "greater than" its lower bound
        return f"{'>' + low:>{width}}{sep}"
    if bounds == _UPPER:
        return f"{up:>{width}}{sep}"
    return f"{low}-{up}{sep}"


def histogram_text(bounds: tuple[int, ...], counts: tuple[int, ...], flags: int, width: int) -> str:
    """libdm's dm_histogram_to_string of every bin: ``bounds`` in ns (one
    fewer than the bins), ``counts`` per bin; ``width`` -1 for no padding
    (--noheadings), 0 for libdm's own column widths."""
    values = flags & _VALUES
    width = 0 if width < 0 or not values else width or 6  # libdm's COUNT_WIDTH and PERCENT_WIDTH
    minwidth = width
    total = sum(counts)
    uppers = (*bounds, UINT64_MAX)
    out: list[str] = []
    bounds_part, sep = "", ":" if values and not width else ""
    for b, count in enumerate(counts):
        if flags & _RANGE:
            bound_width = (6 if flags & _SUFFIX else 10) if width else 0
            lower = uppers[b - 1] if b else 0
            bounds_part = _bounds_text(lower, uppers[b], flags, bound_width)
            sep = "," if width or not values else ":"
            # A bound longer than its column takes from the value's padding.
            width = max(width - (len(bounds_part) - (bound_width + 1)) if width else 0, 0)
        if b == len(counts) - 1:
            sep = ""
        if flags & _PERCENT:
            lower = uppers[b - 1] if b else 0
            share = _percent(count, total) if total and count and uppers[b] != lower else 0
            out.append(f"{bounds_part}{_f32(_f32(share) / 1_000_000):{width}.2f}%{sep}")
        elif values:
            out.append(f"{bounds_part}{count:{width}d}{sep}")
        else:
            out.append(f"{bounds_part}{sep}")
        width = minwidth
    return "".join(out)

# -- the report ----------------------------------------------------------------------
class Report:
    """A stats report's rows (``list`` or ``report``): the switches read
    once, then libdm's walk of each device's regions."""

    def __init__(self, s: Session, subcommand: str, opts: Options | None, units: Units) -> None:
        self.s, self.subcommand, self.opts, self.units = s, subcommand, opts, units
        self.interval_ns = _NS * (atoi(s.value("interval")) if s.has("interval") else 1)
        self.cycle_start: float | None = None  # when this run's first device was read
        used: set[str] = set()
        if opts is not None:
            selected: tuple[str, ...] = tuple(getattr(opts.selection, "fields", ()))
            used = {f.id for f in opts.fields} | {f.id for f, _ in opts.sort} | set(selected)
        self.figures = [f for f in _FIGURES if f in used]  # the derived figures the report uses
        self.histograms = [f for f in _HISTOGRAMS if f in used]
        self.hist_width = -1 if s.has("noheadings") else 0
        self.hist_suffix = 0 if s.has("notimesuffix") else _SUFFIX
        self.first_cycle = True

    # -- the walk's rows -----------------------------------------------------------
    def rows(self, name: str, dev: DeviceId, own: Callable[[], Row]) -> list[Row]:
        """dmsetup's _display_info_cols for one device with a stats report;
        ``own`` gives the device's own fields (name, uuid, ...) if shown."""
        from pydevmapper import stats
        from pydevmapper.cli import report_uses

        s, opts = self.s, self.opts
        assert opts is not None
        # Every stats report walks the regions; all but list's read the
        # counters.  Fields only selected on count as used, as in libdm.
        counted = self.subcommand != "list" or report_uses(opts, "stats_")
        program = "" if s.has("allprograms") else (s.value("programid") if s.has("programid") else PROGRAM_ID)
        regions = list_regions(s, dev, program or None, quiet=counted)
        if not regions:
            return []
        held = Handle(s, regions)
        counters: dict[int, list[Counters]] = {}
        if counted:
            for region in regions:
                counters[region.region_id] = s.call("message", dev, partial(
                    stats.area_counters, s.control, dev, region, clear=True))
            self._tick()
        device_sections = ("name_", "info_", "deps_", "tree_", "splitname_")
        info = own() if any(report_uses(opts, section) for section in device_sections) else {}
        rows: list[Row] = []
        for item, area in held.walk(self._walk_flags()):
            if isinstance(item, stats.Group):
                row = self._group_row(name, held, item, counters if counted else None)
            else:
                row = self._row(name, held, item, area, counters.get(item.region_id))
            row.update(info)
            rows.append(row)
        return rows

    def _tick(self) -> None:
        """dmsetup's interval: the first is taken to be --interval; later
        ones are measured between the first device read in each run."""
        import time

        if not self.first_cycle:
            return
        now = time.monotonic()
        if self.cycle_start is not None:
            self.interval_ns = int((now - self.cycle_start) * _NS)
        self.cycle_start = now
        self.first_cycle = False

    def _walk_flags(self) -> int:
        """dmsetup's _statstype: --area/--region/--group, else regions and
        groups; everything, but no one-area region twice, for ``list -v``
        and a plain ``report``."""
        s = self.s
        chosen = (AREA if s.has("area") else 0) | (REGION if s.has("region") else 0) | (
            GROUP if s.has("group") else 0)
        flags = chosen or REGION | GROUP
        if (self.subcommand == "list" and s.has("verbose")) or (self.subcommand == "report" and not chosen):
            flags |= AREA | REGION | GROUP | SKIP_SINGLE_AREA
        return flags

    def _row(self, name: str, held: Handle, r: Region, area: int | None,
             areas: list[Counters] | None) -> Row:
        size = self._size
        step = r.area_size
        # Read with its counters, libdm takes a region's length from the
        # areas the kernel printed: a short last area counts whole.
        length = r.length if areas is None else r.areas * step
        if area is None:  # libdm's aggregate row: its area cursor is the walk flag itself
            area_start, offset, kind = (r.start + step * REGION) & UINT64_MAX, (step * REGION) & UINT64_MAX, "region"
        else:
            area_start, offset, kind = r.start + step * area, step * area, "area"
        group = held.group_of.get(r.region_id)
        # An ungrouped region's "-" is keyed as dmsetup meant (its key is a
        # pointer into a returned stack frame, like a group's region range).
        row: Row = {
            "stats_name": (group.alias if group is not None else "") or name,
            "group_id": Keyed("-", _NO_GROUP) if group is None else group.group_id, "region_id": r.region_id,
            "obj_type": kind, "region_start": size(r.start), "region_len": size(length), "area_count": r.areas,
            "area_id": area or 0, "area_start": size(area_start), "area_len": size(step),
            "area_offset": size(offset), "program_id": "" if r.program_id.startswith("-") else r.program_id,
            "user_data": held.aux[r.region_id], "precise": _int_as_string(int(r.precise_timestamps)),
            "hist_bins": _int_as_string(len(r.histogram_bounds) + 1 if r.histogram_bounds else 0),
        }
        counted = None
        if areas is not None:
            from pydevmapper.stats import Counters

            counted = areas[area] if area is not None else Counters.total(areas)
            self._counted(row, counted)
        self._histograms(row, r.histogram_bounds, counted)
        return row

    def _group_row(self, name: str, held: Handle, g: Group, counters: dict[int, list[Counters]] | None) -> Row:
        """A group's row: its regions taken as one (libdm's group aggregate)."""
        from pydevmapper.stats import Counters, format_ranges

        size = self._size
        leader = held.regions[g.group_id]
        members = [held.regions[m] for m in g.regions]
        length = sum(m.length if counters is None else m.areas * m.area_size for m in members)
        row: Row = {
            # dmsetup's key for a group's region range is a pointer into a
            # returned stack frame; the group id is what it meant.
            "stats_name": g.alias or name, "group_id": g.group_id,
            "region_id": Keyed(format_ranges(g.regions), g.group_id),
            "obj_type": "group", "region_start": size(leader.start), "region_len": size(length),
            "area_count": 1, "area_id": 0, "area_start": size(leader.start), "area_len": size(length),
            "area_offset": size(0), "program_id": PROGRAM_ID, "user_data": "",
            "precise": _int_as_string(int(leader.precise_timestamps)),
            "hist_bins": _int_as_string(0),  # libdm has none for groups
        }
        counted = None
        if counters is not None:
            counted = Counters.total(a for m in g.regions for a in counters[m])
            self._counted(row, counted)
        self._histograms(row, leader.histogram_bounds, counted)
        return row

    def _size(self, sectors: int) -> Keyed:
        """A size field: shown in the report's units, keyed by its sectors
        (libdm selects sizes as doubles)."""
        return Keyed(self.units.size(sectors), float(sectors))

    def _counted(self, row: Row, c: Counters) -> None:
        """The counters and, of the derived figures, those the report uses."""
        for field, attr in _COUNTER_OF.items():
            row[field] = getattr(c, attr)
        for field in self.figures:
            row[field] = metric(field, c, self.interval_ns, self.units)

    def _histograms(self, row: Row, bounds: tuple[int, ...], c: Counters | None) -> None:
        """The histogram fields the report uses: empty without bounds, zero
        counts when the counters were not read (a listing)."""
        for field in self.histograms:
            if not bounds:
                row[field] = ""
                continue
            counts = c.histogram if c is not None else (0,) * (len(bounds) + 1)
            row[field] = histogram_text(bounds, counts, _HISTOGRAMS[field] | self.hist_suffix, self.hist_width)


def _int_as_string(value: int) -> Keyed:
    """A string field dmsetup fills with libdm's int formatter: shown as the
    number, while libdm sorts and selects it as a string read from the
    number's bytes (``precise=1`` selects nothing, ``precise=""`` the 0s)."""
    return Keyed(str(value), (value & UINT64_MAX).to_bytes(8, "little").split(b"\0", 1)[0].decode("latin-1"))


def list_regions(s: Session, dev: DeviceId, program: str | None, quiet: bool) -> list[Region] | None:
    """The device's regions of ``program`` (all for None); ``quiet``: a
    failure gives None, as dm_stats_populate's reports nothing."""
    from pydevmapper import stats
    from pydevmapper.errors import DMError

    try:
        return stats.list_regions(s.control, dev, program)
    except DMError as exc:
        if quiet:
            return None
        raise s.failure("message", dev, exc) from None


def device_rows(s: Session, dev: DeviceInfo, own: Callable[[], Row]) -> list[Row]:
    """The rows of another command's ``-c`` report that asks for statistics
    fields: those ``stats report`` shows when counters are asked for, else
    those of ``stats list``.  (dmsetup 1.02.185 walks nothing there: it
    crashes reading the counters, and without them shows one row of its
    cursor's stale state.)"""
    opts = s.plan.report
    assert opts is not None  # needs_stats comes from the report's fields
    units = Units(s.value("units") or "" if s.has("units") else "h")
    if not units.factor:
        s.error("Invalid --units argument.")
        raise Failed()
    from pydevmapper.cli import report_uses

    walk = Report(s, "report" if report_uses(opts, "stats_") else "list", opts, units)
    return walk.rows(dev.name, dev.devno, own)

class Handle:
    """A device's regions as libdm holds them once listed: its own reading
    of each region's aux data (none when it starts with '-'; the last
    character cut when options follow it, a libdm 1.02.185 defect) and the
    groups dmstats tags in it."""

    def __init__(self, s: Session, regions: list[Region]) -> None:
        from pydevmapper import stats
        from pydevmapper.errors import ValidationError

        self.regions = {r.region_id: r for r in regions}
        self.aux: dict[int, str] = {}
        self.groups: dict[int, Group] = {}
        self.group_of: dict[int, Group] = {}
        for r in regions:
            aux = "" if r.aux_data.startswith("-") else (
                r.aux_data[:-1] if r.precise_timestamps or r.histogram_bounds else r.aux_data)
            try:
                group = stats.parse_group_tag(r.region_id, aux) if aux else None
            except ValidationError:
                s.error(f"Failed to parse group descriptor from region_id {r.region_id} aux_data:'{aux}'")
                group = None
            if group is not None:
                self.groups[group.group_id] = group
                aux = "" if group.aux_data == "-" else group.aux_data
            self.aux[r.region_id] = aux
        for gid, group in sorted(self.groups.items()):
            present = tuple(m for m in group.regions if m in self.regions or m == gid)
            if gid > 0:  # libdm's check skips the group of region 0
                for m in group.regions:
                    if m not in self.regions:
                        s.error(f"Group descriptor {gid} contains non-existent region_id {m}.")
            else:
                present = group.regions
            group = group._replace(regions=present)
            self.groups[gid] = group
            for m in present:
                if m in self.regions:
                    self.group_of[m] = group

    def walk(self, flags: int) -> list[tuple[Region | Group, int | None]]:
        """libdm's stats walk: every area, then the regions (with
        SKIP_SINGLE_AREA, those of two areas or more), then the groups;
        (region, area), (region, None) or (group, None) per row."""
        regions = [self.regions[rid] for rid in sorted(self.regions)]
        rows: list[tuple[Region | Group, int | None]] = []
        if flags & AREA:
            rows += [(r, i) for r in regions for i in range(r.areas)]
        if flags & REGION:
            rows += [(r, None) for r in regions if not (flags & SKIP_SINGLE_AREA and r.areas < 2)]
        if flags & GROUP:
            rows += [(g, None) for _, g in sorted(self.groups.items())]
        return rows
