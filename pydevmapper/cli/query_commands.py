# SPDX-License-Identifier: LGPL-2.1-or-later
"""dmsetup's commands that read devices: ls, info, deps, status, table,
targets, target-version, version.

Each parses its arguments, calls the API and formats; see commands.py for
the calling convention.
"""

from __future__ import annotations

import errno
import os

from pydevmapper.cli import jsonout, names
from pydevmapper.cli.keys import hide_keys as _hide_keys
from pydevmapper.cli.session import (
    EMULATED_LIBRARY,
    Failed,
    Session,
    kernel_name,
    mapped_name,
    read_ahead,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pydevmapper.cli.commands import CommandFn
    from pydevmapper.cli.report import Row
    from pydevmapper.cli.tree import TreeOptions
    from pydevmapper.deptree import DeviceGraph
    from pydevmapper.types import DeviceInfo, DevNo, ListedDevice

# -- listing ---------------------------------------------------------------------

def for_all(s: Session, fn: CommandFn, args: list[str], silent: bool = False,
            keep: Callable[[ListedDevice], bool] | None = None) -> None:
    """Run fn for every device (dmsetup's _process_all), or for those
    ``keep(device)`` keeps (-S on a command other than info); any failure
    fails the lot."""
    devices = s.list_devices()
    if not devices:
        if not silent and not s.has("json"):  # --json: an empty list, nothing else
            s.write("No devices found\n")
        return
    failed = False
    for dev in devices:
        if keep is not None and not keep(dev):
            continue
        try:
            fn(s, [dev.name], True)
        except Failed:
            failed = True
    if failed:
        raise Failed()


def _dev_label(s: Session, major: int, minor: int, comma: bool) -> str:
    kind = s.plan.name_type  # -o devno|blkdevname|devname
    if kind == "blkdevname":
        found = kernel_name(major, minor)
    elif kind == "devname":
        found = mapped_name(major, minor)
    else:
        found = None
    if found:
        return f"({found})"
    return f"({major}, {minor})" if comma else f"({major}:{minor})"


def read_output_options(s: Session, columns: bool) -> tuple[str | None, str, TreeOptions | None]:
    """-o outside a -c report, or --tree, read before the command runs
    (dmsetup's _process_options): tree options with --tree, else
    devno|devname|blkdevname.  Each word may be abbreviated; an empty one
    takes the first choice.  Returns (the problem for "Couldn't process
    command line." or None, the name type, the tree options).
    """
    from pydevmapper.cli import tree

    if s.has("tree"):
        try:
            return None, "devno", tree.parse_options(s.value("options"), tree.locale_is_utf8())
        except tree.BadOption as exc:
            return f"Tree options not recognised: {exc}.", "devno", None
    if columns or not s.has("options"):
        return None, "devno", None
    try:
        words = tree.abbreviated_words(s.value("options") or "", ("devno", "blkdevname", "devname"))
    except tree.BadOption as exc:
        return f"Option not recognised: {exc}.", "devno", None
    return None, words[-1] if words else "devno", None


def ls(s: Session, args: list[str], multiple: bool) -> None:
    if s.has("json"):
        s.write(jsonout.ls([d._replace(name=s.shown(d.name), uuid=d.uuid and s.shown(d.uuid, "UUID"))
                            for d in s.control.list_devices()]))
        return
    if s.has("target") or s.has("exec"):
        for_all(s, lambda s2, a, m: _status_one(s2, a[0], "ls", False), [])
        return
    if s.has("tree"):
        _ls_tree(s)
        return
    devices = s.list_devices()
    if not devices:
        s.write("No devices found\n")
    for dev in devices:
        s.write(f"{dev.name}\t{_dev_label(s, dev.major, dev.minor, False)}\n")


def device_graph(s: Session) -> DeviceGraph:
    """Every device's dependencies, built once (dmsetup's whole dep tree)."""
    from pydevmapper.deptree import dependency_graph

    if s.graph is None:
        graph = s.call("names", None, lambda: dependency_graph(s.control))
        for node in graph:
            if node.info is not None:
                node.info = s.shown_info(node.info)
        s.graph = graph
        if not len(s.graph):
            s.write("No devices found\n")
    return s.graph


def _ls_tree(s: Session) -> None:
    from pydevmapper.cli import tree

    opts = s.plan.tree_options
    assert opts is not None  # read with --tree
    drawing = tree.render(device_graph(s), opts, tree.terminal_width(opts), kernel_name)
    s.write(drawing.decode("utf-8", "surrogateescape"))


def info(s: Session, args: list[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, info, [])
    dev = s.info(s.device(args[0] if args else None))
    if s.has("json"):
        report = s.plan.report
        if report is not None and report.selection is not None and not selected(s, dev):
            return  # info -c -S: only the rows the report would keep
        s.json_rows.append(jsonout.info(dev, read_ahead(dev.major, dev.minor)))
    elif s.plan.columns:
        s.report_rows.extend(info_rows(s, dev))
    else:
        s.write(s.long_info(dev))


def selected(s: Session, dev: DeviceInfo) -> bool:
    """Whether -S keeps the device: one of its -c rows passes the selection
    (a device without rows is never kept)."""
    rows = info_rows(s, dev)
    selection = s.plan.report.selection if s.plan.report is not None else None
    return any(selection is None or selection(row) for row in rows)


def info_rows(s: Session, dev: DeviceInfo) -> list[Row]:
    """The -c report's rows for a device: one, or with statistics fields
    one per statistics object (none without regions)."""
    if s.plan.needs_stats:
        from pydevmapper.cli import stats_report

        return stats_report.device_rows(s, dev, lambda: info_row(s, dev))
    return [info_row(s, dev)]


def info_row(s: Session, dev: DeviceInfo) -> Row:
    """The -c report's row of the device's own fields."""
    subsystem = names.uuid_prefix(dev.uuid)
    row: Row = {
        "name": dev.name, "mangled_name": _mangled(s, dev.name, "name"),
        "unmangled_name": _unmangled(s, dev.name), "uuid": dev.uuid,
        "mangled_uuid": _mangled(s, dev.uuid, "UUID"), "unmangled_uuid": _unmangled(s, dev.uuid),
        "read_ahead": read_ahead(dev.major, dev.minor) or 0,
        "blkdevname": kernel_name(dev.major, dev.minor) or "",
        "attr": ("L" if dev.live_table else "-") + ("I" if dev.inactive_table else "-")
        + ("s" if dev.suspended else "-") + ("r" if dev.read_only else "w"),
        "tables_loaded": ("Both" if dev.inactive_table else "Live") if dev.live_table
        else ("Inactive" if dev.inactive_table else "None"),
        "suspended": "Suspended" if dev.suspended else "Active",
        "readonly": "Read-only" if dev.read_only else "Writeable",
        "devno": f"{dev.major}:{dev.minor}", "major": dev.major, "minor": dev.minor,
        "open": -1 if s.has("noopencount") else dev.open_count,
        "segments": dev.target_count, "events": dev.event_nr,
    }
    row.update(names.split_name(dev.name, subsystem))
    if s.plan.needs_deps:
        deps = s.call("deps", dev.devno, lambda: s.control.deps(
            dev.devno, inactive=bool(s.has("inactive"))))
        row["device_count"] = len(deps)
        row["devnos_used"] = ",".join(f"{d.major}:{d.minor}" for d in deps)
        row["blkdevs_used"] = ",".join(kernel_name(*d) or "" for d in deps)
    if s.plan.needs_tree:
        row.update(_tree_fields(s, dev.devno))
    return row


def _mangled(s: Session, text: str, what: str) -> str:
    """libdm's dm_task_get_{name,uuid}_mangled: ``text`` as shown, mangled
    in the session's mode (none mangles as auto does)."""
    return s.mangled(text, "hex" if s.mangling == "hex" else "none", what,
                     f"_do_report_object: report function failed for field mangled_{what.lower()}")


def _unmangled(s: Session, text: str) -> str:
    """libdm's dm_task_get_{name,uuid}_unmangled: shown names are already
    unmangled unless mangling is off; then every \\xNN is decoded."""
    from pydevmapper import mangling

    return mangling.unmangle(text, "none") if s.mangling == "none" else text


def _tree_fields(s: Session, devno: DevNo) -> Row:
    """devs_used, device_ref_count, names_using_dev, devnos_using_dev."""
    graph = device_graph(s)
    if devno not in graph:
        s.error(f"Cannot find node {devno.major}:{devno.minor}.")
        raise Failed()
    node = graph[devno]
    users = [graph[d] for d in node.used_by]
    return {
        "devs_used": ",".join(n for n in (graph[d].name for d in node.uses) if n),
        "device_ref_count": len(users),
        "names_using_dev": ",".join(u.name for u in users if u.name),
        "devnos_using_dev": ",".join(str(u.devno) for u in users),
    }


def deps(s: Session, args: list[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, deps, [])
    device = s.device(args[0] if args else None)
    used = s.call("deps", device, lambda: s.control.deps(device, inactive=bool(s.has("inactive"))))
    name = args[0] if args else None
    if s.has("json"):
        dev = s.info(device)
        s.json_rows.append(jsonout.deps(dev, used))
        return
    if s.has("verbose"):
        s.write(s.long_info(s.info(device)))
    head = f"{name}: " if multiple and not s.has("verbose") else ""
    listed = "".join(" " + _dev_label(s, d.major, d.minor, True) for d in used)
    s.write(f"{head}{len(used)} dependencies\t:{listed}\n")
    if multiple and s.has("verbose"):
        s.write("\n")


def status(s: Session, args: list[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, status, [])
    _status_one(s, args[0] if args else None, s.plan.command, multiple)


def _quote_concise(text: str) -> str:
    return "".join("\\" + c if c in ",;\\" else c for c in text)


def _status_one(s: Session, name: str | None, cmd: str, multiple: bool) -> None:
    """table/status/ls --target for one device (dmsetup's _status)."""
    device = s.device(name)
    ctl = s.control
    inactive = bool(s.has("inactive"))
    if cmd == "table":
        tbl = s.call("table", device, lambda: ctl.table(device, inactive=inactive))
        lines = [(t.start, t.length, t.type, t.params) for t in (tbl or ())]
    elif cmd == "measure":  # status with the IMA flag: what IMA would record now
        lines = [(t.start, t.length, t.type, t.status) for t in s.call(
            "status", device, lambda: ctl.ima_measurement(device, inactive=inactive), absent=True)]
    else:
        lines = [(t.start, t.length, t.type, t.status) for t in s.call("status", device, lambda: ctl.status(
            device, inactive=inactive, noflush=bool(s.has("noflush"))), absent=True)]
    dev = s.info(device)
    label = name if name is not None else dev.name
    if s.has("json"):
        s.json_rows.append(jsonout.targets_of(dev, lines, cmd, bool(s.has("showkeys"))))
        return
    target = s.value("target") if s.has("target") else None
    concise = cmd == "table" and s.has("concise")
    verbose = s.has("verbose")
    show = not s.has("exec") or verbose
    matched = False
    # No targets: one pass with no target (ls and -v still show the device).
    shown: Sequence[tuple[int | None, int | None, str | None, str]] = lines or [(None, None, None, "")]
    for start, length, ttype, params in shown:
        if target is not None and ttype != target:
            continue
        if cmd == "ls":
            if show:
                s.write(f"{label}\t({dev.major}, {dev.minor})\n")
            matched = True
            break
        if show:
            if not concise:
                if not matched and verbose:
                    s.write(s.long_info(dev))
                if multiple and not verbose:
                    s.write(f"{label}: ")
            elif not matched:
                if s.concise_started:
                    s.write(";")
                s.concise_started = True
                s.write(f"{_quote_concise(label)},{_quote_concise(dev.uuid)},{dev.minor},"
                        f"{'ro' if dev.read_only else 'rw'}")
            if ttype is not None:
                if not s.has("showkeys") and cmd == "table":
                    params = _hide_keys(ttype, params)
                if concise:
                    s.write(f",{start} {length} {ttype} {_quote_concise(params)}")
                else:
                    s.write(f"{start} {length} {ttype} {params}")
            if not concise:
                s.write("\n")
        matched = True
    if multiple and verbose and matched and cmd != "ls" and (not concise or verbose > 1):
        s.write("\n")
    if matched and s.has("exec"):
        _exec_on(s, label)


def _exec_on(s: Session, name: str) -> None:
    """--exec: run the command's words plus the device's node path, wait, and
    ignore how it ended (dmsetup's _exec_command); the node is made first."""
    import re
    import subprocess

    if s.exec_argv is None:  # split once, as dmsetup does, at the first device
        s.exec_argv = [w for w in re.split("[ \t\n\v\f\r]+", s.value("exec") or "") if w]
        if len(s.exec_argv) >= 256:  # dmsetup's argument slots, the path included
            s.error("Too many args to --exec.")
            s.exec_argv = []
    if not s.exec_argv:
        raise Failed()
    s.call("mknodes", name, lambda: s.control.sync_node(name), absent=True)
    if os.isatty(1):  # a C program's stdout is line-buffered only on a terminal
        s.flush()
    try:
        subprocess.run([*s.exec_argv, s.control.node_path(name)], check=False)
    except OSError:
        pass  # dmsetup's child exits 127 without a word


def targets(s: Session, args: list[str], multiple: bool) -> None:
    found = s.call("versions", None, s.control.targets)
    if s.has("json"):
        s.write(jsonout.targets(found))
        return
    for t in found:
        s.write(f"{t.name:<16} v{t.version[0]}.{t.version[1]}.{t.version[2]}\n")


def target_version(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper.errors import DMError

    try:
        t = s.control.target_version(args[0])
    except DMError:
        raise s.ioctl_failed("target-version", args[0], OSError(errno.EINVAL, "")) from None
    s.write(f"{t.name:<16} v{t.version[0]}.{t.version[1]}.{t.version[2]}\n")


def version(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper import __version__

    library = f"{EMULATED_LIBRARY} pydevmapper {__version__}"
    driver = None
    try:
        driver = ".".join(map(str, s.call("version", None, s.control.version)))
    finally:
        if s.has("json"):
            s.write(jsonout.version(library, driver))
        else:
            s.write(f"Library version:   {library}\n")
            if driver:
                s.write(f"Driver version:    {driver}\n")
