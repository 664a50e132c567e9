# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``-c`` report: fields, -o/-O/-S, and libdm-report's output layouts.

Rows are plain dicts of field id -> value (str, int, or a ``Keyed`` text
with the value libdm orders and selects it by) built by the commands; this
module only chooses, orders, filters and prints them.  The layout rules
are libdm-report's: aligned columns whose widths grow to the widest value
(headings are cut to the width), ``--noheadings`` switching to unaligned
``:``-separated output, ``--nameprefixes`` printing ``DM_FIELD='v'``,
``--rows`` transposing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.cli import texts
from pydevmapper.cparse import UINT64_MAX

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Union

    from pydevmapper.cli.selection import Selection

    Row = dict[str, Union[str, int, "Keyed"]]  # field id -> value

STR, NUM = "str", "num"


class Keyed:
    """A field's text and the value libdm sorts and selects it by, where
    they differ: libdm keeps a sort value beside each field's text (a size's
    sectors behind ``8.00m``, a rate's double behind ``0.50``, a group's id
    behind its region range ``0-1``)."""

    __slots__ = ("text", "key")

    def __init__(self, text: str, key: int | float | str) -> None:
        self.text, self.key = text, key

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Keyed({self.text!r}, {self.key!r})"


def sort_key(value: str | int | Keyed) -> int | float | str:
    """What libdm orders a value by: a ``Keyed`` value's key; a number as
    the uint64 it keeps (an int32 -1 sorts last)."""
    if isinstance(value, Keyed):
        return value.key
    return value & UINT64_MAX if isinstance(value, int) else value


class Field(NamedTuple):
    id: str
    heading: str
    width: int
    kind: str
    section: str  # name_, info_, deps_, tree_, splitname_, stats_, region_


# dmsetup's fields, in its order.
FIELDS: tuple[Field, ...] = (
    Field("name", "Name", 16, STR, "name_"),
    Field("mangled_name", "MangledName", 16, STR, "name_"),
    Field("unmangled_name", "UnmangledName", 16, STR, "name_"),
    Field("uuid", "UUID", 32, STR, "name_"),
    Field("mangled_uuid", "MangledUUID", 32, STR, "name_"),
    Field("unmangled_uuid", "UnmangledUUID", 32, STR, "name_"),
    Field("read_ahead", "RAhead", 6, NUM, "name_"),
    Field("blkdevname", "BlkDevName", 16, STR, "info_"),
    Field("attr", "Stat", 4, STR, "info_"),
    Field("tables_loaded", "Tables", 6, STR, "info_"),
    Field("suspended", "Suspended", 9, STR, "info_"),
    Field("readonly", "Read-only", 9, STR, "info_"),
    Field("devno", "DevNo", 5, STR, "info_"),
    Field("major", "Maj", 3, NUM, "info_"),
    Field("minor", "Min", 3, NUM, "info_"),
    Field("open", "Open", 4, NUM, "info_"),
    Field("segments", "Targ", 4, NUM, "info_"),
    Field("events", "Event", 6, NUM, "info_"),
    Field("device_count", "#Devs", 5, NUM, "deps_"),
    Field("devs_used", "DevNamesUsed", 16, STR, "tree_"),
    Field("devnos_used", "DevNosUsed", 16, STR, "deps_"),
    Field("blkdevs_used", "BlkDevNamesUsed", 16, STR, "deps_"),
    Field("device_ref_count", "#Refs", 5, NUM, "tree_"),
    Field("names_using_dev", "RefNames", 8, STR, "tree_"),
    Field("devnos_using_dev", "RefDevNos", 9, STR, "tree_"),
    Field("subsystem", "Subsys", 6, STR, "splitname_"),
    Field("vg_name", "VG", 4, STR, "splitname_"),
    Field("lv_name", "LV", 4, STR, "splitname_"),
    Field("lv_layer", "LVLayer", 7, STR, "splitname_"),
    # Statistics: rows come from a device's stats regions (program id
    # "dmstats"); pydmsetup reads no counters, so a device with regions fails.
    Field("read_count", "#Reads", 6, NUM, "stats_"),
    Field("reads_merged_count", "#RdMrgs", 7, NUM, "stats_"),
    Field("read_sector_count", "#RdSectors", 10, NUM, "stats_"),
    Field("read_time", "AccRdTime", 11, NUM, "stats_"),
    Field("write_count", "#Writes", 7, NUM, "stats_"),
    Field("writes_merged_count", "#WrMrgs", 7, NUM, "stats_"),
    Field("write_sector_count", "#WrSectors", 10, NUM, "stats_"),
    Field("write_time", "AccWrTime", 11, NUM, "stats_"),
    Field("in_progress_count", "#InProg", 7, NUM, "stats_"),
    Field("io_ticks", "IoTicks", 7, NUM, "stats_"),
    Field("queue_ticks", "QueueTicks", 10, NUM, "stats_"),
    Field("read_ticks", "RdTicks", 7, NUM, "stats_"),
    Field("write_ticks", "WrTicks", 7, NUM, "stats_"),
    Field("reads_merged_per_sec", "RMrg/s", 6, NUM, "stats_"),
    Field("writes_merged_per_sec", "WMrg/s", 6, NUM, "stats_"),
    Field("reads_per_sec", "R/s", 3, NUM, "stats_"),
    Field("writes_per_sec", "W/s", 3, NUM, "stats_"),
    Field("read_size_per_sec", "RSz/s", 5, NUM, "stats_"),
    Field("write_size_per_sec", "WSz/s", 5, NUM, "stats_"),
    Field("avg_request_size", "AvgRqSz", 7, NUM, "stats_"),
    Field("queue_size", "QSize", 5, NUM, "stats_"),
    Field("await", "AWait", 5, NUM, "stats_"),
    Field("read_await", "RdAWait", 7, NUM, "stats_"),
    Field("write_await", "WrAWait", 7, NUM, "stats_"),
    Field("throughput", "Throughput", 10, NUM, "stats_"),
    Field("service_time", "SvcTm", 5, NUM, "stats_"),
    Field("util", "Util%", 5, NUM, "stats_"),
    Field("hist_count", "Histogram Counts", 16, STR, "stats_"),
    Field("hist_count_bounds", "Histogram Counts", 16, STR, "stats_"),
    Field("hist_count_ranges", "Histogram Counts", 16, STR, "stats_"),
    Field("hist_percent", "Histogram%", 10, STR, "stats_"),
    Field("hist_percent_bounds", "Histogram%", 10, STR, "stats_"),
    Field("hist_percent_ranges", "Histogram%", 10, STR, "stats_"),
    Field("interval_ns", "IntervalNs", 10, NUM, "stats_"),
    Field("interval", "Interval", 8, NUM, "stats_"),
    Field("region_id", "RgID", 4, NUM, "region_"),
    Field("region_start", "RgStart", 7, NUM, "region_"),
    Field("region_len", "RgSize", 6, NUM, "region_"),
    Field("area_id", "ArID", 4, NUM, "region_"),
    Field("area_start", "ArStart", 7, NUM, "region_"),
    Field("area_len", "ArSize", 6, NUM, "region_"),
    Field("area_offset", "ArOff", 5, NUM, "region_"),
    Field("area_count", "#Areas", 6, NUM, "region_"),
    Field("group_id", "GrpID", 5, NUM, "region_"),
    Field("program_id", "ProgID", 6, STR, "region_"),
    Field("user_data", "UserData", 8, STR, "region_"),
    Field("precise", "Precise", 7, STR, "region_"),
    Field("hist_bins", "#Bins", 9, STR, "region_"),
    Field("hist_bounds", "Histogram Bounds", 16, STR, "region_"),
    Field("hist_ranges", "Histogram Ranges", 16, STR, "region_"),
    Field("stats_name", "Name", 16, STR, "region_"),
    Field("obj_type", "ObjType", 7, STR, "region_"),
    # libdm's implicit field: 1 when the row passes -S (rows that fail are then shown too)
    Field("selected", "Selected", 8, NUM, ""),
)
_CANON = {f.id.replace("_", "").lower(): f for f in FIELDS}
DEFAULT_INFO = "name,major,minor,attr,open,segments,events,uuid"
DEFAULT_SPLITNAME = "vg_name,lv_name,lv_layer"


class ReportError(Exception):
    """Bad -o/-O/-S; the message (already printed parts aside) goes to stderr."""


class HelpShown(Exception):
    """``-o help``: the field list was printed; dmsetup then exits 0."""


def _lookup(word: str, prefix: str) -> Field | None:
    canon = word.replace("_", "").lower()
    if canon in _CANON:
        return _CANON[canon]
    bare = prefix.replace("_", "")
    if bare and canon.startswith(bare):
        return _CANON.get(canon[len(bare):])
    return None


def parse_fields(spec: str, prefix: str, err: Callable[[str], None]) -> list[Field]:
    chosen: list[Field] = []
    for word in spec.split(","):
        if not word:
            continue  # consecutive commas are allowed
        if word in ("help", "?"):
            err(texts.FIELD_HELP)
            raise HelpShown()
        canon = word.replace("_", "").lower()
        section = [f for f in FIELDS if f.section and canon == f.section.replace("_", "") + "all"]
        if canon == "all":  # every section, or the command's own
            section = [f for f in FIELDS if f.section and f.section.startswith(prefix)]
        if section:
            chosen += section
            continue
        field = _lookup(word, prefix)
        if field is None:
            err(texts.FIELD_HELP + f"Unrecognised field: {word}\n")
            raise ReportError()
        chosen.append(field)
    return chosen


def parse_sort(spec: str, prefix: str) -> list[tuple[Field, bool]]:
    keys: list[tuple[Field, bool]] = []
    for word in spec.split(","):
        if not word:
            continue
        descending = word.startswith("-")
        name = word[1:] if word[:1] in "+-" else word
        field = _lookup(name, prefix)
        if field is None:
            raise ReportError(f"dm_report: Unrecognised field: {name}")
        keys.append((field, descending))
    return keys


class Options(NamedTuple):
    fields: list[Field]
    sort: list[tuple[Field, bool]]
    selection: Selection | None
    headings: bool
    aligned: bool
    separator: str
    prefixes: bool
    quoted: bool
    rows: bool


def format_report(opts: Options, rows: Sequence[Row],
                  widths_so_far: list[int] | None = None) -> str:
    """The report text for these rows (empty when there are none).

    ``widths_so_far``: the columns' widths from earlier runs of a repeated
    report, updated here; libdm widens a column for a longer value and
    never narrows it again while the report lives.
    """
    if any(f.id == "selected" for f in opts.fields):
        if getattr(opts.selection, "help_only", False):
            return ""  # `-S help` reports nothing
        kept = [dict(r, selected=int(opts.selection is None or opts.selection(r))) for r in rows]
    else:
        kept = [r for r in rows if opts.selection is None or opts.selection(r)]
    if not kept:
        return ""
    for field, descending in reversed(opts.sort):  # stable: last key first
        kept.sort(key=lambda r: sort_key(r[field.id]), reverse=descending)
    cells = [[str(r[f.id]) for f in opts.fields] for r in kept]
    # libdm measures and pads in bytes (printf's %-*s): "é" takes two columns.
    widths = [max([f.width] + [_bytes(row[i]) for row in cells]) for i, f in enumerate(opts.fields)]
    if widths_so_far is not None:
        if widths_so_far:
            widths = [max(pair) for pair in zip(widths, widths_so_far)]
        widths_so_far[:] = widths

    def show(i: int, text: str) -> str:
        field = opts.fields[i]
        if opts.aligned and not opts.rows:  # libdm never pads transposed output
            pad = " " * (widths[i] - _bytes(text))
            text = pad + text if field.kind == NUM else text + pad
        if opts.prefixes:
            quote = "'" if opts.quoted else ""
            return f"DM_{field.id.upper()}={quote}{text}{quote}"
        return text

    lines: list[str] = []
    sep = opts.separator
    if opts.rows:
        for i, field in enumerate(opts.fields):
            head = field.heading + sep if opts.headings else ""
            lines.append(head + sep.join(show(i, row[i]) for row in cells))
    else:
        if opts.headings:
            lines.append(sep.join(
                f.heading[:widths[i]].ljust(widths[i]) if opts.aligned else f.heading
                for i, f in enumerate(opts.fields)))
        for row in cells:
            lines.append(sep.join(show(i, text) for i, text in enumerate(row)))
    return "".join(line + "\n" for line in lines)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))
