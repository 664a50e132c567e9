# SPDX-License-Identifier: LGPL-2.1-or-later
"""``dmsetup stats`` and ``dmstats``: statistics regions made, listed,
printed, cleared and deleted through ``pydevmapper.stats``, with the output,
messages and exit statuses of dmsetup 1.02.185.

The flow is dmsetup's for a command with subcommands: the ``-c`` report is
set up first (so a bad ``-o`` fails any subcommand), then the subcommand
runs once per device argument (or for every device), then the report of
``list`` and ``report`` (``stats_report``) is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from pydevmapper.cli import report, report_options
from pydevmapper.cli.session import Failed, Plan, Session
from pydevmapper.cli.stats_report import (  # libdm's units and constants, shared
    _NS,
    PROGRAM_ID,
    Handle,
    Report,
    Units,
    default_fields,
    list_regions,
    units_to_factor,
)
from pydevmapper.cparse import UINT64_MAX, atoi, strtoul

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.stats import FileRegions, Region
    from pydevmapper.types import DeviceId

    Subcommand = Callable[["_Stats", "str | None"], None]


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


def size_from_string(s: Session, text: str, name: str) -> int:
    """dmsetup's _size_from_string: bytes; a plain number is sectors; an
    unknown unit leaves the number as bytes."""
    value, end, _ = strtoul(text)
    if end == 0:
        s.error(f'Invalid {name} argument: "{text}"')
        raise Failed()
    rest = text[end:]
    if not rest:
        return (value * 512) & UINT64_MAX
    factor, _ = units_to_factor(rest)
    return (value * factor) & UINT64_MAX if factor else value


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
        bounds.append((value * mult) & UINT64_MAX)
        if i >= len(text):
            return bounds


# -- the command ----------------------------------------------------------------------
class _Stats:
    """One run of ``stats``: the switches read once, the report's rows."""

    def __init__(self, s: Session, base: str, subcommand: str, walk: Report) -> None:
        self.s, self.base, self.subcommand, self.report = s, base, subcommand, walk

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
        _create_file(st, name)
        return
    if st.needs_device(name, _create, alldevices=True):
        return
    areas = atoi(s.value("areas")) & UINT64_MAX if s.has("areas") else 0
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
    _bounds_in_order(s, bounds, f"{shown}: Could not create statistics region.")
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
            gid = _create_group(st, dev, list_regions(s, dev, PROGRAM_ID, quiet=False) or [], members, alias)
        except Failed:
            s.error(f"Failed to create group for regions {members}.")
            raise
        s.write(f"Grouped regions {members} as group ID {gid}" + (f" with alias {alias}" if alias else "") + "\n")


def _bounds_in_order(s: Session, bounds: list[int], failed: str) -> None:
    """libdm's check of --bounds as it builds the histogram argument
    (equal bounds pass it; the kernel refuses them)."""
    if any(bounds[i] < bounds[i - 1] for i in range(1, len(bounds))):
        s.error("Histogram boundaries must be in order of increasing magnitude.")
        s.error(failed)
        raise Failed()


# -- file maps (--filemap, update_filemap) ------------------------------------------
def _file_path(s: Session, path: str | None, missing: str) -> str:
    """How --filemap and update_filemap start: the switches they refuse
    (dmsetup's _stats_check_filemap_switches), then a path is needed."""
    for switches, refusal in (
            (("areas", "areasize"), "--filemap is incompatible with --areas and --area-size."),
            (("start", "length"), "--filemap is incompatible with --start and --length."),
            (("segments",), "--filemap and --segments are incompatible."),
            (("userdata",), "--userdata is not yet supported with --filemap."),
            (("uuid", "major"), "--uuid and --major are incompatible with --filemap."),
            (("alldevices",), "--alldevices is incompatible with --filemap.")):
        if any(s.has(x) for x in switches):
            s.error(refusal)
            raise Failed()
    if path is None:
        s.error(missing)
        raise Failed()
    return path


def _abspath(s: Session, path: str) -> str:
    """canonicalize_file_name(3): every component must exist."""
    import os

    real = os.path.realpath(path)
    if not os.path.lexists(path) or not os.path.exists(real):
        s.error(f"Could not canonicalize file name: {path}")
        raise Failed()
    return real


def _monitor_mode(s: Session) -> str | None:
    """dmfilemapd's mode, None for none: without --nomonitor that fails the
    command (silently, as dmsetup does)."""
    mode: str | None = "inode"
    if s.has("nomonitor") or s.has("nogroup"):
        mode = None
    elif s.has("follow"):
        mode = s.value("follow")
        if mode not in ("inode", "path"):
            s.error(f"Could not parse dmfilemapd mode: {mode}")
            mode = None
    if mode is None and not s.has("nomonitor"):
        raise Failed()
    return mode


def _open_for_map(s: Session, abspath: str) -> int:
    import os

    try:
        return os.open(abspath, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        s.error(f"Could not open {abspath} for reading")
        raise Failed() from None


# libdm's words for a file it cannot map (UnmappableFileError.reason)
_UNMAPPABLE = {
    "not_regular": "Not a regular file",
    "not_device_mapper": "Cannot map file: not a device-mapper device.",
    "no_physical_extents": "Cannot map file: btrfs does not provide physical FIEMAP extent data.",
    "no_extents": "Cannot map file: no allocated extents.",
}


def _mapped(s: Session, call: Callable[[], FileRegions], failed: str, gid: int = 0) -> FileRegions:
    """A file map made or updated through the API; a failure in libdm's
    words, then ``failed``."""
    from pydevmapper.errors import DMError, RegionNotFoundError, UnmappableFileError, ValidationError

    try:
        return call()
    except RegionNotFoundError:  # update_filemap's group
        s.error(f"Group ID {gid} does not exist.")
    except UnmappableFileError as exc:
        s.error(_UNMAPPABLE.get(exc.reason, str(exc)))
    except ValidationError as exc:
        s.error(str(exc))
    except DMError as exc:
        failure = s.failure("message", None, exc)
        s.error(failed)
        raise failure from None
    except OSError:
        pass  # a failed FIEMAP: libdm says nothing of it
    s.error(failed)
    raise Failed()


def _start_filemapd(s: Session, fd: int, group_id: int, abspath: str, mode: str) -> bool:
    """libdm's dm_stats_start_filemapd: dmfilemapd (lvm2's daemon, from
    PATH) watches the file and updates its regions; started in the
    background, it is taken to have started (libdm's parent does not learn
    whether the exec worked).  With --foreground it replaces this process."""
    import os
    import subprocess

    verbose = s.has("verbose")
    if verbose > 3:
        s.error(f"Invalid dmfilemapd verbose argument. Must be 0..3: {verbose}.")
        return False
    foreground = bool(s.has("foreground"))
    argv = ["dmfilemapd", str(fd), str(group_id), abspath, mode, str(int(foreground)), str(verbose)]
    try:
        if foreground:
            s.flush()
            os.set_inheritable(fd, True)
            os.execvp(argv[0], argv)
        subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        return True
    except OSError as exc:
        s.error(f"dmfilemapd: execvp failed: {os.strerror(exc.errno or 0)}")
        return not foreground


def _file_program(s: Session) -> str:
    """--programid ("-" for none, which needs --force), else dmstats'."""
    program = s.value("programid") if s.has("programid") else PROGRAM_ID
    if not program and not s.has("force"):
        program = PROGRAM_ID
    return program or "-"


def _create_file(st: _Stats, path: str | None) -> None:
    """dmsetup's _stats_create_file: a region per extent of the file."""
    import os

    from pydevmapper import stats

    s = st.s
    path = _file_path(s, path, "--filemap requires a file path argument")
    abspath = _abspath(s, path)
    bounds = bounds_from_string(s, s.value("bounds") or "") if s.has("bounds") else []
    group = not s.has("nogroup")
    mode = _monitor_mode(s)
    fd = _open_for_map(s, abspath)
    try:
        alias = None
        if group:
            alias = s.value("alias") if s.has("alias") else os.path.basename(abspath)
        elif s.has("alias"):
            s.error("Cannot set alias with --nogroup.")
            raise Failed()
        failed = f"Could not create regions from file {abspath}."
        _bounds_in_order(s, bounds, failed)
        made = _mapped(s, lambda: stats.create_file_regions(
            s.control, fd, group=group, alias=alias, precise_timestamps=bool(s.has("precise")),
            histogram=bounds, program_id=_file_program(s)), failed)
        # mode is None for --nogroup and --nomonitor: no daemon then
        if mode is not None and not _start_filemapd(s, fd, made.regions[0], abspath, mode):
            s.error("Failed to start filemap monitoring daemon.")
        if group:
            s.write(f"{path}: Created new group with {len(made.regions)} region(s) as group ID {made.group_id}.\n")
        else:
            for rid in made.regions:
                s.write(f"{path}: Created new region with 1 area as region ID {rid}.\n")
    finally:
        os.close(fd)


def _update_file(st: _Stats, path: str | None) -> None:
    """dmsetup's _stats_update_file: the file's group follows its extents now."""
    import os

    from pydevmapper import stats

    s = st.s
    path = _file_path(s, path, "update_filemap requires a file path argument")
    if not s.has("groupid"):
        s.error("--groupid is required to update a filemap group.")
        raise Failed()
    abspath = _abspath(s, path)
    gid = atoi(s.value("groupid")) & UINT64_MAX
    mode = _monitor_mode(s)
    fd = _open_for_map(s, abspath)
    try:
        if not s.has("nomonitor"):
            assert mode is not None  # _monitor_mode refused that
            if _start_filemapd(s, fd, gid, abspath, mode):
                return
            s.error("Failed to start filemap monitoring daemon.")
        updated = _mapped(s, lambda: stats.update_file_regions(s.control, fd, gid, program_id=_file_program(s)),
                          f"Could not update regions from file {abspath}", gid)
        if not updated.regions:  # the file has none left: its regions are gone
            s.error("Cannot map file: no allocated extents.")
        first = updated.regions[0] if updated.regions else UINT64_MAX  # libdm's end-of-table marker
        changed = ""
        if first != gid:  # printed without a newline, as dmsetup does
            changed, gid = f"Group ID changed from {gid} to {first}", first
        s.write(f"{changed}{path}: Updated group ID {gid} with {len(updated.regions)} region(s).\n")
    finally:
        os.close(fd)


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
        gid = atoi(s.value("groupid")) & UINT64_MAX
        if not _group_present(st, list_regions(s, dev, program or None, quiet=False) or [], gid):
            s.error("Could not delete statistics group.")
            raise Failed()
        s.call("message", dev, lambda: stats.delete_group(s.control, dev, gid, regions=True))
        s.write(f"Deleted statistics group {gid}.\n")
        return
    if s.has("allregions"):
        for region in list_regions(s, dev, program or None, quiet=False) or []:
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
    wanted = atoi(s.value("regionid")) & UINT64_MAX
    listed = list_regions(s, dev, program or None, quiet=False) or []
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
    gid = atoi(s.value("groupid")) & UINT64_MAX
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
    return dev, list_regions(st.s, dev, PROGRAM_ID, quiet=False) or []


def _which_regions(s: Session) -> str | None:
    return None if s.has("regionid") or s.has("allregions") else "Please specify a --regionid or use --allregions."


def _clear(st: _Stats, name: str | None) -> None:
    from pydevmapper import stats

    s = st.s
    found = _device_and_regions(st, name, _clear, alldevices=False, refusal=_which_regions(s))
    if found is None or not found[1]:
        return
    dev, listed = found
    wanted = UINT64_MAX if s.has("allregions") else atoi(s.value("regionid")) & UINT64_MAX
    ids = [r.region_id for r in listed]
    for rid in ids if wanted == UINT64_MAX else [wanted]:
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
        one(atoi(s.value("regionid")) & UINT64_MAX)
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
    from pydevmapper.cli.query_commands import info_row

    dev = s.device(name)
    shown = s.info(dev).name  # "Device does not exist." when it does not
    s.report_rows.extend(st.report.rows(shown, dev, lambda: info_row(s, s.info(dev))))


def _help(st: _Stats, name: str | None) -> None:
    from pydevmapper.cli import texts

    st.s.error(usage(st.base))
    st.s.error(texts.FIELD_HELP)


def _version(st: _Stats, name: str | None) -> None:
    from pydevmapper.cli.query_commands import version

    version(st.s, [], False)


_RUN: dict[str, Subcommand] = {
    "help": _help, "clear": _clear, "create": _create, "delete": _delete, "group": _group,
    "list": _list_or_report, "print": _print, "report": _list_or_report, "ungroup": _ungroup,
    "update_filemap": _update_file, "version": _version,
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
            _version(_Stats(s, base, "version", Report(s, "version", None, Units("h"))), None)
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
    st = _Stats(s, base, subcommand, Report(s, subcommand, opts, units))
    widths: list[int] = []  # libdm's column widths only ever grow over a report's runs

    def one_run() -> bool:
        s.new_run()
        st.report.first_cycle = True
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


