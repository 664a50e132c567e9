# SPDX-License-Identifier: LGPL-2.1-or-later
"""``dmsetup stats`` and ``dmstats``: statistics regions made, listed,
printed, cleared and deleted through ``pydevmapper.stats``, with the output,
messages and exit statuses of dmsetup 1.02.185.

The flow is dmsetup's for a command with subcommands: the ``-c`` report is
set up first (so a bad ``-o`` fails any subcommand), then the subcommand
runs once per device argument (or for every device), then the report of
``list`` and ``report`` is printed.  ``list`` and ``report`` show libdm's
walk of a device's regions: every area, then a row per region (for
``report`` and ``list -v`` only those of two areas or more), sizes in
libdm's units, rates as libdm computes them over the interval (the first
one is taken to be ``--interval``, 1 s by default, as dmstats does).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial

from pydevmapper.cli import report, report_options
from pydevmapper.cli.session import Failed, Plan, Session
from pydevmapper.cparse import atoi, strtoul

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.cli.report import Options, Row
    from pydevmapper.stats import Counters, Group, Region
    from pydevmapper.types import DeviceId

    Subcommand = Callable[["_Stats", "str | None"], None]

PROGRAM_ID = "dmstats"  # libdm's DM_STATS_PROGRAM_ID
_NS = 1_000_000_000
_U64 = (1 << 64) - 1
# libdm's walk flags (DM_STATS_WALK_*)
AREA, REGION, GROUP, SKIP_SINGLE_AREA = 1 << 48, 1 << 49, 1 << 50, 1 << 51

# Each subcommand's line in the usage, in dmsetup's order.
_HELP = (
    ("help", ""),
    ("clear", "[--allregions|--regionid id] [--alldevices|<device>...] "),
    ("create", "[--start <start> [--length <len>]\n\t    [--areas <nr_areas>] [--areasize <size>] \n"
               "\t    [--programid <id>] [--userdata <data> ] \n"
               "\t    [--bounds histogram_boundaries] [--precise] \n"
               "\t    [--segments] [--alldevices|<device>...] "),
    ("create", "--filemap [--nogroup] [--nomonitor] [--follow mode]\n"
               "\t    [--programid <id>] [--userdata <data> ] \n"
               "\t    [--bounds histogram_boundaries] [--precise] <file_path>"),
    ("delete", "[--allprograms|--programid id] \n\t    [--allregions|--regionid id] \n"
               "\t    [--alldevices|<device>...] "),
    ("group", "[--alias NAME] --regions <regions>\n"
              "\t    [--allprograms|--programid id] [--alldevices|<device>...] "),
    ("list", "[--allprograms|--programid id] [--allregions|--regionid id] "),
    ("print", "[--clear] [--allprograms|--programid id] \n\t    [--allregions|--regionid id] \n"
              "\t    [--alldevices|<device>...] "),
    ("report", "[--interval <seconds>] [--count <cnt>]\n"
               "\t    [--units <u>] [--programid <id>] [--regionid <id>] \n"
               "\t    [-o <fields>] [-O|--sort <sort_fields>]\n"
               "\t    [-S|--select <selection>] [--nameprefixes]\n"
               "\t    [--noheadings] [--separator <separator>]\n"
               "\t    [--allprograms|--programid id] [<device>...]"),
    ("ungroup", "--groupid <id> [--allprograms|--programid id] \n\t    [--alldevices|<device>...] "),
    ("update_filemap", "--groupid <id> \n\t    [--nomonitor] [--follow mode] <file_path>"),
    ("version", ""),
)
_SUBCOMMANDS = frozenset(name for name, _ in _HELP)


def usage(base: str) -> str:
    """dmsetup's _stats_usage; ``base``: "dmstats" or "dmsetup stats"."""
    return ("Usage:\n\n"
            f"{base}\n"
            "        [-h|--help]\n"
            "        [-v|--verbose [-v|--verbose ...]]\n"
            "        [--areas <nr_areas>] [--areasize <size>]\n"
            "        [--userdata <data>] [--clear]\n"
            "        [--count <count>] [--interval <seconds>]\n"
            "        [-o <fields>] [-O|--sort <sort_fields>]\n"
            "\t      [--programid <id>]\n"
            "        [--start <start>] [--length <length>]\n"
            "        [--segments] [--units <units>]\n\n"
            + "".join(f"\t{name} {text}\n" for name, text in _HELP)
            + "\n<device> may be device name or (if only one) -u <uuid> or -j <major> -m <minor>\n"
            "<fields> are comma-separated.  Use 'help -c' for list.\n\n")


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
        self.factor, self.char = _units_to_factor(text)  # factor 0: not a unit

    def size(self, sectors: int) -> str:
        return size_string(sectors, self.char, self.factor)


def _units_to_factor(text: str) -> tuple[int, str]:
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
        return int(custom * multiplier) & _U64, char
    return (value * multiplier) & _U64, char


def size_string(sectors: int, unit: str, factor: int) -> str:
    """libdm's dm_size_to_string(sectors, unit, use_si_units=1, factor, no suffix)."""
    if sectors == 0:
        return "0"
    size = (sectors * 512) & _U64
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


def size_from_string(s: Session, text: str, name: str) -> int:
    """dmsetup's _size_from_string: bytes; a plain number is sectors; an
    unknown unit leaves the number as bytes."""
    value, end, _ = strtoul(text)
    if end == 0:
        s.error(f'Invalid {name} argument: "{text}"')
        raise Failed()
    rest = text[end:]
    if not rest:
        return (value * 512) & _U64
    factor, _ = _units_to_factor(rest)
    return (value * factor) & _U64 if factor else value


def bounds_from_string(s: Session, text: str) -> list[int]:
    """libdm's dm_histogram_bounds_from_string: ns; a bound without a unit
    takes the one before it."""
    bounds: list[int] = []
    mult, i = 1, 0
    while True:
        ch = text[i:i + 1]
        if not ch or ch not in "0123456789,muns":
            s.error(f"Invalid character in histogram: {ch}")
            raise Failed()
        if ch == ",":
            s.error(f"Empty histogram bin not allowed: {text}")
            raise Failed()
        value, end, _ = strtoul(text, 10, i)
        i = end
        if text[i:i + 1] == "s":
            mult, i = _NS, i + 1
        elif text[i + 1:i + 2] == "s":
            units = {"m": 1_000_000, "u": 1000, "n": 1}
            if text[i] not in units:
                s.error(f"Invalid character in histogram: {text[i]}")
                raise Failed()
            mult, i = units[text[i]], i + 2
        elif text[i:i + 1] == ",":
            i += 1
        elif i < len(text):
            s.error(f"Invalid character in histogram: {text[i]}")
            raise Failed()
        if text[i:i + 1] == ",":
            i += 1
        bounds.append((value * mult) & _U64)
        if i >= len(text):
            return bounds


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


def _service_time(c: Counters, interval_ns: int) -> str:
    """libdm's svctm: through a truncated percent of a C float."""
    tput = _NS * (c.reads + c.writes) / interval_ns
    util = _utilization(c, interval_ns) * 100
    if int(tput) == 0 or int(util) == 0:
        return "0.00"
    return f"{(_NS * _f32(_f32(int(util)) / 1_000_000)) / (100.0 * tput) / 1e6:.2f}"


def _per_io(total: int, ios: int) -> float:
    return total / ios if total and ios else 0.0


# libdm's derived figures, formatted as dmsetup shows them: (counters,
# interval in ns, units) -> text.  Merges per second are divided by the
# interval in ns, not seconds, as libdm 1.02.185 does.
_FIGURES: dict[str, Callable[[Counters, int, Units], str]] = {
    "reads_merged_per_sec": lambda c, i, u: f"{c.reads_merged / i:.2f}",
    "writes_merged_per_sec": lambda c, i, u: f"{c.writes_merged / i:.2f}",
    "reads_per_sec": lambda c, i, u: f"{c.reads * _NS / i:.2f}",
    "writes_per_sec": lambda c, i, u: f"{c.writes * _NS / i:.2f}",
    "read_size_per_sec": lambda c, i, u: u.size(int(c.read_sectors * float(_NS) / i)),
    "write_size_per_sec": lambda c, i, u: u.size(int(c.write_sectors * float(_NS) / i)),
    "avg_request_size": lambda c, i, u: u.size(int(_per_io(c.read_sectors + c.write_sectors, c.reads + c.writes))),
    "queue_size": lambda c, i, u: f"{c.weighted_io_time / i:.2f}",
    "await": lambda c, i, u: f"{_per_io(c.read_time + c.write_time, c.reads + c.writes) / 1e6:.2f}",
    "read_await": lambda c, i, u: f"{_per_io(c.read_time, c.reads) / 1e6:.2f}",
    "write_await": lambda c, i, u: f"{_per_io(c.write_time, c.writes) / 1e6:.2f}",
    "throughput": lambda c, i, u: f"{_NS * (c.reads + c.writes) / i:.2f}",
    "service_time": lambda c, i, u: _service_time(c, i),
    "util": lambda c, i, u: _percent_text(_percent(int(1_000_000 * _utilization(c, i)), 1_000_000)),
    "interval_ns": lambda c, i, u: str(i),
    "interval": lambda c, i, u: f"{i / _NS:2.6f}",
}


def metric(field: str, c: Counters, interval_ns: int, units: Units) -> str:
    """One of libdm's derived figures, formatted as dmsetup does."""
    return _FIGURES[field](c, interval_ns, units)


_COUNTER_OF = {
    "read_count": "reads", "reads_merged_count": "reads_merged", "read_sector_count": "read_sectors",
    "read_time": "read_time", "read_ticks": "read_busy_time", "write_count": "writes",
    "writes_merged_count": "writes_merged", "write_sector_count": "write_sectors",
    "write_time": "write_time", "write_ticks": "write_busy_time", "in_progress_count": "in_flight",
    "io_ticks": "io_time", "queue_ticks": "weighted_io_time",
}
_NOT_YET = ("hist_count", "hist_count_bounds", "hist_count_ranges", "hist_percent",
            "hist_percent_bounds", "hist_percent_ranges", "hist_bins", "hist_bounds", "hist_ranges")


# -- the command ----------------------------------------------------------------------
class _Stats:
    """One run of ``stats``: the switches read once, the report's rows."""

    def __init__(self, s: Session, base: str, subcommand: str, opts: Options | None,
                 units: Units) -> None:
        self.s, self.base, self.subcommand, self.opts, self.units = s, base, subcommand, opts, units
        self.interval_ns = _NS * (atoi(s.value("interval")) if s.has("interval") else 1)
        self.cycle_start: float | None = None  # when this run's first device was read
        used: set[str] = set()
        if opts is not None:
            selected: tuple[str, ...] = tuple(getattr(opts.selection, "fields", ()))
            used = {f.id for f in opts.fields} | {f.id for f, _ in opts.sort} | set(selected)
        self.figures = [f for f in _FIGURES if f in used]  # the derived figures the report uses
        self.first_cycle = True

    # -- the walk's rows -----------------------------------------------------------
    def rows(self, name: str, dev: DeviceId) -> list[Row]:
        """dmsetup's _display_info_cols for one device with a stats report."""
        from pydevmapper import stats

        s, opts = self.s, self.opts
        assert opts is not None
        sections = {f.section for f in opts.fields} | {f.section for f, _ in opts.sort}
        if any(f.id in _NOT_YET for f in opts.fields):
            s.error("pydmsetup: histogram fields of stats reports are not implemented")
            raise Failed()
        # Every stats report walks the regions; all but list's read the counters.
        counted = self.subcommand != "list" or "stats_" in sections
        program = "" if s.has("allprograms") else (s.value("programid") if s.has("programid") else PROGRAM_ID)
        regions = self._list(dev, program or None, quiet=counted)
        if not regions:
            return []
        held = Handle(s, regions)
        counters: dict[int, list[Counters]] = {}
        if counted:
            for region in regions:
                counters[region.region_id] = s.call("message", dev, partial(
                    stats.area_counters, s.control, dev, region, clear=True))
            self._tick()
        info = self._info_fields(dev, sections)
        rows: list[Row] = []
        for item, area in held.walk(self._walk_flags()):
            if isinstance(item, stats.Group):
                row = self._group_row(name, held, item, counters if counted else None)
            else:
                row = self._row(name, held, item, area, counters.get(item.region_id))
            row.update(info)
            rows.append(row)
        return rows

    def _list(self, dev: DeviceId, program: str | None, quiet: bool) -> list[Region] | None:
        from pydevmapper import stats
        from pydevmapper.errors import DMError

        try:
            return stats.list_regions(self.s.control, dev, program)
        except DMError as exc:
            if quiet:  # dm_stats_populate's failure reports nothing
                return None
            raise self.s.failure("message", dev, exc) from None

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

    def _info_fields(self, dev: DeviceId, sections: set[str]) -> Row:
        if not sections - {"stats_", "region_", ""}:
            return {}
        from pydevmapper.cli.query_commands import info_row

        return info_row(self.s, self.s.info(dev)) or {}

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
        size = self.units.size
        step = r.area_size
        # Read with its counters, libdm takes a region's length from the
        # areas the kernel printed: a short last area counts whole.
        length = r.length if areas is None else r.areas * step
        if area is None:  # libdm's aggregate row: its area cursor is the walk flag itself
            area_start, offset, kind = (r.start + step * REGION) & _U64, (step * REGION) & _U64, "region"
        else:
            area_start, offset, kind = r.start + step * area, step * area, "area"
        group = held.group_of.get(r.region_id)
        row: Row = {
            "stats_name": (group.alias if group is not None else "") or name,
            "group_id": "-" if group is None else group.group_id, "region_id": r.region_id, "obj_type": kind,
            "region_start": size(r.start), "region_len": size(length), "area_count": r.areas,
            "area_id": area or 0, "area_start": size(area_start), "area_len": size(step),
            "area_offset": size(offset), "program_id": "" if r.program_id.startswith("-") else r.program_id,
            "user_data": held.aux[r.region_id], "precise": str(int(r.precise_timestamps)),
        }
        if areas is not None:
            from pydevmapper.stats import Counters

            self._counted(row, areas[area] if area is not None else Counters.total(areas))
        return row

    def _group_row(self, name: str, held: Handle, g: Group, counters: dict[int, list[Counters]] | None) -> Row:
        """A group's row: its regions taken as one (libdm's group aggregate)."""
        from pydevmapper.stats import Counters, format_ranges

        size = self.units.size
        leader = held.regions[g.group_id]
        members = [held.regions[m] for m in g.regions]
        length = sum(m.length if counters is None else m.areas * m.area_size for m in members)
        row: Row = {
            "stats_name": g.alias or name, "group_id": g.group_id, "region_id": format_ranges(g.regions),
            "obj_type": "group", "region_start": size(leader.start), "region_len": size(length),
            "area_count": 1, "area_id": 0, "area_start": size(leader.start), "area_len": size(length),
            "area_offset": size(0), "program_id": PROGRAM_ID, "user_data": "",
            "precise": str(int(leader.precise_timestamps)),
        }
        if counters is not None:
            self._counted(row, Counters.total(a for m in g.regions for a in counters[m]))
        return row

    def _counted(self, row: Row, c: Counters) -> None:
        """The counters and, of the derived figures, those the report uses."""
        for field, attr in _COUNTER_OF.items():
            row[field] = getattr(c, attr)
        for field in self.figures:
            row[field] = metric(field, c, self.interval_ns, self.units)

    # -- the subcommands ------------------------------------------------------------
    def each_device(self, fn: Subcommand) -> None:
        """dmsetup's _process_all: every device, by name; a failure fails the lot."""
        from pydevmapper.cli.query_commands import for_all

        for_all(self.s, lambda s, args, multiple: fn(self, args[0]), [])

    def needs_device(self, name: str | None, fn: Subcommand, *, alldevices: bool) -> bool:
        """No device named: every device (with --alldevices where dmsetup asks
        for it); returns True when that was done."""
        s = self.s
        if name is not None or s.has("uuid") or s.has("major"):
            return False
        if alldevices and not s.has("alldevices"):
            s.error("Please specify device(s) or use --alldevices.")
            raise Failed()
        self.each_device(fn)
        return True


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


def _create(st: _Stats, name: str | None) -> None:
    from pydevmapper import stats
    from pydevmapper.errors import DMError, ValidationError

    s = st.s
    if s.has("allregions"):
        s.error("Cannot use --allregions with create.")
        raise Failed()
    if s.has("allprograms"):
        s.error("Cannot use --allprograms with create.")
        raise Failed()
    if s.has("areas") and s.has("areasize"):
        s.error("Please specify one of --areas and --areasize.")
        raise Failed()
    program = s.value("programid") if s.has("programid") else PROGRAM_ID
    if program == "" and not s.has("force"):
        s.error("Creating a region with no program id requires --force.")
        raise Failed()
    if s.has("filemap"):
        s.error("pydmsetup: stats create --filemap is not implemented")
        raise Failed()
    if st.needs_device(name, _create, alldevices=True):
        return
    areas = atoi(s.value("areas")) & _U64 if s.has("areas") else 0
    area_size = size_from_string(s, s.value("areasize") or "", "areasize") if s.has("areasize") else 0
    areas = areas or 1
    # libdm's step: sectors per area, or minus the number of areas (int64).
    step = area_size // 512 if area_size else -((areas + (1 << 63)) % (1 << 64) - (1 << 63))
    start = size_from_string(s, s.value("start") or "", "start") // 512 if s.has("start") else 0
    length = size_from_string(s, s.value("length") or "", "length") // 512 if s.has("length") else 0
    aux = s.value("userdata") if s.has("userdata") else ""
    if s.has("alias") and s.has("nogroup"):
        s.error("Cannot set alias with --nogroup.")
        raise Failed()
    bounds = bounds_from_string(s, s.value("bounds") or "") if s.has("bounds") else []
    segments = bool(s.has("segments"))
    dev = s.device(name)
    table = s.call("table", dev, lambda: s.control.table(dev))
    targets = list(table) if table is not None else []
    shown = s.shown(s.call("info", dev, lambda: s.control.info(dev)).name)
    if segments:
        extents = [(t.start, t.length) for t in targets]
    else:  # libdm sends the whole device as an explicit range
        extents = [(start, length or sum(t.length for t in targets))]
    for i in range(len(bounds) - 1, 0, -1):
        if bounds[i] < bounds[i - 1]:
            s.error("Histogram boundaries must be in order of increasing magnitude.")
            s.error(f"{shown}: Could not create statistics region.")
            raise Failed()
    made: list[int] = []
    for this_start, this_len in extents:
        whole = not this_start and not this_len
        try:
            region_id = stats.create_region(
                s.control, dev, start=this_start, length=None if whole else this_len,
                area_size=step if step > 0 else None, areas=-step if step < 0 else None,
                precise_timestamps=bool(s.has("precise")), histogram=bounds,
                program_id=program or "-", aux_data=aux or "-")
        except DMError as exc:
            failure = s.failure("message", dev, exc)
            s.error(f"{shown}: Could not create statistics region.")
            raise failure from None
        except ValidationError as exc:
            s.error(str(exc))
            s.error(f"{shown}: Could not create statistics region.")
            raise Failed() from None
        count = 1 if not step or not this_len else (-step if step < 0 else -(-this_len // step))
        s.write(f"{shown}: Created new region with {count} area(s) as region ID {region_id}\n")
        made.append(region_id)
    if segments and not s.has("nogroup"):
        members = ",".join(map(str, made))  # as libdm writes them: no ranges
        alias = s.value("alias") if s.has("alias") else None
        try:
            gid = _create_group(st, dev, st._list(dev, PROGRAM_ID, quiet=False) or [], members, alias)
        except Failed:
            s.error(f"Failed to create group for regions {members}.")
            raise
        s.write(f"Grouped regions {members} as group ID {gid}" + (f" with alias {alias}" if alias else "") + "\n")


def _delete(st: _Stats, name: str | None) -> None:
    from pydevmapper import stats

    s = st.s
    if s.has("regionid") and s.has("groupid"):
        s.error("Please use one of --regionid and --groupid.")
        raise Failed()
    if not s.has("regionid") and not s.has("allregions") and not s.has("groupid"):
        s.error("Please specify a --regionid or --groupid, or use --allregions.")
        raise Failed()
    if st.needs_device(name, _delete, alldevices=True):
        return
    dev = s.device(name)
    program = "" if s.has("allprograms") else (s.value("programid") if s.has("programid") else PROGRAM_ID)
    if s.has("groupid"):
        gid = atoi(s.value("groupid")) & _U64
        if not _group_present(st, st._list(dev, program or None, quiet=False) or [], gid):
            s.error("Could not delete statistics group.")
            raise Failed()
        s.call("message", dev, lambda: stats.delete_group(s.control, dev, gid, regions=True))
        s.write(f"Deleted statistics group {gid}.\n")
        return
    if s.has("allregions"):
        for region in st._list(dev, program or None, quiet=False) or []:
            try:
                s.call("message", dev, partial(stats.delete_region, s.control, dev, region))
            except Failed:
                s.error("Could not delete statistics region.")
                raise
        return
    # A region id is looked for among the handle's own program's regions; with
    # --allprograms libdm's handle takes the process's name as its program.
    if s.has("allprograms"):
        program = "dmstats" if st.base == "dmstats" else "dmsetup"
    else:
        program = s.value("programid") if s.has("programid") else PROGRAM_ID
    wanted = atoi(s.value("regionid")) & _U64
    listed = st._list(dev, program or None, quiet=False) or []
    if not listed:
        s.error(f"Could not delete region ID {wanted}: no regions found")
    elif wanted not in {r.region_id for r in listed}:
        s.error(f"Region ID {wanted} does not exist")
    else:
        s.call("message", dev, lambda: stats.delete_region(s.control, dev, wanted))
        return
    s.error("Could not delete statistics region")
    raise Failed()


def _bitset_list(text: str) -> list[int] | None:
    """libdm's dm_bitset_parse_list: the ids, or None when it does not parse."""
    from pydevmapper.errors import ValidationError
    from pydevmapper.stats import parse_ranges

    try:
        return list(parse_ranges(text))
    except ValidationError:
        return None


def _overlaps(held: Handle, ids: list[int]) -> list[tuple[int, int]]:
    """libdm's _stats_group_check_overlap: the pairs it warns of, merging
    overlapping extents as it goes."""
    extents = sorted(([i, held.regions[i].start, held.regions[i].length] for i in ids), key=lambda e: e[1])
    warned: list[tuple[int, int]] = []
    merged = True
    while merged and len(extents) > 1:
        merged = False
        k = 0
        while k < len(extents) - 1:
            ext, nxt = extents[k], extents[k + 1]
            if ext[1] + ext[2] - 1 > nxt[1]:
                warned.append((ext[0], nxt[0]))
                if ext[1] + ext[2] - 1 > nxt[1] + nxt[2] - 1:
                    nxt[0], nxt[2] = ext[0], ext[2]
                if ext[1] < nxt[1]:
                    nxt[1] = ext[1]
                del extents[k]
                merged = True
            else:
                k += 1
    return warned


def _create_group(st: _Stats, dev: DeviceId, listed: list[Region], members: str, alias: str | None) -> int:
    """libdm's dm_stats_create_group on a handle listing ``listed``: its
    checks and words, then the group made through the API."""
    from pydevmapper import stats

    s = st.s
    if not listed:
        s.error("Could not create group: no regions found.")
        raise Failed()
    ids = _bitset_list(members)
    if ids is None:
        s.error(f"Could not parse list: '{members}'")
        raise Failed()
    held = Handle(s, listed)
    if ids and ids[-1] > max(held.regions):
        s.error(f"Invalid region ID: {ids[-1]}")
        raise Failed()
    bounds = None
    precise = 0
    for i in ids:
        if i not in held.regions:
            s.error(f"Region ID {i} does not exist")
            raise Failed()
        if i in held.group_of:
            s.error(f"Region ID {i} already a member of group ID {held.group_of[i].group_id}")
            raise Failed()
        precise += held.regions[i].precise_timestamps
        these = held.regions[i].histogram_bounds
        if these and bounds is None:
            bounds = these
        elif these and these != bounds:
            s.error("All region histogram bounds must match exactly")
            raise Failed()
    if not ids:
        raise Failed()
    if precise and precise != len(ids):
        s.error("WARNING: Grouping regions with different clock resolution: precision may be lost.")
    for a, b in _overlaps(held, ids):
        s.error(f"WARNING: region IDs {a} and {b} overlap. Some events will be counted twice.")
    return int(s.call("message", dev, lambda: stats.create_group(s.control, dev, ids, alias or "")))


def _group(st: _Stats, name: str | None) -> None:
    s = st.s
    found = _device_and_regions(st, name, _group, alldevices=True,
                                refusal=None if s.has("regions") else "Group requires --regions.")
    if found is None:
        return
    dev, listed = found
    members = s.value("regions") or ""
    try:
        gid = _create_group(st, dev, listed, members, s.value("alias") if s.has("alias") else None)
    except Failed:
        s.error(f"Could not create group on {name}: {members}")
        raise
    s.write(f"Grouped regions {members} as group ID {gid} on {name}\n")


def _ungroup(st: _Stats, name: str | None) -> None:
    from pydevmapper import stats

    s = st.s
    found = _device_and_regions(st, name, _ungroup, alldevices=True,
                                refusal=None if s.has("groupid") else "Please specify group id.")
    if found is None:
        return
    dev, listed = found
    gid = atoi(s.value("groupid")) & _U64
    ok = _group_present(st, listed, gid)
    if ok:
        s.call("message", dev, lambda: stats.delete_group(s.control, dev, gid))
    else:
        s.error(f"Could not delete group {gid} on {name}.")
    # dmsetup 1.02.185 says this whether or not it worked.
    s.write(f"Removed group ID {gid} on {name}\n")
    if not ok:
        raise Failed()


def _group_present(st: _Stats, listed: list[Region], gid: int) -> bool:
    """libdm's checks of a group id on a listed handle, with its words."""
    held = Handle(st.s, listed) if listed else None
    if gid > (max(held.regions) if held else 0):
        st.s.error(f"Invalid group ID: {gid}")
        return False
    if held is None or gid not in held.groups:
        st.s.error(f"Group ID {gid} does not exist")
        return False
    return True


def _device_and_regions(st: _Stats, name: str | None, fn: Subcommand, *, alldevices: bool,
                        refusal: str | None) -> tuple[DeviceId, list[Region]] | None:
    """How print, clear, group and ungroup start: ``refusal`` (a switch
    missing) fails; no device named means every device (then None);
    otherwise the device and its dmstats regions."""
    if refusal is not None:
        st.s.error(refusal)
        raise Failed()
    if st.needs_device(name, fn, alldevices=alldevices):
        return None
    dev = st.s.device(name)
    return dev, st._list(dev, PROGRAM_ID, quiet=False) or []


def _which_regions(s: Session) -> str | None:
    return None if s.has("regionid") or s.has("allregions") else "Please specify a --regionid or use --allregions."


def _clear(st: _Stats, name: str | None) -> None:
    from pydevmapper import stats

    s = st.s
    found = _device_and_regions(st, name, _clear, alldevices=False, refusal=_which_regions(s))
    if found is None or not found[1]:
        return
    dev, listed = found
    wanted = _U64 if s.has("allregions") else atoi(s.value("regionid")) & _U64
    ids = [r.region_id for r in listed]
    for rid in ids if wanted == _U64 else [wanted]:
        if rid not in ids:
            s.error(f"No such region: {rid}.")
            raise Failed()
        try:
            s.call("message", dev, partial(stats.clear_region, s.control, dev, rid))
        except Failed:
            s.error(f"Clearing statistics region {rid} failed.")
            raise


def _print(st: _Stats, name: str | None) -> None:
    from pydevmapper import stats

    s = st.s
    found = _device_and_regions(st, name, _print, alldevices=False, refusal=_which_regions(s))
    if found is None:
        return
    dev, listed = found
    clear = bool(s.has("clear"))

    def one(rid: int) -> None:
        try:
            s.write(s.call("message", dev, lambda: stats.region_text(s.control, dev, rid, clear=clear)))
        except Failed:
            s.error("Could not print statistics region.")
            raise

    if not s.has("allregions"):
        one(atoi(s.value("regionid")) & _U64)
        return
    for region in listed:
        # dmsetup 1.02.185 prints each region twice here (its loop body
        # repeats the print); scripts parse that, so it is kept.
        one(region.region_id)
        one(region.region_id)


def _list_or_report(st: _Stats, name: str | None) -> None:
    s = st.s
    if name is None and not s.has("uuid") and not s.has("major"):
        st.each_device(_list_or_report)
        return
    dev = s.device(name)
    shown = s.info(dev).name  # "Device does not exist." when it does not
    s.report_rows.extend(st.rows(shown, dev))


def _help(st: _Stats, name: str | None) -> None:
    from pydevmapper.cli import texts

    st.s.error(usage(st.base))
    st.s.error(texts.FIELD_HELP)


def _version(st: _Stats, name: str | None) -> None:
    from pydevmapper.cli.query_commands import version

    version(st.s, [], False)


def _not_implemented(st: _Stats, name: str | None) -> None:
    st.s.error(f"pydmsetup: stats {st.subcommand} is not implemented")
    raise Failed()


_RUN: dict[str, Subcommand] = {
    "help": _help, "clear": _clear, "create": _create, "delete": _delete, "group": _group,
    "list": _list_or_report, "print": _print, "report": _list_or_report, "ungroup": _ungroup,
    "update_filemap": _not_implemented, "version": _version,
}


def run(s: Session, base: str, args: list[str]) -> int:
    """The ``stats`` command (``base``: how dmsetup names itself in the usage)."""
    from pydevmapper.cli import commands, texts

    if s.has("help"):
        s.error(usage(base))
        if s.has("columns"):
            s.error(texts.FIELD_HELP)
        return 0
    if s.has("version"):
        s.begin(Plan("stats", commands.COMMANDS["version"], None, False, None))
        try:
            _version(_Stats(s, base, "version", None, Units("h")), None)
        except Failed:
            s.error("Command failed.")
        return 0
    if not args:
        s.error(usage(base) if base == "dmstats" else "Incorrect number of arguments.\n" + usage(base))
        return 1
    subcommand, devices = args[0], args[1:]
    try:
        opts = report_options(s, "stats", default_fields(s, subcommand))
    except report.HelpShown:
        return 0
    except report.ReportError as exc:
        if str(exc):
            s.error(str(exc))
        return 1
    units = Units(s.value("units") or "" if s.has("units") else "h")
    if not units.factor:
        s.error("Invalid --units argument.")
        return 1
    shows_report = subcommand in ("list", "report")
    s.begin(Plan("stats", commands.COMMANDS["info"], None, True, opts))
    st = _Stats(s, base, subcommand, opts, units)
    widths: list[int] = []  # libdm's column widths only ever grow over a report's runs

    def one_run() -> bool:
        s.new_run()
        st.first_cycle = True
        ok = _run_once(st, subcommand, devices)
        if shows_report:
            s.write(report.format_report(opts, s.report_rows, widths))
        return ok

    from pydevmapper.cli import repeat

    return repeat(s, one_run, report=shows_report)


def _run_once(st: _Stats, subcommand: str, devices: list[str]) -> bool:
    """dmsetup's loop over the device arguments, each through its _stats."""
    s = st.s
    names: list[str | None] = list(devices) or [None]
    for name in names:
        try:
            _dispatch(st, subcommand, name, devices)
        except Failed:
            s.error("Command failed.")
            return False
    return True


def _dispatch(st: _Stats, subcommand: str, name: str | None, devices: list[str]) -> None:
    s = st.s
    if subcommand not in _SUBCOMMANDS:
        s.error("Unknown stats command.")
        _help(st, name)  # with the fields: stats always runs as a -c report
        raise Failed()
    if s.has("allprograms") and s.has("programid"):
        s.error("Please supply one of --allprograms and --programid")
        raise Failed()
    if s.has("allregions") and s.has("regionid"):
        s.error("Please supply one of --allregions and --regionid")
        raise Failed()
    if s.has("follow") and s.has("nomonitor"):
        s.error("Use of --follow is incompatible with --nomonitor.")
        raise Failed()
    _RUN[subcommand](st, name)


