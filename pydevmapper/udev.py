# SPDX-License-Identifier: LGPL-2.1-or-later
"""Waiting for udev: libdevmapper-compatible cookies.

Why cookies (and not a uevent socket): the kernel copies the ``event_nr``
field of DM_DEV_SUSPEND (resume), DM_DEV_REMOVE and DM_DEV_RENAME into the
uevent as ``DM_COOKIE``; the stock ``95-dm-notify.rules`` then run
``dmsetup udevcomplete $DM_COOKIE`` as the *last* step of processing that
event, after udev has created, renamed or removed the ``/dev/mapper``
symlinks.  A SysV semaphore keyed by the cookie therefore drops to zero
exactly when udev is done with our event, with no guessing about which
uevent is ours, no netlink socket to open before the ioctl, and it works
with every other libdevmapper user (``dmsetup udevcookies`` lists ours,
``dmsetup udevcomplete_all`` can clear them).  A uevent socket on the udev
group would see the processed event too, but matching it to our ioctl needs
the same cookie anyway, and it misses events when the socket buffer
overflows.

Cookie layout (libdm/libdevmapper.h, DM_COOKIE_MAGIC and DM_UDEV_*; these
are libdevmapper constants, not kernel ones, so they are typed here):
the semaphore key is ``0x0D4D << 16 | base``; the value sent to the kernel
replaces the magic with udev rule flags: ``flags << 16 | base``.  A value
with ``base == 0`` carries flags only and notifies nobody.

Our semaphores count outstanding uevents: created at 1 for the one uevent
the operation raises, decremented by ``dmsetup udevcomplete``, waited for
zero with a timeout, and removed (IPC_RMID) in a ``finally`` whatever
happens - timeout, error or KeyboardInterrupt.  A ``Transaction`` is the
other kind: a cookie made and released by its owner, which any number of
commands (of any process) join without waiting, as with libdevmapper's
``dm_udev_create_cookie`` / ``dm_udev_wait``.
"""

from __future__ import annotations

import errno as _errno
import os
import time

from pydevmapper import log
from pydevmapper._dm import ffi, lib
from pydevmapper._namedtuple import NamedTuple
from pydevmapper.errors import DMError

COOKIE_MAGIC = 0x0D4D  # libdevmapper.h DM_COOKIE_MAGIC
FLAGS_SHIFT = 16  # DM_UDEV_FLAGS_SHIFT
FLAGS_MASK = 0xFFFF0000  # DM_UDEV_FLAGS_MASK

# libdevmapper.h DM_UDEV_*_FLAG: read by 55-dm.rules via `dmsetup udevflags`.
DISABLE_DM_RULES = 0x0001  # udev makes no /dev/mapper entry
DISABLE_SUBSYSTEM_RULES = 0x0002
DISABLE_DISK_RULES = 0x0004
DISABLE_OTHER_RULES = 0x0008
LOW_PRIORITY = 0x0010
DISABLE_LIBRARY_FALLBACK = 0x0020
PRIMARY_SOURCE = 0x0040  # "this event comes from a DM library, not a trigger"

UDEV_CONTROL = "/run/udev/control"
# Where udev looks for rules; the notify rules must be in one of them.
_RULES_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/usr/lib/udev/rules.d",
               "/lib/udev/rules.d", "/usr/local/lib/udev/rules.d")
NOTIFY_RULES = "95-dm-notify.rules"

DEFAULT_TIMEOUT = 30.0


class UdevTimeoutError(DMError):
    """udev did not finish processing a device-mapper uevent in time.

    The kernel command itself succeeded; ``/dev/mapper`` may not be final.
    ``cookie`` is the value that was sent to the kernel.
    """

    def __init__(self, command: str, device: str | None, cookie: int,
                 timeout: float) -> None:
        super().__init__(
            _errno.ETIMEDOUT, command, device, None,
            f"udev never answered cookie {cookie:#010x} within {timeout:g}s "
            f"(the command itself succeeded): is udevd running and are "
            f"{NOTIFY_RULES} and dmsetup installed?",
        )
        self.cookie = cookie
        self.timeout = timeout

    # DMError's pickling does not know our arguments.
    def __reduce__(self) -> tuple[type[DMError], tuple[object, ...]]:
        return (type(self), (self.command, self.device, self.cookie, self.timeout))


class UdevCookieError(DMError):
    """A command could not join a udev transaction's cookie (no such
    semaphore, no permission, not a cookie key); nothing was sent.

    ``cookie`` is the key; ``semid`` the semaphore if it was found (then
    counting on it failed), else None.
    """

    def __init__(self, errno: int, command: str, device: str | None, cookie: int,
                 semid: int | None, detail: str) -> None:
        super().__init__(errno, command, device, None, detail)
        self.cookie = cookie
        self.semid = semid

    # DMError's pickling does not know our arguments.
    def __reduce__(self) -> tuple[type[DMError], tuple[object, ...]]:
        return (type(self), (self.errno, self.command, self.device, self.cookie,
                             self.semid, self.strerror))


def udev_running(control: str = UDEV_CONTROL) -> bool:
    """udevd is running: its control socket accepts a connection.

    libudev only checks that the socket file exists; a stopped udevd may
    leave the file behind, so we connect (udevd closes the idle connection).
    A full backlog (EAGAIN) also means a listener: udevd listens with a
    backlog of 0 and accepts between events, so two checks in a row while
    it is busy find the queue full (the benchmark's turns did).
    """
    import socket  # here, not at import: every CLI run imports this module

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(1.0)
        sock.connect(control)
    except BlockingIOError:  # EAGAIN: listening, queue full
        return True
    except OSError:  # ECONNREFUSED: a file nobody listens on; ENOENT; a timeout
        return False
    finally:
        sock.close()
    return True


def notify_rules_installed() -> bool:
    """Some rules directory holds 95-dm-notify.rules (else nobody releases cookies)."""
    return any(os.path.exists(os.path.join(d, NOTIFY_RULES)) for d in _RULES_DIRS)


def sync_available() -> bool:
    """Waiting for udev can work: udevd runs and the notify rules exist."""
    return udev_running() and notify_rules_installed()


# -- semaphores ----------------------------------------------------------------

def _semop(semid: int, op: int, flags: int = 0,
           timeout: float | None = None) -> int:
    """One semop on semaphore 0; returns 0 or the errno."""
    return lib.pydm_semop(semid, op, flags, -1 if timeout is None else int(timeout * 1e9))


def _os_error(err: int, what: str) -> OSError:
    return OSError(err, f"{what}: {os.strerror(err)}")


def _semget(key: int, flags: int) -> int:
    semid = lib.semget(ffi.cast("int", key), 1, flags)
    if semid < 0:
        raise _os_error(ffi.errno, f"semget({key:#010x})")
    return semid


def _getval(semid: int) -> int:
    val = lib.semctl(semid, 0, lib.GETVAL)
    if val < 0:
        raise _os_error(ffi.errno, f"semctl(GETVAL) on semid {semid}")
    return val


def _rmid(semid: int) -> None:
    if lib.semctl(semid, 0, lib.IPC_RMID) < 0 and ffi.errno not in (_errno.EINVAL, _errno.EIDRM):
        raise _os_error(ffi.errno, f"semctl(IPC_RMID) on semid {semid}")


class Cookie:
    """One udev cookie: a semaphore counting our unprocessed uevents.

    Use as ``with cookie(flags) as ck:``: the semaphore is made on entry
    and removed on leaving the block, always.  The binding makes and
    removes it in one call each, writing its id into ``_ids`` as it comes
    into being: a KeyboardInterrupt raised at any bytecode after finds it
    there, and no signal needs holding off meanwhile.
    """

    __slots__ = ("flags", "_ids")

    def __init__(self, flags: int = PRIMARY_SOURCE) -> None:
        self.flags = flags & 0xFFFF
        self._ids = ffi.new("int[2]", [-1, 0])  # semaphore id (-1: none), base

    @property
    def semid(self) -> int | None:
        """The semaphore's id; None before it is made and after it is removed."""
        semid = self._ids[0]
        return None if semid < 0 else semid

    @property
    def base(self) -> int:
        """The cookie's low 16 bits, which its key and its value share (0 before the semaphore is
        made)."""
        base: int = self._ids[1]  # an int[] item is a Python int
        return base

    @property
    def key(self) -> int:
        """The semaphore key, as `dmsetup udevcookies` shows it."""
        return COOKIE_MAGIC << FLAGS_SHIFT | self.base

    @property
    def value(self) -> int:
        """What goes into ``dm_ioctl.event_nr``: flags over the base."""
        return self.flags << FLAGS_SHIFT | self.base

    def _create(self) -> None:
        # A fresh random base whose key is free, at 1 for our one uevent.
        err = lib.pydm_cookie_create(self._ids)
        if err:
            raise _os_error(err, "creating a udev cookie semaphore"
                            + (" (see /proc/sys/kernel/sem)" if err == _errno.ENOSPC else ""))

    def _adopt(self, base: int) -> None:
        """Take over the existing semaphore of ``base`` (removed on leaving)."""
        self._ids[0] = _semget(COOKIE_MAGIC << FLAGS_SHIFT | base, 0)
        self._ids[1] = base

    def uevent_not_generated(self) -> None:
        """The command raised no uevent (nothing to wait for): drop our count."""
        if self._ids[0] >= 0:
            _semop(self._ids[0], -1, lib.IPC_NOWAIT)

    def pending(self) -> int:
        """The semaphore's value: the uevents udev has not processed yet (0 without a semaphore)."""
        return _getval(self._ids[0]) if self._ids[0] >= 0 else 0

    def wait(self, timeout: float, command: str, device: str | None) -> None:
        """Block until udev released the cookie; UdevTimeoutError after ``timeout``."""
        semid = self._ids[0]
        if semid < 0:
            return
        trace = log.logger("udev")
        if trace is not None:
            trace.debug("%s %s: waiting up to %gs for udev to release cookie %#010x",
                        command, device, timeout, self.value)
        # The clock is read again only after a signal cut the wait short.
        started = time.monotonic()
        left = timeout
        while left > 0:
            err = _semop(semid, 0, timeout=left)  # wait for zero
            if err in (0, _errno.EIDRM, _errno.EINVAL):
                # released (or someone ran `dmsetup udevcomplete_all`)
                if trace is not None:
                    trace.debug("%s %s: udev released cookie %#010x after %.3fs", command, device,
                                self.value, time.monotonic() - started)
                return
            if err == _errno.EAGAIN:
                break
            if err != _errno.EINTR:  # EINTR: Python runs the handler at the loop's next step
                raise _os_error(err, "waiting on a udev cookie")
            left = timeout - (time.monotonic() - started)
        timed_out = UdevTimeoutError(command, device, self.value, timeout)
        warn = log.logger("udev", log.WARNING)
        if warn is not None:
            warn.warning("%s", timed_out)
        raise timed_out

    def __enter__(self) -> Cookie:
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def destroy(self) -> None:
        """Remove the semaphore, if any (and again if a signal cut this short)."""
        try:
            err = lib.pydm_cookie_remove(self._ids)
        finally:
            # A no-op after the call above; the removal itself if a
            # KeyboardInterrupt came between this method's entry and it.
            lib.pydm_cookie_remove(self._ids)
        if err:
            raise _os_error(err, "semctl(IPC_RMID) on a udev cookie semaphore")


def cookie(flags: int = PRIMARY_SOURCE) -> Cookie:
    """A new cookie for a ``with`` block, whose semaphore is removed on leaving it."""
    return Cookie(flags)


# -- for tools: what dmsetup's udev* commands do ------------------------------

class CookieInfo(NamedTuple):
    """A udev cookie semaphore in the system (``dmsetup udevcookies``)."""

    cookie: int  # the key: 0x0D4Dxxxx
    semid: int
    value: int  # uevents not yet processed (plus one for libdm's own count)
    otime: int  # last semop, seconds since the epoch (0: never)
    ctime: int  # last change


def decode_flags(value: int) -> int:
    """The udev rule flags (``DISABLE_DM_RULES``, ...) in a cookie value's upper 16 bits."""
    return (value & FLAGS_MASK) >> FLAGS_SHIFT


def list_cookies() -> list[CookieInfo]:
    """Every semaphore with a cookie key, from /proc/sysvipc/sem."""
    found: list[CookieInfo] = []
    with open("/proc/sysvipc/sem") as f:
        header = f.readline().split()
        for line in f:
            row = dict(zip(header, line.split()))
            key = int(row["key"]) & 0xFFFFFFFF
            if key >> FLAGS_SHIFT != COOKIE_MAGIC:
                continue
            semid = int(row["semid"])
            try:
                value = _getval(semid)
            except OSError:
                continue  # removed meanwhile
            found.append(CookieInfo(key, semid, value, int(row["otime"]), int(row["ctime"])))
    return found


def complete(value: int) -> None:
    """``dmsetup udevcomplete``: one uevent of this cookie is processed.

    Flags in the upper 16 bits are ignored; a flags-only value (base 0)
    notifies nobody and is accepted silently.  Raises OSError if no such
    semaphore exists or it is already at zero.
    """
    base = value & ~FLAGS_MASK & 0xFFFFFFFF
    if not base:
        return
    semid = _semget(COOKIE_MAGIC << FLAGS_SHIFT | base, 0)
    err = _semop(semid, -1, lib.IPC_NOWAIT)
    if err:
        raise _os_error(err, f"releasing udev cookie {value:#x}")


def remove_cookie(value: int) -> None:
    """Remove a cookie's semaphore (wakes its waiter: ``udevreleasecookie``-style)."""
    base = value & ~FLAGS_MASK & 0xFFFFFFFF
    if base:
        _rmid(_semget(COOKIE_MAGIC << FLAGS_SHIFT | base, 0))


def create_cookie(flags: int = 0) -> int:
    """``dmsetup udevcreatecookie``: a cookie that outlives this call.

    libdevmapper's counting: the semaphore starts at 1 (the creator's own
    reference), each command sent with the cookie should first
    ``add_to_cookie()``; ``release_cookie()`` drops the reference, waits for
    zero and removes it.  Returns the value (flags over the base).
    """
    ck = Cookie(flags)
    ck._create()  # leaves the semaphore at 1: the creator's reference
    return ck.value


def _cookie_semid(key: int, command: str, device: str | None) -> int:
    semid = lib.semget(ffi.cast("int", key), 1, 0)
    if semid < 0:
        err = ffi.errno
        raise UdevCookieError(err, command, device, key, None,
                              f"semget({key:#010x}): {os.strerror(err)}")
    return semid


def add_to_cookie(value: int, command: str = "udev cookie", device: str | None = None) -> None:
    """Count one more expected uevent on an existing cookie (before the ioctl).

    Raises UdevCookieError (``semid`` None: no such semaphore or no access).
    """
    key = COOKIE_MAGIC << FLAGS_SHIFT | (value & 0xFFFF)
    semid = _cookie_semid(key, command, device)
    err = _semop(semid, 1)
    if err:
        raise UdevCookieError(err, command, device, key, semid,
                              f"adding to udev cookie {key:#x}: {os.strerror(err)}")


def release_cookie(value: int, timeout: float = DEFAULT_TIMEOUT) -> None:
    """``dmsetup udevreleasecookie``: drop the creator's reference, wait for
    udev to complete every counted uevent, then remove the semaphore (always,
    also on timeout: UdevTimeoutError)."""
    ck = Cookie(decode_flags(value))
    ck._adopt(value & 0xFFFF)
    try:
        _semop(ck._ids[0], -1, lib.IPC_NOWAIT)
        ck.wait(timeout, "udevreleasecookie", None)
    finally:
        ck.destroy()


class Transaction:
    """A cookie that many commands join and one ``release()`` waits for:
    libdevmapper's udev transaction (dmsetup's ``--udevcookie`` and
    ``$DM_UDEV_COOKIE``).

    ``Transaction.create()`` makes the semaphore at 1, the creator's
    reference (``dmsetup udevcreatecookie``); ``Transaction(key)`` names one
    made elsewhere by its key, ``0x0D4Dxxxx``.  A
    ``Control(udev_transaction=...)`` joins it with every uevent it raises -
    one more count before the ioctl, given back at once if the command fails
    or raises none - and does not wait; udev's ``dmsetup udevcomplete`` drops
    each count.  ``release()``, also on leaving a ``with`` block, drops the
    creator's reference, waits for zero and removes the semaphore.
    """

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        if not 0 < key <= 0xFFFFFFFF:
            raise ValueError(f"not a udev cookie: {key:#x}")
        self.key = key

    @classmethod
    def create(cls) -> Transaction:
        """A new cookie, its semaphore at 1 for the creator's reference (``dmsetup
        udevcreatecookie``)."""
        return cls(COOKIE_MAGIC << FLAGS_SHIFT | create_cookie(0))

    def __repr__(self) -> str:
        return f"<udev.Transaction {self.key:#010x}>"

    @property
    def base(self) -> int:
        """What goes under the flags in ``dm_ioctl.event_nr``."""
        return self.key & ~FLAGS_MASK & 0xFFFFFFFF

    def check(self, command: str, device: str | None = None) -> None:
        """UdevCookieError unless the key has the magic prefix and names a
        semaphore (before a series of commands that will join)."""
        if self.key >> FLAGS_SHIFT != COOKIE_MAGIC:
            raise UdevCookieError(_errno.EINVAL, command, device, self.key, None,
                                  f"{self.key:#x} is not a udev cookie key (prefix {COOKIE_MAGIC:#x})")
        _cookie_semid(self.key, command, device)

    def join(self, command: str, device: str | None = None) -> None:
        """Count one more uevent, before the ioctl; UdevCookieError as ``check``."""
        self.check(command, device)
        add_to_cookie(self.key, command, device)

    def leave(self) -> None:
        """Give back one count: the command failed or raised no uevent."""
        try:
            complete(self.key)
        except OSError:
            pass  # released or cleared meanwhile: nothing waits on it

    def pending(self) -> int:
        """The semaphore's value: the creator's reference plus unprocessed uevents."""
        return _getval(_semget(COOKIE_MAGIC << FLAGS_SHIFT | self.base, 0))

    def release(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """``dmsetup udevreleasecookie``: see ``release_cookie``."""
        release_cookie(self.key, timeout)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def complete_all(min_age: float = 0.0) -> list[int]:
    """``dmsetup udevcomplete_all [age_in_minutes]``: remove cookies whose
    last change is at least ``min_age`` seconds old; returns their keys."""
    now = time.time()
    removed: list[int] = []
    for info in list_cookies():
        if now - info.ctime >= min_age:
            try:
                _rmid(info.semid)
            except OSError:
                continue
            removed.append(info.cookie)
    return removed
