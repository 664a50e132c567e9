# SPDX-License-Identifier: LGPL-2.1-or-later
"""dmsetup's commands that change devices: create, load, remove, wipe_table,
suspend, resume, clear, wait, rename, message, setgeometry.

Each parses its arguments, calls the API and formats; see commands.py for
the calling convention.
"""

from __future__ import annotations

import errno
import sys

from pydevmapper.cli.session import Failed, Session
from pydevmapper.cparse import C_SPACE, atoi

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pydevmapper.cli.commands import CommandFn
    from pydevmapper.errors import DMError
    from pydevmapper.tables import Target
    from pydevmapper.types import DeviceId, DeviceInfo


# -- tables ------------------------------------------------------------------

def _read_table(s: Session, file: str | None) -> list[Target]:
    """Targets from --table, a file or stdin, parsed as dmsetup's _parse_line does."""
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
    return _parse_table(s, text, label)


def _parse_table(s: Session, text: str, label: str) -> list[Target]:
    from pydevmapper.tables import TableSyntaxError, parse_targets

    try:
        return parse_targets(text, dmsetup=True)
    except TableSyntaxError as exc:
        s.error(f"Invalid format on line {exc.lineno} of table {label}.")
        raise Failed() from None


# -- create, load, remove ------------------------------------------------------

# libdm runs a create with a table as three ioctls and names each in its
# failure line: (task, names the device number, names the uuid sent).
_CREATE_STEPS = {"DM_DEV_CREATE": ("create", False, True),
                 "DM_TABLE_LOAD": ("reload", True, False),
                 "DM_DEV_SUSPEND": ("resume", False, False)}


def create(s: Session, args: list[str], multiple: bool) -> None:
    if s.has("concise"):
        if len(args) > 1:
            s.error("dmsetup create --concise takes at most one argument")
            raise Failed()
        if s.has("table") or s.has("minor") or s.has("uuid") or s.has("notable") or s.has("inactive"):
            s.error("--concise is incompatible with --[no]table, --minor, --uuid and --inactive.")
            raise Failed()
        text = args[0] if args else sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        for name, uuid, minor, readonly, table in concise_devices(s, text):
            _create_one(s, name, uuid, minor, readonly, _parse_table(s, table, ""))
        return
    if not args:
        s.error("Please provide a name for the new device.")
        raise Failed()
    targets = None if s.has("notable") else _read_table(s, args[1] if len(args) == 2 else None)
    _create_one(s, args[0], s.value("uuid") if s.has("uuid") else None,
                atoi(s.value("minor")) if s.has("minor") else None,
                bool(s.has("readonly")), targets)


def _create_one(s: Session, name: str, uuid: str | None, minor: int | None,
                readonly: bool, targets: list[Target] | None) -> None:
    from pydevmapper import operations
    from pydevmapper.errors import ValidationError
    from pydevmapper.tables import Table
    from pydevmapper.types import DevNo

    name = s.new_name(name)
    uuid = s.sent(uuid, "UUID") if uuid is not None else None
    devno = None
    if minor is not None:
        devno = DevNo(atoi(s.value("major")) if s.has("major") else dm_major(), minor)
    ctl = s.control
    node = bool(s.has("addnodeoncreate"))
    table = None
    if targets:
        try:
            table = Table(targets)
        except ValidationError:
            # dmsetup leaves such tables to the kernel, which refuses them
            # once the device exists: create it, say so, remove it.
            # (create_device checks the udev transaction itself.)
            s.check_transaction(name)
            info = s.call("create", name, lambda: ctl.create(name, uuid=uuid, devno=devno, node=node),
                          sent_uuid=uuid or "")
            failed = s.ioctl_failed("reload", name, OSError(errno.EINVAL, ""), str(info.devno))
            operations.remove_quietly(ctl, info.devno)
            raise failed from None
    if table is None:
        info = s.call("create", name, lambda: ctl.create(name, uuid=uuid, devno=devno, node=node),
                      sent_uuid=uuid or "")
    else:
        info = s.call(_CREATE_STEPS, name, lambda: operations.create_device(
            ctl, name, table, uuid=uuid, readonly=readonly, devno=devno,
            node_on_create=node).info(), sent_uuid=uuid or "")
        request = s.read_ahead_request()
        if request:
            s.set_read_ahead(info.devno, request)
    if s.has("verbose"):
        s.write(s.long_info(s.info(info.devno)))


def dm_major() -> int:
    """device-mapper's block major, as libdm reads it from /proc/devices (253 if unreadable)."""
    try:
        with open("/proc/devices") as f:
            for line in f:
                number, _, name = line.strip().partition(" ")
                if name == "device-mapper":
                    return int(number)
    except (OSError, ValueError):
        pass
    return 253


def concise_devices(s: Session, text: str) -> Iterator[tuple[str, str | None, int | None, bool, str]]:
    """dmsetup's ``--concise`` walk: ``name,uuid,minor,flags,table[,table...]``
    entries separated by ';', a backslash quoting the next character.

    Yields (name, uuid, minor, readonly, table text) for each device as its
    end is reached, so devices before a bad entry are created, as dmsetup
    creates them; a bad entry prints dmsetup's lines and raises Failed.
    """
    # None: a field not reached yet ("(null)" in the failure line).
    fields: list[str | None] = ["", None, None, None, None]
    f = 0
    cur: list[str] = []
    i, n = 0, len(text)

    def fail(*lines: str) -> Failed:
        shown = [x if x is not None else "(null)" for x in fields[:f] + ["".join(cur)] + fields[f + 1:]]
        for line in lines:
            s.error(line)
        s.error(f"Parsed {f + 1} fields: name: {shown[0]} uuid: {shown[1]} minor: {shown[2]} "
                f"flags: {shown[3]} table: {shown[4]}")
        return Failed()

    def skip_blanks(i: int) -> int:
        while i < n and text[i] in C_SPACE:
            i += 1
        return i

    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 1
            if i >= n:
                raise fail("Backslash must be followed by another character at end of string.")
            cur.append(text[i])
            i += 1
        elif ch == "," and f < 4:
            fields[f] = "".join(cur)
            cur = []
            f += 1
            fields[f] = ""
            i = skip_blanks(i + 1)
        elif ch == ",":
            cur.append("\n")  # a comma in the table field ends a table line
            i += 1
        elif ch == ";" or i + 1 == n:
            if ch != ";":
                cur.append(ch)
            i += 1
            if f != 4:
                raise fail("Five comma-separated fields are required for each device")
            fields[f] = "".join(cur)
            name, uuid, minor, flags, table = (x or "" for x in fields)  # all five read by now
            if flags not in ("", "ro", "rw"):
                s.error(f"Invalid flags parameter '{flags}' must be 'ro' or 'rw' or empty.")
                raise Failed()
            yield name, uuid or None, atoi(minor) if minor else None, flags == "ro", table
            fields, f, cur = ["", None, None, None, None], 0, []
            i = skip_blanks(i)
        else:
            cur.append(ch)
            i += 1
    if cur or f:
        raise fail("Incomplete entry: five comma-separated fields are required for each device")



def load(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper.errors import ValidationError
    from pydevmapper.tables import Table

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
    try:
        table = Table(targets)
    except ValidationError:
        # dmsetup leaves such tables to the kernel, which refuses them.
        raise s.ioctl_failed("reload", device, OSError(errno.EINVAL, "")) from None
    info = s.call("reload", device, lambda: s.control.load(
        device, table, readonly=bool(s.has("readonly"))))
    if s.has("verbose"):
        s.write(s.long_info(s.shown_info(info)))


# A wipe's failed step, as libdm names it: (task, device number, uuid sent).
_WIPE_STEPS = {"DM_TABLE_STATUS": ("table", False, False),
               "DM_TABLE_LOAD": ("reload", False, False),
               "DM_DEV_SUSPEND": ("resume", False, False)}


def _wipe_failed(s: Session, device: DeviceId) -> Callable[[DMError], Failed]:
    """dmsetup reports a failed wipe of remove --force and remove_all --force, and goes on."""
    return lambda exc: s.failure(_WIPE_STEPS, device, exc)


def remove(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper import operations

    device = s.device(args[0] if args else None)
    force = bool(s.has("force") and args)
    if force and s.udev_cookie():  # udev may see the error table come and go
        s.error("WARNING: Use of cookie and --force is not compatible.")
    ctl = s.control
    s.call("remove", device, lambda: operations.remove(
        ctl, device, deferred=bool(s.has("deferred")), retry=5.0 if s.has("retry") else 0.0,
        force=force, on_wipe_error=_wipe_failed(s, device)))


def remove_all(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper import operations

    ctl = s.control
    left = s.call("remove_all", None, lambda: operations.remove_all(
        ctl, deferred=bool(s.has("deferred")), force=bool(s.has("force")),
        on_wipe_error=lambda exc: s.failure(_WIPE_STEPS, exc.device, exc)))
    if left:
        s.error(f"Unable to remove {len(left)} device(s).")


def wipe_table(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper import operations
    from pydevmapper.errors import DeviceNotFoundError

    if not args or not args[0]:
        s.error("No device specified.")
        raise Failed()
    device, force = s.device(args[0]), bool(s.has("force"))
    ctl = s.control

    def wipe() -> DeviceInfo:
        try:
            return operations.wipe_table(ctl, device, noflush=force or bool(s.has("noflush")),
                                         nolockfs=force or bool(s.has("nolockfs")),
                                         readonly=bool(s.has("readonly")))
        except DeviceNotFoundError as exc:
            if exc.command != "DM_TABLE_STATUS":
                raise
            # dmsetup sizes the error table from a table ioctl that failed,
            # then sends the reload all the same, which fails the same way.
            s.failure(_WIPE_STEPS, device, exc)
            raise s.ioctl_failed("reload", device, exc) from None

    s.call(_WIPE_STEPS, device, wipe)


# -- suspend, resume, clear, wait, rename, message -----------------------------

def _simple(task: str, method: str, pass_flags: bool,
            checks: Callable[[Session, DeviceId], None] | None = None) -> CommandFn:
    """``checks``: what ``--checks`` runs first."""
    def run(s: Session, args: list[str], multiple: bool) -> None:
        device = s.device(args[0] if args else None)
        kwargs: dict[str, bool] = {}
        if pass_flags:
            kwargs = {"noflush": bool(s.has("noflush")), "nolockfs": bool(s.has("nolockfs"))}
        if checks is not None and s.has("checks"):
            checks(s, device)
        info: DeviceInfo | None = s.call(task, device, lambda: getattr(s.control, method)(device, **kwargs))
        # libdevmapper sets read-ahead after a resume of a device it was
        # given by name; by uuid or number it has no name and skips it.
        request = s.read_ahead_request() if method == "resume" and type(device) is str else None
        if info is None and (request or s.has("verbose")):
            # udev was late, and the command itself went through: ask once.
            info = s.info(device)
        if info is not None and request:
            s.set_read_ahead(info.devno, request)
        if info is not None and s.has("verbose"):
            s.write(s.long_info(s.shown_info(info)))
    return run


def _check_nothing_below_suspended(s: Session, device: DeviceId) -> None:
    """libdm's ``--checks`` before a suspend: walk the device's mapped
    dependencies, depth first, and report each one already suspended (I/O
    could be trapped between the two) as libdm's internal error, which
    does not stop the suspend; a failed deps ioctl does.  A suspended
    device's own dependencies are not walked.  (libdm reads the state off
    the deps reply; here it is a status ioctl of its own.)"""
    from pydevmapper.types import DevNo

    major = dm_major()
    top = f"({device.major}:{device.minor}) " if isinstance(device, DevNo) else str(device)

    def check(dev: DeviceId, user: str | None) -> None:
        """``user``: how libdm names the device that uses ``dev`` (None for the device itself)."""
        used = s.call("deps", dev, lambda: s.control.deps(dev))
        info = s.call("deps", dev, lambda: s.control.info(dev))
        here = f"({info.major}:{info.minor})"
        if info.suspended:
            if user is not None:  # (the device itself: libdm only logs it at debug level)
                # libdm's format leaves no space after a name or uuid.
                s.error(f"Internal error: Attempt to suspend device {user}that uses already-suspended device {here}")
            return
        for child in used:
            if child.major == major:
                check(child, top if user is None else here + " ")

    check(device, None)


suspend = _simple("suspend", "suspend", True, _check_nothing_below_suspended)
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
    event_nr = atoi(args[-1]) & 0xFFFFFFFF if args else 0  # dmsetup's (uint32_t) atoi()
    info = s.call("waitevent", device, lambda: s.control.wait(device, event_nr))
    if s.has("verbose"):
        s.write(s.long_info(s.shown_info(info)))


def rename(s: Session, args: list[str], multiple: bool) -> None:
    device = s.device(args[0] if len(args) == 2 else None)
    ctl = s.control
    if s.has("setuuid"):
        uuid = s.sent(args[-1], "new UUID")
        s.call("rename", device, lambda: ctl.set_uuid(device, uuid))
    else:
        name = s.new_name(args[-1], "new name")
        s.call("rename", device, lambda: ctl.rename(device, name))


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
    reply = s.call("message", device, lambda: s.control.message(device, sector, " ".join(args[1:])))
    if reply:
        s.write(reply if reply.endswith("\n") else reply + "\n")


def setgeometry(s: Session, args: list[str], multiple: bool) -> None:
    if s.has("uuid") or s.has("major"):
        device = s.device(None)
    else:
        device, args = s.device(args[0]), args[1:]
    cyl, heads, sectors, start = (atoi(a) for a in args[:4])
    s.call("setgeometry", device, lambda: s.control.set_geometry(
        device, cyl, heads, sectors, start))
