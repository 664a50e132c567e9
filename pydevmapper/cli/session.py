# SPDX-License-Identifier: LGPL-2.1-or-later
"""What every command shares: the switches, output, the control node, and
libdevmapper's wording of failures.

Scripts grep dmsetup's stderr, so failures are worded as libdevmapper words
them (``device-mapper: remove ioctl on NAME  failed: <strerror>``); the
behaviour itself is the Python API's.
"""

from __future__ import annotations

import errno
import os
import sys

from pydevmapper._namedtuple import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:  # imported lazily: start-up time matters to scripts
    from collections.abc import Callable
    from typing import TypeVar, Union

    from pydevmapper.cli.commands import Command
    from pydevmapper.cli.options import Parsed
    from pydevmapper.cli.report import Options, Row
    from pydevmapper.cli.tree import TreeOptions
    from pydevmapper.control import Control
    from pydevmapper.deptree import DeviceGraph
    from pydevmapper.errors import DMError
    from pydevmapper.mangling import Mode
    from pydevmapper.types import DeviceId, DeviceInfo, DevNo, ListedDevice
    from pydevmapper.udev import UdevTimeoutError

    T = TypeVar("T")
    # How libdm names a failed ioctl: its task, or for an operation of
    # several commands, each command's (task, names the device number,
    # names the uuid sent).
    Task = Union[str, dict[str, tuple[str, bool, bool]]]

# dmsetup's own version, which pydmsetup emulates.  Error texts that quote
# the library version quote this one so their bytes match.
EMULATED_LIBRARY = "1.02.185 (2022-05-18)"

# How long pydmsetup waits for udev to release a cookie.  dmsetup waits
# without bound; pydmsetup stops where udevd gives up on an event itself
# (systemd-udevd's default event_timeout), so a slow udev - seconds per
# event in an emulated guest - is waited for as dmsetup would, and a
# completion that can no longer come still ends the wait.
UDEV_TIMEOUT = 180.0


# libdm's second line when a name or uuid cannot be mangled.
_MANGLE_FAILED = {"name": 'Failed to mangle device name "{}".',
                  "new name": 'Failed to mangle new device name "{}"',
                  "UUID": 'Failed to mangle device uuid "{}".',
                  "new UUID": 'Failed to mangle new device UUID "{}"'}


# What libdm says when the kernel's interface is too old for a request
# (its _flatten), by the feature UnsupportedError names.
_LIBDM_REFUSALS = {
    "IMA measurement": "WARNING: IMA measurement unsupported by kernel.  Aborting operation.",
}


class Failed(Exception):
    """The command failed; its messages were already printed."""


class Plan(NamedTuple):
    """What this run does, decided once from the switches before the
    command runs (cli/__init__._run builds it; nothing changes it after)."""

    command: str  # as named on the command line ("table", "splitname", ...)
    run: Command  # what runs for each device argument (info, under -S)
    selected: Command | None  # under -S: the command run on each device kept
    columns: bool  # a -c report (splitname and -S make one too)
    report: Options | None  # its fields, sort, selection and layout
    name_type: str = "devno"  # -o devno|blkdevname|devname outside a report
    tree_options: TreeOptions | None = None  # --tree's -o options
    needs_deps: bool = False  # report fields the report reads per device
    needs_tree: bool = False
    needs_stats: bool = False


class Session:
    # A console process (cli.console) ends at once after udevcomplete has
    # released the waiter; main() called in a process of its own returns.
    ends_when_released = False

    def __init__(self, prog: str, parsed: Parsed) -> None:
        self.prog = prog
        self.counts = parsed.counts
        self.values = parsed.values  # each switch's last value
        self.given = parsed.given  # all of them, for the few that accumulate
        self.out: list[str] = []
        self._control: Control | None = None
        self._cookie: int | None = None
        self._bypass_said = False
        self.concise_started = False
        self._plan: Plan | None = None  # set once by begin(), before the command runs
        self.graph: DeviceGraph | None = None  # the dependency graph, read once when a tree needs it
        self.exec_argv: list[str] | None = None  # --exec's words, split at first use
        self.report_rows: list[Row] = []  # this run's -c rows
        self.json_rows: list[dict[str, object]] = []  # this run's --json rows

    def begin(self, plan: Plan) -> None:
        """Fix the plan, once."""
        assert self._plan is None, "a session runs one plan"
        self._plan = plan

    @property
    def plan(self) -> Plan:
        """The plan: commands run only after begin()."""
        plan = self._plan
        assert plan is not None, "the plan is made before a command runs"
        return plan

    def new_run(self) -> None:
        """Before each run of a repeating (-c/--count) command."""
        self.report_rows = []
        self.json_rows = []

    @property
    def current(self) -> str | None:
        """The command, once the plan is made."""
        return self._plan.command if self._plan is not None else None

    # -- switches ------------------------------------------------------------
    def has(self, name: str) -> int:
        return self.counts.get(name, 0)

    def value(self, name: str) -> str | None:
        return self.values.get(name)

    # -- names, mangled as libdm mangles them ----------------------------------
    @property
    def mangling(self) -> Mode:
        """--manglename, else $DM_DEFAULT_NAME_MANGLING_MODE, else auto; the
        mangle command looks devices up by their names as the kernel holds them."""
        from pydevmapper import mangling

        if self.current == "mangle":
            return "none"
        if self.has("manglename"):
            return (self.value("manglename") or "").lower()  # type: ignore[return-value]  # checked by options
        return mangling.default_mode()

    def sent(self, text: str, what: str = "name") -> str:
        """A name or uuid from the command line as libdm sends it (a path,
        with '/', is looked up as it is)."""
        from pydevmapper import mangling

        mode = self.mangling
        if mode == "none" or not text or ("/" in text and what == "name"):
            return text
        twice = mangling.mangled_twice(text, what) if mode == "auto" else None
        if twice:
            self.error(str(twice))
            raise Failed()
        return self.mangled(text, mode, what)

    def mangled(self, text: str, mode: Mode, what: str, *after: str) -> str:
        """``mangling.mangle``; a refusal printed as libdm prints it (its
        message, then its "Failed to mangle" line and any ``after``)."""
        from pydevmapper import mangling
        from pydevmapper.errors import ValidationError

        try:
            return mangling.mangle(text, mode, what)
        except ValidationError as exc:
            self.error(str(exc))
            self.error(_MANGLE_FAILED[what].format(text))
            for line in after:
                self.error(line)
            raise Failed() from None

    def new_name(self, name: str, what: str = "name") -> str:
        """A name create or rename gives, as libdm sends it: '/' is refused
        (a lookup takes it as a path), then the name is mangled."""
        if "/" in name:
            self.error(f'Name "{name}" invalid. It contains "/".')
            raise Failed()
        return self.sent(name, what)

    def shown(self, text: str, what: str = "name") -> str:
        """A name or uuid from the kernel as libdm returns it to dmsetup:
        unmangled, unless mangling is off.  One libdm refuses fails the command."""
        from pydevmapper import mangling
        from pydevmapper.errors import ValidationError

        mode = self.mangling
        if mode == "none" or not text:
            return text
        try:
            return mangling.unmangle(text, mode, what)
        except ValidationError as exc:
            self.error(str(exc))
            raise Failed() from None

    def list_devices(self) -> list[ListedDevice]:
        """DM_LIST_DEVICES with names as libdm returns them: one name it
        cannot unmangle fails the whole list, after each such name is said."""
        devices = self.call("names", None, lambda: self.control.list_devices(uuids=False))
        shown: list[ListedDevice] = []
        failed = False
        for dev in devices:
            try:
                shown.append(dev._replace(name=self.shown(dev.name)))
            except Failed:
                failed = True
        if failed:
            raise Failed()
        return shown

    # -- output ----------------------------------------------------------------
    def write(self, text: str) -> None:
        self.out.append(text)

    def flush(self) -> None:
        if self.out:
            data = "".join(self.out).encode("utf-8", "surrogateescape")
            self.out.clear()
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    def error(self, text: str) -> None:
        # stdout first, so interleaving matches a C program writing to a
        # terminal or a pipe line by line closely enough for scripts.
        self.flush()
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()

    # -- the kernel ------------------------------------------------------------
    @property
    def control(self) -> Control:
        if self._control is None:
            from pydevmapper.control import Control, default_dev_dir
            from pydevmapper.errors import DMError
            from pydevmapper.nodes import NodeError, ensure_control_node
            from pydevmapper.udev import Transaction

            cookie = self.udev_cookie()
            try:
                # libdevmapper makes a missing control node before it opens it.
                ensure_control_node(default_dev_dir())
                self._control = Control(udev_sync=self.udev_sync_wanted(),
                                        udev_transaction=Transaction(cookie) if cookie else None,
                                        udev_rules=not self.has("noudevrules"),
                                        udev_timeout=UDEV_TIMEOUT,
                                        on_udev_timeout=self.udev_late,
                                        # node_uid, node_gid and node_mode: ints
                                        **self._node_owner())  # type: ignore[arg-type]
            except (DMError, NodeError) as exc:
                if isinstance(exc, NodeError):
                    self.error(f"{exc.filename}: {exc.strerror}")
                else:
                    path = os.path.join(default_dev_dir(), "mapper", "control")
                    # A DMError always has an errno.
                    self.error(f"{path}: open failed: {os.strerror(exc.errno)}")  # type: ignore[arg-type]
                self.error("Failure to communicate with kernel device-mapper driver.")
                if os.geteuid() == 0:
                    self.error("Check that device-mapper is available in the kernel.")
                self.error(f"Incompatible libdevmapper {EMULATED_LIBRARY} and kernel driver (unknown version).")
                raise Failed() from None
        return self._control

    def _node_owner(self) -> dict[str, int]:
        """-U, -G and -M, for the nodes a create makes.  dmsetup gives them
        to its create (and the resume that follows it) only: a lone resume,
        rename or mknodes makes nodes root:disk 0660 whatever was passed."""
        if self.current != "create":
            return {}
        from pydevmapper.cli.options import mode_value
        from pydevmapper.cparse import atoi

        owner: dict[str, int] = {}
        for switch, key in (("uid", "node_uid"), ("gid", "node_gid")):
            if self.has(switch):
                # uid_t/gid_t are unsigned: C turns -5 into 2**32 - 5, and
                # chown leaves an id of (uid_t)-1 as it is: the creator's, root.
                value = atoi(self.value(switch) or "") % (1 << 32)
                owner[key] = 0 if value == 0xFFFFFFFF else value
        if self.has("mode"):  # checked when the switches were read
            owner["node_mode"] = mode_value(self.value("mode") or "")
        return owner

    def read_ahead_request(self) -> tuple[int, bool] | None:
        """--readahead as (sectors, minimum), or None: leave the kernel's."""
        from pydevmapper.cli.options import (
            READ_AHEAD_AUTO,
            read_ahead_minimum,
            read_ahead_value,
        )

        if not self.has("readahead"):
            return None
        sectors = read_ahead_value(self.value("readahead") or "")
        if sectors == READ_AHEAD_AUTO:
            return None
        return sectors, read_ahead_minimum(self.given.get("readahead", []))

    def set_read_ahead(self, devno: DevNo, request: tuple[int, bool]) -> None:
        """``read_ahead_request()``'s answer, after a resume, as libdevmapper
        does; like it, a failure is said and does not fail the command (the
        device is up)."""
        from pydevmapper import readahead
        from pydevmapper.errors import DMError

        sectors, minimum = request
        try:
            self.control.set_read_ahead(devno, sectors, minimum=minimum)
        except DMError as exc:
            self.error(f"{readahead.sysfs_path(devno)}: write failed: {exc.strerror}")

    def udev_bypass_warning(self) -> None:
        """libdevmapper's warning, once, the first time it asks whether to
        sync with udev (with --noudevsync, before any command; else at the
        first command that raises a uevent): $DM_DISABLE_UDEV (set, even
        empty) overrides a running udev.  "Running" as libudev tells it:
        udevd's control socket exists."""
        if self._bypass_said:
            return
        self._bypass_said = True
        if "DM_DISABLE_UDEV" in os.environ and os.path.exists("/run/udev/control"):
            self.error("Udev is running and DM_DISABLE_UDEV environment variable is set. "
                       "Bypassing udev, device-mapper library will manage device nodes "
                       "in device directory.")

    def udev_sync_wanted(self) -> bool | None:
        """How the control node syncs with udev, as dmsetup decides it.

        ``--noudevsync`` or ``$DM_DISABLE_UDEV``: never (the library makes
        the /dev/mapper nodes itself); else None: the API waits on a libdm
        cookie whenever udevd runs with the notify rules.  ``--verifyudev``
        needs nothing more: the API always checks the node after the wait.
        """
        if self.has("noudevsync") or "DM_DISABLE_UDEV" in os.environ:
            return False
        return None

    def udev_cookie(self) -> int:
        """The udev transaction device commands join: ``--udevcookie``, else
        ``$DM_UDEV_COOKIE``, read as dmsetup reads them (0: none).

        dmsetup ignores an unreadable value after saying so, once each.
        """
        if self._cookie is None:
            from pydevmapper.cli.udev_cookies import parse_cookie

            given = [self.value("udevcookie") or ""] if self.has("udevcookie") else []
            env = os.environ.get("DM_UDEV_COOKIE")
            if env:  # an empty one counts as unset
                given.append(env)
            self._cookie = 0
            for text in given:
                self._cookie = parse_cookie(text) or 0
                if self._cookie:
                    break
                self.error("Incorrect cookie value.")
        return self._cookie

    def check_transaction(self, device: str) -> None:
        """Before a create: fail, with nothing made, if its resume could not
        join the udev transaction (dmsetup sets the cookie before any ioctl)."""
        ctl = self.control
        self.call("create", device, lambda: ctl.check_create(device))

    def cookies_supported(self) -> bool:
        """libdm's dm_udev_get_sync_support() for the udev* commands.

        Like libdm it asks the kernel's interface version first (cookies
        need 4.15; a kernel without device-mapper prints libdm's complaint
        but only disables cookies), then whether udevd runs.
        """
        from pydevmapper import udev

        self.udev_bypass_warning()
        if "DM_DISABLE_UDEV" in os.environ:
            return False
        try:
            version = self.control.version()
        except Failed:
            return False
        except Exception:  # noqa: BLE001 - an unreadable version: no cookies, as libdm
            return False
        return (tuple(version) >= (4, 15, 0) and udev.udev_running()
                and not self.has("noudevsync"))

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None

    # -- how a command names its device -----------------------------------------
    def device(self, name: str | None) -> DeviceId:
        """The device a command addresses: a name, else -u, else -j/-m."""
        from pydevmapper.cparse import atoi
        from pydevmapper.types import DevNo, Uuid

        if name is not None:
            return self.sent(name)
        if self.has("uuid"):
            return Uuid(self.sent(self.value("uuid") or "", "UUID"))
        if self.has("major") and self.has("minor"):
            return DevNo(atoi(self.value("major")), atoi(self.value("minor")))
        self.error("No device specified.")
        raise Failed()

    def ioctl_failed(self, task: str, device: DeviceId | None, exc: BaseException,
                     devno: str | None = None, uuid: str = "") -> Failed:
        """Print libdm's line for a failed ioctl; returns Failed to raise."""
        from pydevmapper.types import DevNo, Uuid

        name = ""
        if isinstance(device, Uuid):
            uuid = str(device)
        elif isinstance(device, DevNo):
            devno = str(device)
        elif device is not None:
            name = str(device)
        where = f"{name} {uuid}" + (f"({devno})" if devno else "")
        err = getattr(exc, "errno", None) or errno.EINVAL
        self.error(f"device-mapper: {task} ioctl on {where} failed: {os.strerror(err)}")
        return Failed()

    def call(self, task: Task, device: DeviceId | None, fn: Callable[[], T], *, devno: str | None = None,
             absent: bool = False, sent_uuid: str = "") -> T:
        """Run ``fn()`` (an API call, its arguments bound); a failure is
        printed the libdm way and raised as Failed.

        ``task``, ``device``, ``devno`` and ``sent_uuid``: how libdm names
        the ioctl in its failure line.  For an operation of several
        commands, ``task`` maps each command to libdm's (task, whether the
        line names the device number, whether it names the uuid sent).
        ``absent``: libdm treats ENXIO of this task as "the device does not
        exist" rather than as a failed ioctl (info, status, mknodes).
        """
        from pydevmapper.errors import DMError, ValidationError

        tasks = (task,) if isinstance(task, str) else [step[0] for step in task.values()]
        if _UEVENT_TASKS.intersection(tasks):
            self.udev_bypass_warning()
        try:
            return fn()
        except DMError as exc:
            raise self.failure(task, device, exc, devno=devno, absent=absent,
                               sent_uuid=sent_uuid) from None
        except ValidationError as exc:
            self.error(str(exc))
            raise Failed() from None

    def failure(self, task: Task, device: DeviceId | None, exc: DMError, *, devno: str | None = None,
                absent: bool = False, sent_uuid: str = "") -> Failed:
        """Print libdm's lines for a failed API call (see ``call``); returns Failed to raise."""
        from pydevmapper.errors import DeviceNotFoundError, UnsupportedError
        from pydevmapper.udev import UdevCookieError

        if isinstance(exc, UnsupportedError) and exc.command in _LIBDM_REFUSALS:
            # libdm refuses while building the ioctl, before any device is looked up.
            self.error(_LIBDM_REFUSALS[exc.command])
            self.error("Couldn't create ioctl argument.")
            return Failed()
        if isinstance(exc, UdevCookieError):
            from pydevmapper.cli.udev_cookies import join_failed

            # A DMError always has an errno.
            self.error(join_failed(exc.cookie, exc.semid, exc.errno))  # type: ignore[arg-type]
            return Failed()
        if absent and isinstance(exc, DeviceNotFoundError):
            self.error("Device does not exist.")
            return Failed()
        if not isinstance(task, str):
            task, with_devno, with_uuid = task[exc.command]
            devno = exc.device if with_devno else None
            sent_uuid = sent_uuid if with_uuid else ""
        return self.ioctl_failed(task, device, exc, devno, sent_uuid)

    def udev_late(self, exc: UdevTimeoutError) -> None:
        """A udev wait that timed out: the kernel command succeeded and dmsetup
        ignores a failed udev wait (its exit status stays 0), so warn only."""
        task = _UEVENT_COMMANDS.get(exc.command, exc.command)
        self.error(f"{self.prog}: warning: {task} on {exc.device}: {exc.strerror}")

    def info(self, device: DeviceId) -> DeviceInfo:
        """DM_DEV_STATUS, its name and uuid as libdm returns them (shown)."""
        return self.shown_info(self.call("info", device, lambda: self.control.info(
            device, inactive=bool(self.has("inactive"))), absent=True))

    def shown_info(self, info: DeviceInfo) -> DeviceInfo:
        """A reply's name and uuid as libdm returns them (see ``shown``)."""
        return info._replace(name=self.shown(info.name), uuid=self.shown(info.uuid, "UUID"))

    # -- long info ---------------------------------------------------------------
    def _node_read_ahead_failed(self, name: str) -> None:
        """Without sysfs read-ahead (a device with no table has no disk yet)
        libdm asks the /dev/mapper node instead, and says why it could not
        open it (it never can then: absent, or no disk behind it)."""
        path = self.control.node_path(name)
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as exc:
            # An OSError from a system call always has an errno.
            self.error(f"{path}: open failed: {os.strerror(exc.errno)}")  # type: ignore[arg-type]

    def long_info(self, info: DeviceInfo) -> str:
        state = "SUSPENDED" if info.suspended else "ACTIVE"
        if info.read_only:
            state += " (READ-ONLY)"
        if info.deferred_remove:
            state += " (DEFERRED REMOVE)"
        lines = [f"Name:              {info.name}", f"State:             {state}"]
        ahead = read_ahead(info.major, info.minor)
        if ahead is None:
            self._node_read_ahead_failed(info.name)  # libdm names the node as shown
        else:
            lines.append(f"Read Ahead:        {ahead}")
        if not info.live_table and not info.inactive_table:
            lines.append("Tables present:    None")
        else:
            both = " & " if info.live_table and info.inactive_table else ""
            lines.append("Tables present:    " + ("LIVE" if info.live_table else "")
                         + both + ("INACTIVE" if info.inactive_table else ""))
        if not self.has("noopencount"):
            lines.append(f"Open count:        {info.open_count}")
        lines.append(f"Event number:      {info.event_nr}")
        lines.append(f"Major, minor:      {info.major}, {info.minor}")
        lines.append(f"Number of targets: {info.target_count}")
        if info.uuid:
            lines.append(f"UUID: {info.uuid}")
        return "\n".join(lines) + "\n\n"


# The tasks dmsetup gives a udev cookie (create: for the resume that follows).
_UEVENT_TASKS = frozenset({"create", "resume", "remove", "rename"})
# The commands that take one, by the task libdm names them.
_UEVENT_COMMANDS = {"DM_DEV_SUSPEND": "resume", "DM_DEV_REMOVE": "remove",
                    "DM_DEV_RENAME": "rename"}


def read_ahead(major: int, minor: int) -> int | None:
    """Read-ahead in sectors; None if unreadable (dmsetup then prints no line)."""
    from pydevmapper import readahead
    from pydevmapper.errors import DMError
    from pydevmapper.types import DevNo

    try:
        return readahead.read(DevNo(major, minor))
    except DMError:
        return None


def kernel_name(major: int, minor: int) -> str | None:
    """The block device's kernel name (dm-0, loop3), from sysfs."""
    try:
        return os.path.basename(os.readlink(f"/sys/dev/block/{major}:{minor}"))
    except OSError:
        return None


def mapped_name(major: int, minor: int) -> str | None:
    """A dm device's name, or a plain block device's kernel name."""
    try:
        with open(f"/sys/dev/block/{major}:{minor}/dm/name") as f:
            return f.read().rstrip("\n")
    except OSError:
        return kernel_name(major, minor)
