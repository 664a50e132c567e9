"""dmsetup's commands: each parses its arguments, calls the API, formats.

Every function takes the Session and the arguments left for it (for
repeatable commands, the current device first) and ``multiple`` (whether
output lines carry a ``name: `` prefix); it raises Failed after printing why.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable, Dict, List, NamedTuple, Optional

from pydevmapper.cli import jsonout, names, report, udev_cookies
from pydevmapper.cli.keys import hide_keys as _hide_keys
from pydevmapper.cli.session import (EMULATED_LIBRARY, Failed, Session, atoi,
                                     kernel_name, mapped_name, read_ahead)


class Command(NamedTuple):
    fn: Callable
    min_args: int
    max_args: int  # -1: any
    repeatable: int  # 0 no, 1 one device per argument, 2 and -S works


# -- tables ------------------------------------------------------------------

def _read_table(s: Session, file: Optional[str]):
    """Targets from --table, a file or stdin, parsed like dmsetup's _parse_line."""
    from pydevmapper.table import Target

    text = s.value("table")
    label = ""
    if text is None:
        if file is not None:
            try:
                with open(file, "rb") as f:
                    text = f.read().decode("utf-8", "surrogateescape")
            except OSError:
                s.error(f"Couldn't open '{file}' for reading.")
                raise Failed() from None
            label = file
        else:
            text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
            label = "on stdin"
    targets = []
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split(None, 3)
        if len(words) < 3 or not (words[0].isdigit() and words[1].isdigit()):
            s.error(f"Invalid format on line {lineno} of table {label}.")
            raise Failed()
        params = words[3] if len(words) == 4 else ""
        params = params.split("#", 1)[0]
        targets.append(Target(int(words[0]), int(words[1]), words[2], params))
    return targets


def _table_of(s: Session, targets, device, devno: Optional[str] = None):
    from pydevmapper.errors import ValidationError
    from pydevmapper.table import Table

    try:
        return Table(targets)
    except ValidationError:
        # dmsetup leaves such tables to the kernel, which refuses them.
        raise s.ioctl_failed("reload", device, OSError(errno.EINVAL, ""), devno) from None


# -- create, load, remove ------------------------------------------------------

def create(s: Session, args: List[str], multiple: bool) -> None:
    if s.has("concise"):
        if len(args) > 1:
            s.error("dmsetup create --concise takes at most one argument")
            raise Failed()
        for spec in _concise_specs(s, args[0] if args else None):
            _create_one(s, *spec)
        return
    if not args:
        s.error("Please provide a name for the new device.")
        raise Failed()
    targets = None if s.has("notable") else _read_table(s, args[1] if len(args) == 2 else None)
    _create_one(s, args[0], s.value("uuid") if s.has("uuid") else None, None,
                bool(s.has("readonly")), targets)


def _create_one(s: Session, name: str, uuid: Optional[str], minor: Optional[int],
                readonly: bool, targets) -> None:
    from pydevmapper.device import DevNo

    devno = None
    if minor is not None or s.has("major"):
        devno = DevNo(atoi(s.value("major")) if s.has("major") else 253,
                      minor if minor is not None else atoi(s.value("minor")))
    ctl = s.control
    # libdm names the uuid it sent when a create fails
    info = s.call("create", name, ctl.create, name, uuid=uuid, devno=devno,
                  sent_uuid=uuid or "")
    if targets:
        label = str(info.devno)
        table = _table_of(s, targets, name, label)
        try:
            s.call("reload", name, ctl.load, info.devno, table, readonly=readonly, devno=label)
            info = s.call("resume", name, ctl.resume, info.devno) or info
        except Failed:
            _quietly(ctl.remove, info.devno, retry=5.0)
            raise
    if s.has("verbose"):
        s.write(s.long_info(s.info(info.devno)))


def _quietly(fn, *args, **kwargs) -> None:
    from pydevmapper.errors import DMError

    try:
        fn(*args, **kwargs)
    except DMError:
        pass


def _concise_specs(s: Session, text: Optional[str]):
    """``name,uuid,minor,flags,table[,table...]`` entries separated by ';'."""
    from pydevmapper.table import Target

    if s.has("table") or s.has("minor") or s.has("uuid") or s.has("notable") or s.has("inactive"):
        s.error("--concise is incompatible with --[no]table, --minor, --uuid and --inactive.")
        raise Failed()
    if text is None:
        text = sys.stdin.read()
    devices: List[List[str]] = []
    fields = [""]
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 1
            if i >= len(text):
                s.error("Backslash must be followed by another character at end of string.")
                raise Failed()
            fields[-1] += text[i]
        elif ch == "," and len(fields) < 5:
            fields.append("")
            i += 1
            while i < len(text) and text[i].isspace():
                i += 1
            continue
        elif ch == ",":
            fields[-1] += "\n"
        elif ch == ";":
            devices.append(fields)
            fields = [""]
            i += 1
            while i < len(text) and text[i].isspace():
                i += 1
            continue
        else:
            fields[-1] += ch
        i += 1
    if fields != [""]:
        devices.append(fields)
    specs = []
    for f in devices:
        if len(f) != 5:
            s.error("Five comma-separated fields are required for each device")
            raise Failed()
        if f[3] not in ("", "ro", "rw"):
            s.error(f"Invalid flags parameter '{f[3]}' must be 'ro' or 'rw' or empty.")
            raise Failed()
        targets = []
        for line in f[4].split("\n"):
            w = line.split(None, 3)
            if len(w) >= 3:
                targets.append(Target(int(w[0]), int(w[1]), w[2], w[3] if len(w) > 3 else ""))
        specs.append((f[0], f[1] or None, atoi(f[2]) if f[2] else None, f[3] == "ro", targets))
    return specs


def load(s: Session, args: List[str], multiple: bool) -> None:
    if s.has("notable"):
        s.error("--notable only available when creating new device.")
        raise Failed()
    name = None
    if not s.has("uuid") and not s.has("major"):
        if not args:
            s.error("Please specify device.")
            raise Failed()
        name, args = args[0], args[1:]
    elif len(args) > 1:
        s.error("Too many command line arguments.")
        raise Failed()
    device = s.device(name)
    targets = _read_table(s, args[0] if args else None)
    table = _table_of(s, targets, device)
    info = s.call("reload", device, s.control.load, device, table,
                  readonly=bool(s.has("readonly")))
    if s.has("verbose"):
        s.write(s.long_info(info))


def remove(s: Session, args: List[str], multiple: bool) -> None:
    device = s.device(args[0] if args else None)
    if s.has("force") and args:
        try:
            _wipe(s, device, force=True)
        except Failed:
            pass
    retry = 5.0 if s.has("retry") else 0.0
    s.call("remove", device, s.control.remove, device,
           deferred=bool(s.has("deferred")), retry=retry)


def remove_all(s: Session, args: List[str], multiple: bool) -> None:
    ctl = s.control
    s.call("remove_all", None, ctl.remove_all, deferred=bool(s.has("deferred")))
    if not s.has("force"):
        return
    left = ctl.list_devices(uuids=False)
    if not left:
        return
    for dev in left:
        try:
            _wipe(s, dev.name, force=True)
        except Failed:
            pass
    _quietly(ctl.remove_all)
    left = ctl.list_devices(uuids=False)
    if left:
        s.error(f"Unable to remove {len(left)} device(s).")


def _wipe(s: Session, device, force: bool) -> None:
    """Load an error table of the same size and resume it (wipe_table, remove -f)."""
    from pydevmapper.table import Table

    ctl = s.control
    tbl = None
    try:
        tbl = ctl.table(device)
    except Exception:  # dmsetup sizes a missing table as 0 and lets the kernel say no
        pass
    size = tbl.size if tbl else 0
    if size == 0:
        raise s.ioctl_failed("reload", device, OSError(errno.EINVAL, ""))
    s.call("reload", device, ctl.load, device, Table.single(size, "error"),
           readonly=bool(s.has("readonly")))
    flush = force or s.has("noflush")
    lockfs = force or s.has("nolockfs")
    try:
        s.call("resume", device, ctl.resume, device, noflush=bool(flush), nolockfs=bool(lockfs))
    except Failed:
        _quietly(ctl.clear, device)
        raise


def wipe_table(s: Session, args: List[str], multiple: bool) -> None:
    if not args or not args[0]:
        s.error("No device specified.")
        raise Failed()
    _wipe(s, args[0], force=bool(s.has("force")))


# -- suspend, resume, clear, wait, rename, message -----------------------------

def _simple(task: str, method: str, pass_flags: bool):
    def run(s: Session, args: List[str], multiple: bool) -> None:
        device = s.device(args[0] if args else None)
        kwargs = {}
        if pass_flags:
            kwargs = {"noflush": bool(s.has("noflush")), "nolockfs": bool(s.has("nolockfs"))}
        info = s.call(task, device, getattr(s.control, method), device, **kwargs)
        if s.has("verbose"):
            s.write(s.long_info(info or s.info(device)))
    return run


suspend = _simple("suspend", "suspend", True)
resume = _simple("resume", "resume", True)
clear = _simple("clear", "clear", False)


def wait(s: Session, args: List[str], multiple: bool) -> None:
    name = None
    if not s.has("uuid") and not s.has("major"):
        if not args:
            s.error("No device specified.")
            raise Failed()
        name, args = args[0], args[1:]
    device = s.device(name)
    event_nr = atoi(args[-1]) if args else 0
    info = s.call("waitevent", device, s.control.wait, device, event_nr)
    if s.has("verbose"):
        s.write(s.long_info(info))


def rename(s: Session, args: List[str], multiple: bool) -> None:
    device = s.device(args[0] if len(args) == 2 else None)
    ctl = s.control
    if s.has("setuuid"):
        s.call("rename", device, ctl.set_uuid, device, args[-1])
    else:
        s.call("rename", device, ctl.rename, device, args[-1])


def message(s: Session, args: List[str], multiple: bool) -> None:
    if s.has("uuid") or s.has("major"):
        device = s.device(None)
    else:
        device, args = s.device(args[0]), args[1:]
    text = args[0] if args else ""
    if not text.isdigit():
        s.error("Invalid sector.")
        raise Failed()
    sector = int(text)
    if len(args) < 2:
        s.error("No message supplied.")
    reply = s.call("message", device, s.control.message, device, sector, " ".join(args[1:]))
    if reply:
        s.write(reply if reply.endswith("\n") else reply + "\n")


def setgeometry(s: Session, args: List[str], multiple: bool) -> None:
    if s.has("uuid") or s.has("major"):
        device = s.device(None)
    else:
        device, args = s.device(args[0]), args[1:]
    cyl, heads, sectors, start = (atoi(a) for a in args[:4])
    s.call("setgeometry", device, s.control.set_geometry, device, cyl, heads, sectors, start)


# -- listing ---------------------------------------------------------------------

def for_all(s: Session, fn, args: List[str], silent: bool = False) -> None:
    """Run fn for every device (dmsetup's _process_all); any failure fails the lot."""
    devices = s.call("names", None, s.control.list_devices, uuids=False)
    if not devices:
        if not silent and not s.has("json"):  # --json: an empty list, nothing else
            s.write("No devices found\n")
        return
    failed = False
    for dev in devices:
        try:
            fn(s, [dev.name], True)
        except Failed:
            failed = True
    if failed:
        raise Failed()


def _dev_label(s: Session, major: int, minor: int, comma: bool) -> str:
    kind = _name_type(s)
    if kind == "blkdevname":
        found = kernel_name(major, minor)
    elif kind == "devname":
        found = mapped_name(major, minor)
    else:
        found = None
    if found:
        return f"({found})"
    return f"({major}, {minor})" if comma else f"({major}:{minor})"


def _name_type(s: Session) -> str:
    """-o devno|devname|blkdevname, each abbreviable as dmsetup's strncmp allows."""
    if not s.has("options") or s.has("columns"):
        return "devno"
    kind = "devno"
    for word in (s.value("options") or "").split(","):
        if "devno".startswith(word):
            kind = "devno"
        elif "blkdevname".startswith(word):
            kind = "blkdevname"
        elif "devname".startswith(word):
            kind = "devname"
        else:
            s.error(f"Option not recognised: {word}.")
            raise Failed()
    return kind


def ls(s: Session, args: List[str], multiple: bool) -> None:
    if s.has("json"):
        s.write(jsonout.ls(s.control.list_devices()))
        return
    if s.has("target") or s.has("exec"):
        for_all(s, lambda s2, a, m: _status_one(s2, a[0], "ls", False), [])
        return
    if s.has("tree"):
        s.error("pydmsetup: ls --tree is not implemented")
        raise Failed()
    _name_type(s)
    devices = s.call("names", None, s.control.list_devices, uuids=False)
    if not devices:
        s.write("No devices found\n")
    for dev in devices:
        s.write(f"{dev.name}\t{_dev_label(s, dev.major, dev.minor, False)}\n")


def info(s: Session, args: List[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, info, [])
    dev = s.info(s.device(args[0] if args else None))
    if s.has("json"):
        s.json_rows.append(jsonout.info(dev, read_ahead(dev.major, dev.minor)))
    elif s.has("columns"):
        s.report_rows.append(info_row(s, dev))
    else:
        s.write(s.long_info(dev))


def info_row(s: Session, dev) -> Dict[str, object]:
    subsystem = names.uuid_prefix(dev.uuid)
    row: Dict[str, object] = {
        "name": dev.name, "mangled_name": names.mangle(dev.name),
        "unmangled_name": names.unmangle(dev.name), "uuid": dev.uuid,
        "mangled_uuid": names.mangle(dev.uuid), "unmangled_uuid": names.unmangle(dev.uuid),
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
    if s.needs_deps:
        deps = s.call("deps", dev.devno, s.control.deps, dev.devno,
                      inactive=bool(s.has("inactive")))
        row["device_count"] = len(deps)
        row["devnos_used"] = ",".join(sorted(f"{d.major}:{d.minor}" for d in deps))
        row["blkdevs_used"] = ",".join(sorted(kernel_name(*d) or "" for d in deps))
    return row


def deps(s: Session, args: List[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, deps, [])
    _name_type(s)  # rejects a bad -o before anything is sent
    device = s.device(args[0] if args else None)
    used = s.call("deps", device, s.control.deps, device, inactive=bool(s.has("inactive")))
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


def status(s: Session, args: List[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, status, [])
    _status_one(s, args[0] if args else None, s.current, multiple)


def _quote_concise(text: str) -> str:
    return "".join("\\" + c if c in ",;\\" else c for c in text)


def _status_one(s: Session, name: Optional[str], cmd: str, multiple: bool) -> None:
    """table/status/ls --target for one device (dmsetup's _status)."""
    device = s.device(name)
    ctl = s.control
    inactive = bool(s.has("inactive"))
    if cmd == "table":
        tbl = s.call("table", device, ctl.table, device, inactive=inactive)
        lines = [(t.start, t.length, t.type, t.params) for t in (tbl or [])]
    else:
        lines = [tuple(t) for t in s.call("status", device, ctl.status, device, inactive=inactive,
                                           noflush=bool(s.has("noflush")), absent=True)]
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
    for start, length, ttype, params in (lines or [(None, None, None, None)]):
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
        s.error("pydmsetup: --exec is not implemented")
        raise Failed()


def targets(s: Session, args: List[str], multiple: bool) -> None:
    found = s.call("versions", None, s.control.targets)
    if s.has("json"):
        s.write(jsonout.targets(found))
        return
    for t in found:
        s.write(f"{t.name:<16} v{t.version[0]}.{t.version[1]}.{t.version[2]}\n")


def target_version(s: Session, args: List[str], multiple: bool) -> None:
    from pydevmapper.errors import DMError

    try:
        t = s.control.target_version(args[0])
    except DMError:
        raise s.ioctl_failed("target-version", args[0], OSError(errno.EINVAL, "")) from None
    s.write(f"{t.name:<16} v{t.version[0]}.{t.version[1]}.{t.version[2]}\n")


def version(s: Session, args: List[str], multiple: bool) -> None:
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


# -- user-space commands ---------------------------------------------------------

def splitname(s: Session, args: List[str], multiple: bool) -> None:
    s.report_rows.append(names.split_name(args[0], args[1] if len(args) == 2 else "LVM"))


def mangle(s: Session, args: List[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, mangle, [])
    device = s.device(args[0] if args else None)
    dev = s.info(device)
    name = args[0] if args else dev.name
    mode = (s.value("manglename") or "auto").lower() if s.has("manglename") else "auto"
    if mode == "auto":
        for what, text in (("name", name), ("UUID", dev.uuid)):
            if "\\x5cx" in text:
                extra = ("rename the device" if what == "name" else "correct the device UUID")
                s.error(f'The {what} "{text}" seems to be mangled more than once. '
                        f"Manual intervention required to {extra}.")
                raise Failed()
    fix = names.unmangle if mode == "none" else names.mangle
    new_name, new_uuid = fix(name), fix(dev.uuid)
    if new_uuid != dev.uuid:
        s.error(f"{name}: {dev.uuid}: UUID in incorrect form. ")
        s.error("Unable to change device UUID. The device must be deactivated first.")
        raise Failed()
    if new_name == name:
        uuid = dev.uuid or "[no UUID]"
        s.write(f"{name}: {uuid}: name {'and UUID ' if dev.uuid else ''}already in correct form\n")
        return
    s.write(f"{name}: renaming to {new_name}\n")
    s.call("rename", device, s.control.rename, device, new_name)


def mknodes(s: Session, args: List[str], multiple: bool) -> None:
    # The kernel and udev keep /dev/mapper; pydmsetup only checks the device.
    if args or s.has("uuid") or s.has("major"):
        s.info(s.device(args[0] if args else None))


def _cookie(s: Session, text: str) -> int:
    value = udev_cookies.parse_cookie(text)
    if value is None:
        s.error("Incorrect cookie value.")
        raise Failed()
    return value


def udevflags(s: Session, args: List[str], multiple: bool) -> None:
    s.write(udev_cookies.flag_lines(_cookie(s, args[0])))


def udevcomplete(s: Session, args: List[str], multiple: bool) -> None:
    from pydevmapper import udev

    cookie = _cookie(s, args[0])
    s.write(f"DM_COOKIE_COMPLETED=0x{cookie:<10x}\n")
    # A value with flags over a zero base only steers the rules: nobody waits.
    if not cookie & ~udev.FLAGS_MASK or not s.cookies_supported():
        return
    key = udev_cookies.key_of(cookie)
    try:
        udev.complete(key)
    except OSError as exc:
        if (exc.strerror or "").startswith("semget("):
            s.error(udev_cookies.semget_error(key, exc.errno))
        else:
            semid = next((c.semid for c in udev.list_cookies() if c.cookie == key), None)
            s.error(udev_cookies.complete_failed(key, semid, exc.errno))
        raise Failed() from None


def udevcookies(s: Session, args: List[str], multiple: bool) -> None:
    from pydevmapper import udev

    s.write(udev_cookies.cookies_table(udev.list_cookies()))


def _yes_no(prompt: str) -> str:
    """dmsetup's _yes_no_prompt: 'y' or 'n' followed by a newline; EOF is 'n'."""
    c, ret = "", ""
    while True:
        if c in ("\n", ""):
            sys.stdout.write(prompt)
            sys.stdout.flush()
        c = sys.stdin.read(1)
        if not c:
            ret = "n"
            break
        c = c.lower()
        if c in ("y", "n"):
            ret = c
        if ret and c == "\n":
            break
    if c != "\n":
        sys.stdout.write("\n")
        sys.stdout.flush()
    return ret


def udevcomplete_all(s: Session, args: List[str], multiple: bool) -> None:
    from pydevmapper import udev

    age = 0
    if args:
        parsed = udev_cookies.parse_age(args[0])
        if parsed is None:
            s.error("Failed to read age_in_minutes parameter.")
            raise Failed()
        age = parsed
    if not s.has("yes"):
        s.error(udev_cookies.complete_all_warning(age))
        s.flush()
        if _yes_no("Do you really want to continue? [y/n]: ") == "n":
            s.write(udev_cookies.complete_all_declined())
            return
    seen = {c.cookie for c in udev.list_cookies()}
    removed = udev.complete_all(age * 60.0)
    s.write(udev_cookies.complete_all_summary(len(removed), len(seen - set(removed))))


def udevcreatecookie(s: Session, args: List[str], multiple: bool) -> None:
    from pydevmapper import udev

    if not s.cookies_supported():
        return  # libdm hands out cookie 0 and prints nothing
    try:
        value = udev.create_cookie(0)
    except OSError as exc:
        s.error(f"Failed to create notification semaphore: {os.strerror(exc.errno)}")
        raise Failed() from None
    s.write(udev_cookies.created_cookie(value))


def given_cookie(s: Session) -> int:
    """--udevcookie, else $DM_UDEV_COOKIE (0: none), read as dmsetup reads them."""
    if s.has("udevcookie"):
        value = udev_cookies.parse_cookie(s.value("udevcookie") or "")
        if value is None:
            s.error("Incorrect cookie value.")
        return value or 0
    env = os.environ.get("DM_UDEV_COOKIE")
    if env:
        value = udev_cookies.parse_cookie(env)
        if value is None:
            s.error("Incorrect cookie value.")
        return value or 0
    return 0


def udevreleasecookie(s: Session, args: List[str], multiple: bool) -> None:
    from pydevmapper import udev

    cookie = _cookie(s, args[0]) if args else given_cookie(s)
    if not cookie:
        s.error("No udev transaction cookie given.")
        raise Failed()
    if not s.cookies_supported():
        return
    if cookie >> udev.FLAGS_SHIFT != udev.COOKIE_MAGIC:
        s.error(udev_cookies.bad_prefix(cookie))
        raise Failed()
    try:
        udev.release_cookie(cookie)
    except udev.UdevTimeoutError as exc:
        s.error(f"{s.prog}: {exc.strerror}")
        raise Failed() from None
    except OSError as exc:
        s.error(udev_cookies.semget_error(cookie, exc.errno))
        raise Failed() from None


def help_(s: Session, args: List[str], multiple: bool) -> None:
    from pydevmapper.cli import texts

    s.error(texts.USAGE)
    if s.has("columns"):
        s.error(texts.FIELD_HELP)


def not_implemented(name: str):
    def run(s: Session, args: List[str], multiple: bool) -> None:
        s.error(f"pydmsetup: {name} is not implemented")
        raise Failed()
    return run


COMMANDS: Dict[str, Command] = {
    "help": Command(help_, 0, 0, 0),
    "create": Command(create, 0, 2, 0),
    "remove": Command(remove, 0, -1, 2),
    "remove_all": Command(remove_all, 0, 0, 0),
    "suspend": Command(suspend, 0, -1, 2),
    "resume": Command(resume, 0, -1, 2),
    "load": Command(load, 0, 2, 0),
    "clear": Command(clear, 0, -1, 2),
    "reload": Command(load, 0, 2, 0),
    "wipe_table": Command(wipe_table, 0, -1, 2),
    "rename": Command(rename, 1, 2, 0),
    "measure": Command(not_implemented("measure"), 0, -1, 2),
    "message": Command(message, 2, -1, 0),
    "ls": Command(ls, 0, 0, 0),
    "info": Command(info, 0, -1, 1),
    "deps": Command(deps, 0, -1, 2),
    "stats": Command(not_implemented("stats"), 1, -1, 1),
    "status": Command(status, 0, -1, 2),
    "table": Command(status, 0, -1, 2),
    "wait": Command(wait, 0, 2, 0),
    "mknodes": Command(mknodes, 0, -1, 1),
    "mangle": Command(mangle, 0, -1, 1),
    "udevcreatecookie": Command(udevcreatecookie, 0, 0, 0),
    "udevreleasecookie": Command(udevreleasecookie, 0, 1, 0),
    "udevflags": Command(udevflags, 1, 1, 0),
    "udevcomplete": Command(udevcomplete, 1, 1, 0),
    "udevcomplete_all": Command(udevcomplete_all, 0, 1, 0),
    "udevcookies": Command(udevcookies, 0, 0, 0),
    "target-version": Command(target_version, 1, -1, 1),
    "targets": Command(targets, 0, 0, 0),
    "version": Command(version, 0, 0, 0),
    "setgeometry": Command(setgeometry, 5, 5, 0),
    "splitname": Command(splitname, 1, 2, 0),
}
