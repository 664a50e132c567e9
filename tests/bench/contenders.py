# SPDX-License-Identifier: LGPL-2.1-or-later
"""The contenders and how each one performs an operation.

In-process contenders (``api``, ``libdm``) and per-operation processes
(``dmsetup``, ``pydmsetup``) hand the runner a callable that performs the
operation once; the runner times it with ``time.perf_counter``.  The C floor
(``c``) runs its own loop and reports per-iteration times from
CLOCK_MONOTONIC, so its process start is not counted.

An operation a contender cannot do raises ``Unavailable`` with the reason.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pydevmapper as dm
from pydevmapper import channel as _channel
from pydevmapper import records, udev
from pydevmapper._dm import HEADER_SIZE, ffi, lib
from pydevmapper.tables import Table

REPO = Path(__file__).resolve().parents[2]
FLOOR = REPO / "csrc" / "dm_ioctl_floor"


class Unavailable(Exception):
    """This contender cannot run this operation; the message says why."""


class Spec:
    """What the operations act on (made by ``operations.Fixture``)."""

    def __init__(self, linear: str, basic: Optional[str], message: str,
                 lifecycle_name: str, lifecycle_table: str) -> None:
        self.linear = linear  # table, status and info read this device
        self.basic = basic  # basic_target device for the message; None: module missing
        self.message = message
        self.lifecycle_name = lifecycle_name
        self.lifecycle_table = lifecycle_table  # one linear target over the loop device
        # Per operation: the reply buffer (header included) the api settled
        # on for it, which the floors send too: the kernel copies in the
        # whole buffer, so another size would be another ioctl's cost.
        # Unset: the api's first size, 8 KiB.
        self.reply_size: Dict[str, int] = {}

    def reply_buffer(self, op: str) -> int:
        return self.reply_size.get(op, _channel.INITIAL_REPLY_SIZE)


Op = Callable[[], object]


def _need_basic(spec: Spec) -> str:
    if spec.basic is None:
        raise Unavailable("basic_target is not loaded (PYDM_BASIC_TARGET_KO unset or failed)")
    return spec.basic


# -- the pydevmapper API --------------------------------------------------------------


class Api:
    """pydevmapper's ``Control``; one per udev mode, as a script would hold."""

    name = "api"

    def __init__(self) -> None:
        self.nosync = dm.Control(udev_sync=False)
        self._udev: Optional[dm.Control] = None

    def udev_control(self) -> dm.Control:
        if self._udev is None:
            if not udev.sync_available():
                raise Unavailable("udev sync needs udevd running and 95-dm-notify.rules")
            self._udev = dm.Control(udev_sync=True)
        return self._udev

    def close(self) -> None:
        self.nosync.close()
        if self._udev is not None:
            self._udev.close()

    def op(self, op: str, spec: Spec) -> Op:
        ctl = self.nosync
        if op == "version":
            # version() answers from a cache after the first call; time the
            # ioctl itself through the one path every command takes.
            return lambda: ctl.channel.call(_channel.VERSION)
        if op == "info":
            return lambda: ctl.info(spec.linear)
        if op == "table":
            return lambda: ctl.table(spec.linear)
        if op == "status":
            return lambda: ctl.status(spec.linear)
        if op == "message":
            basic = _need_basic(spec)
            return lambda: ctl.message(basic, 0, spec.message)
        if op.startswith("list_"):
            return lambda: ctl.list_devices(uuids=False)
        if op in ("lifecycle_nosync", "lifecycle_udev"):
            lc = ctl if op == "lifecycle_nosync" else self.udev_control()

            def lifecycle() -> None:
                dev = lc.create_device(spec.lifecycle_name, spec.lifecycle_table)
                dev.remove(retry=5.0)  # udev workers may hold a new device open briefly
            return lifecycle
        raise Unavailable(f"no such operation {op}")


# -- the raw-C floor ---------------------------------------------------------------------


class CFloor:
    """csrc/dm_ioctl_floor: the same ioctls from C with one reused buffer."""

    name = "c"

    def __init__(self, path: Path = FLOOR) -> None:
        self.path = path

    def argv(self, op: str, spec: Spec) -> List[str]:
        if op in ("version", "info", "table", "status"):
            return [op] if op == "version" else [op, spec.linear]
        if op == "message":
            return ["message", _need_basic(spec), spec.message]
        if op.startswith("list_"):
            return ["list"]
        if op == "lifecycle_nosync":
            # The same linear table, node and udev flags as the api's lifecycle.
            return ["lifecycle", spec.lifecycle_name, spec.lifecycle_table]
        if op == "lifecycle_udev":
            raise Unavailable("no udev-sync mode (no cookie; it disables the udev rules): "
                              "pyfloor's lifecycle_udev is the floor there")
        raise Unavailable(f"no such operation {op}")

    def measure(self, op: str, spec: Spec, n: int, warmup: int) -> List[float]:
        if not self.path.exists():
            raise Unavailable(f"{self.path} is not built (make -C csrc floor)")
        argv = [str(self.path), "-s", str(spec.reply_buffer(op)), *self.argv(op, spec),
                str(n + warmup)]
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if res.returncode != 0:
            raise Unavailable(f"exit {res.returncode}: {_last_line(res.stderr)}")
        return [float(t) for t in json.loads(res.stdout)[warmup:]]


# -- the Python floor ----------------------------------------------------------------------


class PyFloor:
    """The same ioctls from Python with nothing around them: each request
    built once, copied into a reused buffer, ``fcntl.ioctl``, the reply left
    undecoded.

    Not a way to get work done: the measuring stick between ``c`` and
    ``api``.  What it costs over the C floor is CPython's own price for a
    call into the kernel, which no Python binding can avoid; what the api
    costs over it is pydevmapper's.  The header layout and request numbers
    come from the binding (the compiler's), as everywhere else.

    It is also the floor with udevd running (``lifecycle_udev``): the same
    ioctls with one reused cookie, waited for as libdevmapper waits.  Most
    of that time is udev's, which bounds every contender's speed-up there.
    """

    name = "pyfloor"

    def __init__(self, control_path: str = "/dev/mapper/control") -> None:
        self.fd = os.open(control_path, os.O_RDWR | os.O_CLOEXEC)
        self._cookie: Optional[_FloorCookie] = None

    def close(self) -> None:
        os.close(self.fd)
        if self._cookie is not None:
            self._cookie.remove()
            self._cookie = None

    def _caller(self, cmd: _channel.Command, size: int, *, name: str = "", flags: int = 0,
                event_nr: int = 0, payload: bytes = b"",
                target_count: int = 0) -> Callable[[], bytearray]:
        """One call: the request (built here, once) copied in, the ioctl."""
        buf = bytearray(max(size, HEADER_SIZE + len(payload)))
        records.HEADER.pack_into(buf, 0, *cmd.version, len(buf), HEADER_SIZE, target_count, 0,
                                 flags, event_nr, 0, name.encode(), b"")
        buf[HEADER_SIZE:HEADER_SIZE + len(payload)] = payload
        request = bytes(buf[:HEADER_SIZE + len(payload)])  # the kernel overwrites the header
        ioctl, fd, code, n = fcntl.ioctl, self.fd, cmd.request, len(request)

        def call() -> bytearray:
            buf[:n] = request
            ioctl(fd, code, buf)
            return buf
        return call

    def op(self, op: str, spec: Spec) -> Op:
        c = _channel
        if op == "version":
            return self._caller(c.VERSION, HEADER_SIZE)
        if op == "info":
            return self._caller(c.DEV_STATUS, HEADER_SIZE, name=spec.linear)
        if op in ("table", "status"):
            flags = lib.DM_STATUS_TABLE_FLAG if op == "table" else 0
            return self._caller(c.TABLE_STATUS, spec.reply_buffer(op), name=spec.linear,
                                flags=flags)
        if op == "message":
            return self._caller(c.TARGET_MSG, spec.reply_buffer(op), name=_need_basic(spec),
                                payload=records.encode_message(0, spec.message.encode()))
        if op.startswith("list_"):
            size = spec.reply_buffer(op)
            while True:  # sized once, untimed, as a caller that knows N would
                call = self._caller(c.LIST_DEVICES, size)
                if not _REPLY_FLAGS(call(), _REPLY_FLAGS_AT)[0] & lib.DM_BUFFER_FULL_FLAG:
                    return call
                size *= 2
        if op == "lifecycle_nosync":
            return self._lifecycle(spec)
        if op == "lifecycle_udev":
            if not udev.sync_available():
                raise Unavailable("udev sync needs udevd running and 95-dm-notify.rules")
            return self._udev_lifecycle(spec)
        raise Unavailable(f"no such operation {op}")

    def _lifecycle_calls(self, spec: Spec, event_nr: int) -> Tuple[Callable[[], bytearray], ...]:
        """Create, load, resume and remove of the lifecycle device, the last
        two carrying ``event_nr`` (udev flags, and a cookie when syncing)."""
        c = _channel
        name = spec.lifecycle_name
        table = Table.parse(spec.lifecycle_table)
        return (self._caller(c.DEV_CREATE, HEADER_SIZE, name=name),
                self._caller(c.TABLE_LOAD, HEADER_SIZE, name=name, flags=lib.DM_SECURE_DATA_FLAG,
                             payload=records.encode_targets(table), target_count=len(table)),
                self._caller(c.DEV_SUSPEND, HEADER_SIZE, name=name, event_nr=event_nr),
                self._caller(c.DEV_REMOVE, HEADER_SIZE, name=name, event_nr=event_nr))

    def _lifecycle(self, spec: Spec) -> Op:
        """Create, load, resume, node, remove, unlink: the C floor's steps."""
        no_rules = (udev.PRIMARY_SOURCE | udev.DISABLE_DM_RULES
                    | udev.DISABLE_SUBSYSTEM_RULES) << udev.FLAGS_SHIFT
        create, load, resume, remove = self._lifecycle_calls(spec, no_rules)
        path = os.path.join("/dev/mapper", spec.lifecycle_name)

        def lifecycle() -> None:
            create()
            load()
            dev = _REPLY_DEV(resume(), _REPLY_DEV_AT)[0]
            os.mknod(path, stat.S_IFBLK | 0o600, dev)
            _busy_retry(remove)
            os.unlink(path)
        return lifecycle

    def _udev_lifecycle(self, spec: Spec) -> Op:
        """The same four ioctls with udev's rules on and a cookie on the
        resume and the remove, each waited for as libdevmapper waits: the
        least any caller can spend on a lifecycle while udevd runs.  udev
        makes and removes the node; nothing is checked after it."""
        if self._cookie is None:
            self._cookie = _FloorCookie()
        ck = self._cookie
        create, load, resume, remove = self._lifecycle_calls(
            spec, udev.PRIMARY_SOURCE << udev.FLAGS_SHIFT | ck.base)

        def lifecycle() -> None:
            create()
            load()
            ck.around(resume)
            _busy_retry(lambda: ck.around(remove))
        return lifecycle


def _busy_retry(call: Callable[[], object]) -> None:
    """A remove, retried while a udev worker still holds the device."""
    pause = 0.005
    while True:
        try:
            call()
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or pause > 0.2:
                raise
            time.sleep(pause)
            pause *= 2


class _FloorCookie:
    """The floor's udev cookie: one SysV semaphore under libdevmapper's key
    layout, raised before each uevent ioctl and waited down to zero after
    it (95-dm-notify.rules lowers it once udev is done with the event).

    Made once and reused, so the floor pays for no semget or IPC_RMID per
    lifecycle (the api and libdevmapper make one per command).
    """

    TIMEOUT_S = 30

    def __init__(self) -> None:
        # Made by the library (untimed), at 1: the creator's reference,
        # dropped here, since the floor counts each uevent itself.
        self.base = udev.create_cookie() & 0xFFFF
        key = udev.COOKIE_MAGIC << udev.FLAGS_SHIFT | self.base
        self.semid = lib.semget(ffi.cast("int", key), 1, 0)
        self._up, self._down, self._zero = (self._op(n) for n in (1, -1, 0))
        lib.semop(self.semid, self._down, 1)
        self._timeout = ffi.new("struct timespec *", {"tv_sec": self.TIMEOUT_S, "tv_nsec": 0})

    @staticmethod
    def _op(n: int):  # type: ignore[no-untyped-def]
        return ffi.new("struct sembuf *", {"sem_num": 0, "sem_op": n, "sem_flg": 0})

    def around(self, call: Callable[[], bytearray]) -> None:
        """One uevent ioctl: count it, issue it, wait until udev completed it."""
        if lib.semop(self.semid, self._up, 1) < 0:
            raise OSError(ffi.errno, "semop on the floor's udev cookie")
        try:
            reply = call()
        except BaseException:
            lib.semop(self.semid, self._down, 1)
            raise
        if not _REPLY_FLAGS(reply, _REPLY_FLAGS_AT)[0] & lib.DM_UEVENT_GENERATED_FLAG:
            lib.semop(self.semid, self._down, 1)  # no uevent: nothing will complete it
        elif lib.semtimedop(self.semid, self._zero, 1, self._timeout) < 0:
            err = ffi.errno
            lib.semop(self.semid, self._down, 1)  # give up on this uevent: the cookie stays usable
            raise OSError(err, f"udev did not complete cookie {self.base:#x} "
                               f"within {self.TIMEOUT_S} s")

    def remove(self) -> None:
        udev.remove_cookie(self.base)


# Reply fields the floor reads, at the binding's offsets.
_REPLY_FLAGS, _REPLY_FLAGS_AT = records._reader("struct dm_ioctl", "flags")
_REPLY_DEV, _REPLY_DEV_AT = records._reader("struct dm_ioctl", "dev")


# -- libdevmapper through ctypes ----------------------------------------------------------

# enum in libdevmapper.h
DM_DEVICE_CREATE, DM_DEVICE_REMOVE, DM_DEVICE_INFO = 0, 2, 6
DM_DEVICE_VERSION, DM_DEVICE_STATUS, DM_DEVICE_TABLE = 9, 10, 11
DM_DEVICE_LIST, DM_DEVICE_TARGET_MSG = 13, 17


class DmInfo(ctypes.Structure):
    _fields_ = [(n, t) for n, t in (
        ("exists", ctypes.c_int), ("suspended", ctypes.c_int), ("live_table", ctypes.c_int),
        ("inactive_table", ctypes.c_int), ("open_count", ctypes.c_int32),
        ("event_nr", ctypes.c_uint32), ("major", ctypes.c_uint32), ("minor", ctypes.c_uint32),
        ("read_only", ctypes.c_int), ("target_count", ctypes.c_int32),
        ("deferred_remove", ctypes.c_int), ("internal_suspend", ctypes.c_int))]


_P = ctypes.c_void_p
_PROTOTYPES = {
    "dm_task_create": (_P, [ctypes.c_int]),
    "dm_task_destroy": (None, [_P]),
    "dm_task_set_name": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "dm_task_run": (ctypes.c_int, [_P]),
    "dm_task_get_info": (ctypes.c_int, [_P, ctypes.POINTER(DmInfo)]),
    "dm_task_get_driver_version": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "dm_task_get_names": (_P, [_P]),
    "dm_task_add_target": (ctypes.c_int, [_P, ctypes.c_uint64, ctypes.c_uint64,
                                          ctypes.c_char_p, ctypes.c_char_p]),
    "dm_get_next_target": (_P, [_P, _P, ctypes.POINTER(ctypes.c_uint64),
                                ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_char_p),
                                ctypes.POINTER(ctypes.c_char_p)]),
    "dm_task_set_sector": (ctypes.c_int, [_P, ctypes.c_uint64]),
    "dm_task_set_message": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "dm_task_get_message_response": (ctypes.c_char_p, [_P]),
    "dm_task_set_cookie": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint16]),
    "dm_task_retry_remove": (ctypes.c_int, [_P]),
    "dm_udev_set_sync_support": (None, [ctypes.c_int]),
    "dm_udev_wait": (ctypes.c_int, [ctypes.c_uint32]),
}


class LibDm:
    """libdevmapper.so.1.02.1 through ctypes, used as dmsetup uses it: a task
    per operation; results decoded into Python objects as a script would."""

    name = "libdm"

    def __init__(self, soname: str = "libdevmapper.so.1.02.1") -> None:
        try:
            self.lib = ctypes.CDLL(soname)
        except OSError as exc:
            raise Unavailable(f"cannot load {soname}: {exc}") from None
        for fn, (restype, argtypes) in _PROTOTYPES.items():
            f = getattr(self.lib, fn)
            f.restype, f.argtypes = restype, argtypes

    def _task(self, kind: int, name: Optional[str] = None) -> int:
        dmt = self.lib.dm_task_create(kind)
        if not dmt:
            raise OSError("dm_task_create failed")
        if name is not None and not self.lib.dm_task_set_name(dmt, name.encode()):
            self.lib.dm_task_destroy(dmt)
            raise OSError("dm_task_set_name failed")
        return dmt

    def _run(self, dmt: int, what: str) -> None:
        if not self.lib.dm_task_run(dmt):
            self.lib.dm_task_destroy(dmt)
            raise OSError(f"dm_task_run({what}) failed")

    def version(self) -> str:
        dmt = self._task(DM_DEVICE_VERSION)
        self._run(dmt, "version")
        buf = ctypes.create_string_buffer(64)
        self.lib.dm_task_get_driver_version(dmt, buf, len(buf))
        self.lib.dm_task_destroy(dmt)
        return buf.value.decode()

    def info(self, name: str) -> DmInfo:
        dmt = self._task(DM_DEVICE_INFO, name)
        self._run(dmt, "info")
        info = DmInfo()
        self.lib.dm_task_get_info(dmt, ctypes.byref(info))
        self.lib.dm_task_destroy(dmt)
        return info

    def targets(self, kind: int, name: str) -> list:
        dmt = self._task(kind, name)
        self._run(dmt, "table/status")
        out = []
        nxt = None
        start, length = ctypes.c_uint64(), ctypes.c_uint64()
        ttype, params = ctypes.c_char_p(), ctypes.c_char_p()
        while True:
            nxt = self.lib.dm_get_next_target(dmt, nxt, ctypes.byref(start), ctypes.byref(length),
                                              ctypes.byref(ttype), ctypes.byref(params))
            if ttype.value is not None:
                out.append((start.value, length.value, ttype.value.decode(),
                            (params.value or b"").decode()))
            if not nxt:
                break
        self.lib.dm_task_destroy(dmt)
        return out

    def message(self, name: str, text: str) -> Optional[str]:
        dmt = self._task(DM_DEVICE_TARGET_MSG, name)
        self.lib.dm_task_set_sector(dmt, 0)
        self.lib.dm_task_set_message(dmt, text.encode())
        self._run(dmt, "message")
        resp = self.lib.dm_task_get_message_response(dmt)
        self.lib.dm_task_destroy(dmt)
        return resp.decode() if resp is not None else None

    def list(self) -> list:
        dmt = self._task(DM_DEVICE_LIST)
        self._run(dmt, "list")
        p = self.lib.dm_task_get_names(dmt)
        out = []
        if p and ctypes.c_uint64.from_address(p).value:
            while True:  # struct dm_names { uint64_t dev; uint32_t next; char name[]; }
                dev = ctypes.c_uint64.from_address(p).value
                nxt = ctypes.c_uint32.from_address(p + 8).value
                out.append((ctypes.string_at(p + 12).decode(), os.major(dev), os.minor(dev)))
                if not nxt:
                    break
                p += nxt
        self.lib.dm_task_destroy(dmt)
        return out

    def lifecycle(self, name: str, table: str, udev_flags: int) -> None:
        """As ``dmsetup create NAME --table T`` then ``dmsetup remove NAME``:
        create with a table (libdm creates, loads and resumes), a cookie
        carrying ``udev_flags``, and dm_udev_wait (which also makes or
        removes the node)."""
        start, length, ttype, params = table.split(None, 3)
        cookie = ctypes.c_uint32(0)
        dmt = self._task(DM_DEVICE_CREATE, name)
        self.lib.dm_task_add_target(dmt, int(start), int(length), ttype.encode(), params.encode())
        self.lib.dm_task_set_cookie(dmt, ctypes.byref(cookie), udev_flags)
        self._run(dmt, "create")
        self.lib.dm_task_destroy(dmt)
        self.lib.dm_udev_wait(cookie.value)
        cookie.value = 0
        dmt = self._task(DM_DEVICE_REMOVE, name)
        self.lib.dm_task_retry_remove(dmt)
        self.lib.dm_task_set_cookie(dmt, ctypes.byref(cookie), udev_flags)
        self._run(dmt, "remove")
        self.lib.dm_task_destroy(dmt)
        self.lib.dm_udev_wait(cookie.value)

    def op(self, op: str, spec: Spec) -> Op:
        if op == "version":
            return self.version
        if op == "info":
            return lambda: self.info(spec.linear)
        if op == "table":
            return lambda: self.targets(DM_DEVICE_TABLE, spec.linear)
        if op == "status":
            return lambda: self.targets(DM_DEVICE_STATUS, spec.linear)
        if op == "message":
            basic = _need_basic(spec)
            return lambda: self.message(basic, spec.message)
        if op.startswith("list_"):
            return self.list
        if op in ("lifecycle_nosync", "lifecycle_udev"):
            if op == "lifecycle_udev" and not udev.sync_available():
                raise Unavailable("udev sync needs udevd running and 95-dm-notify.rules")
            # A process-wide libdm setting, so set it for each operation.
            self.lib.dm_udev_set_sync_support(1 if op == "lifecycle_udev" else 0)
            # Without sync, udev's DM and subsystem rules are told to keep
            # off, as the api and the floors tell them: libdm makes the node.
            # (A cookie set with sync off and no flags would leave the rules
            # on, as `dmsetup --noudevsync` does: udev then makes and
            # removes /dev/mapper links of its own behind libdm's back, late,
            # racing the next contender's node.)
            flags = 0 if op == "lifecycle_udev" else udev.DISABLE_DM_RULES | udev.DISABLE_SUBSYSTEM_RULES
            return lambda: self.lifecycle(spec.lifecycle_name, spec.lifecycle_table, flags)
        raise Unavailable(f"no such operation {op}")


# -- one process per operation ------------------------------------------------------------


def pydmsetup_argv() -> List[str]:
    """How a script starts pydmsetup: the installed console script, run by
    this interpreter; ``python -m pydevmapper`` only when it is not
    installed (runpy adds about 0.2 s of start-up in a TCG guest)."""
    script = Path(sys.executable).with_name("pydmsetup")
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "pydevmapper"]


class Command:
    """dmsetup, or pydmsetup (``python -m pydevmapper``), started once per operation.

    dmsetup is the baseline being measured (what scripts do today), which
    is why the benchmark lives under tests/ with the other comparisons
    against it: the library itself neither runs nor parses dmsetup.
    """

    def __init__(self, name: str, prefix: Sequence[str]) -> None:
        self.name = name
        self.prefix = list(prefix)

    @classmethod
    def dmsetup(cls) -> Command:
        return cls("dmsetup", [shutil.which("dmsetup") or "dmsetup"])

    @classmethod
    def pydmsetup(cls) -> Command:
        return cls("pydmsetup", pydmsetup_argv())

    def run(self, args: Sequence[str]) -> None:
        argv = [*self.prefix, *args]
        try:
            res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            raise Unavailable(f"cannot start {argv[0]}: {exc}") from None
        if res.returncode != 0:
            raise Unavailable(f"`{self.name} {' '.join(args)}` exit {res.returncode}: "
                              f"{_last_line(res.stderr)}")

    def op(self, op: str, spec: Spec) -> Op:
        if op == "version":
            args = [["version"]]
        elif op in ("info", "table", "status"):
            args = [[op, spec.linear]]
        elif op == "message":
            args = [["message", _need_basic(spec), "0", spec.message]]
        elif op.startswith("list_"):
            args = [["ls"]]
        elif op in ("lifecycle_nosync", "lifecycle_udev"):
            if op == "lifecycle_udev" and not udev.sync_available():
                raise Unavailable("udev sync needs udevd running and 95-dm-notify.rules")
            sync = ["--noudevsync"] if op == "lifecycle_nosync" else []
            args = [[*sync, "create", spec.lifecycle_name, "--table", spec.lifecycle_table],
                    [*sync, "remove", "--retry", spec.lifecycle_name]]
        else:
            raise Unavailable(f"no such operation {op}")

        def once() -> None:
            for a in args:
                self.run(a)
        return once


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-3:]) if lines else "(no message)"
