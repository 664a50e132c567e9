"""dmsetup's commands that change devices: create, load, remove, wipe_table,
suspend, resume, clear, wait, rename, message, setgeometry.

Each parses its arguments, calls the API and formats; see commands.py for
the calling convention.
"""

from __future__ import annotations

import errno
import sys

from pydevmapper.cli.session import Failed, Session, atoi


# -- tables ------------------------------------------------------------------

def _read_table(s: Session, file: str | None):
    """Targets from --table, a file or stdin, parsed as dmsetup's _parse_line does."""
    from pydevmapper.table import TableSyntaxError, parse_targets

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
    try:
        return parse_targets(text, dmsetup=True)
    except TableSyntaxError as exc:
        s.error(f"Invalid format on line {exc.lineno} of table {label}.")
        raise Failed() from None


def _table_of(s: Session, targets, device, devno: str | None = None):
    from pydevmapper.errors import ValidationError
    from pydevmapper.table import Table

    try:
        return Table(targets)
    except ValidationError:
        # dmsetup leaves such tables to the kernel, which refuses them.
        raise s.ioctl_failed("reload", device, OSError(errno.EINVAL, ""), devno) from None


# -- create, load, remove ------------------------------------------------------

def create(s: Session, args: list[str], multiple: bool) -> None:
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


def _create_one(s: Session, name: str, uuid: str | None, minor: int | None,
                readonly: bool, targets) -> None:
    from pydevmapper.device import DevNo

    devno = None
    if minor is not None or s.has("major"):
        devno = DevNo(atoi(s.value("major")) if s.has("major") else 253,
                      minor if minor is not None else atoi(s.value("minor")))
    ctl = s.control
    if targets:
        s.check_transaction(name)
    # libdm names the uuid it sent when a create fails, and makes the node
    # at the resume unless given --addnodeoncreate
    info = s.call("create", name, ctl.create, name, uuid=uuid, devno=devno,
                  node=bool(s.has("addnodeoncreate")), sent_uuid=uuid or "")
    if targets:
        label = str(info.devno)
        table = _table_of(s, targets, name, label)
        try:
            s.call("reload", name, ctl.load, info.devno, table, readonly=readonly, devno=label)
            info = s.call("resume", name, ctl.resume, info.devno) or info
        except Failed:
            _quietly(ctl.remove, info.devno, retry=5.0)
            raise
        request = s.read_ahead_request()
        if request:
            s.set_read_ahead(info.devno, request)
    if s.has("verbose"):
        s.write(s.long_info(s.info(info.devno)))


def _quietly(fn, *args, **kwargs) -> None:
    from pydevmapper.errors import DMError

    try:
        fn(*args, **kwargs)
    except DMError:
        pass


def _concise_specs(s: Session, text: str | None):
    """``name,uuid,minor,flags,table[,table...]`` entries separated by ';'."""
    from pydevmapper.table import Target

    if s.has("table") or s.has("minor") or s.has("uuid") or s.has("notable") or s.has("inactive"):
        s.error("--concise is incompatible with --[no]table, --minor, --uuid and --inactive.")
        raise Failed()
    if text is None:
        text = sys.stdin.read()
    devices: list[list[str]] = []
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


def load(s: Session, args: list[str], multiple: bool) -> None:
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


def remove(s: Session, args: list[str], multiple: bool) -> None:
    device = s.device(args[0] if args else None)
    if s.has("force") and args:
        if s.udev_cookie():  # udev may see the error table come and go
            s.error("WARNING: Use of cookie and --force is not compatible.")
        try:
            _wipe(s, device, force=True)
        except Failed:
            pass
    retry = 5.0 if s.has("retry") else 0.0
    s.call("remove", device, s.control.remove, device,
           deferred=bool(s.has("deferred")), retry=retry)


def remove_all(s: Session, args: list[str], multiple: bool) -> None:
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


def wipe_table(s: Session, args: list[str], multiple: bool) -> None:
    if not args or not args[0]:
        s.error("No device specified.")
        raise Failed()
    _wipe(s, args[0], force=bool(s.has("force")))


# -- suspend, resume, clear, wait, rename, message -----------------------------

def _simple(task: str, method: str, pass_flags: bool):
    def run(s: Session, args: list[str], multiple: bool) -> None:
        device = s.device(args[0] if args else None)
        kwargs = {}
        if pass_flags:
            kwargs = {"noflush": bool(s.has("noflush")), "nolockfs": bool(s.has("nolockfs"))}
        info = s.call(task, device, getattr(s.control, method), device, **kwargs)
        # libdevmapper sets read-ahead after a resume of a device it was
        # given by name; by uuid or number it has no name and skips it.
        request = s.read_ahead_request() if method == "resume" and type(device) is str else None
        if info is None and (request or s.has("verbose")):
            # udev was late, and the command itself went through: ask once.
            info = s.info(device)
        if request:
            s.set_read_ahead(info.devno, request)
        if s.has("verbose"):
            s.write(s.long_info(info))
    return run


suspend = _simple("suspend", "suspend", True)
resume = _simple("resume", "resume", True)
clear = _simple("clear", "clear", False)


def wait(s: Session, args: list[str], multiple: bool) -> None:
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


def rename(s: Session, args: list[str], multiple: bool) -> None:
    device = s.device(args[0] if len(args) == 2 else None)
    ctl = s.control
    if s.has("setuuid"):
        s.call("rename", device, ctl.set_uuid, device, args[-1])
    else:
        s.call("rename", device, ctl.rename, device, args[-1])


def message(s: Session, args: list[str], multiple: bool) -> None:
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


def setgeometry(s: Session, args: list[str], multiple: bool) -> None:
    if s.has("uuid") or s.has("major"):
        device = s.device(None)
    else:
        device, args = s.device(args[0]), args[1:]
    cyl, heads, sectors, start = (atoi(a) for a in args[:4])
    s.call("setgeometry", device, s.control.set_geometry, device, cyl, heads, sectors, start)
