"""libdevmapper's udev cookies: SysV semaphores keyed by the cookie value.

A cookie is ``0x0D4D << 16 | base``; the upper 16 bits of the value the
kernel passes to udev carry flags instead of the magic.  dmsetup run from
udev rules decrements the semaphore to wake the process that waits for the
rules to finish (``udevcomplete``).
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional

COOKIE_MAGIC = 0x0D4D
FLAGS_SHIFT = 16
FLAGS_MASK = 0xFFFF0000

# Names of the low 8 flag bits; the high 8 belong to the subsystem.
FLAG_NAMES = ("DISABLE_DM_RULES", "DISABLE_SUBSYSTEM_RULES", "DISABLE_DISK_RULES",
              "DISABLE_OTHER_RULES", "LOW_PRIORITY", "DISABLE_LIBRARY_FALLBACK",
              "PRIMARY_SOURCE")


def parse_cookie(text: str) -> Optional[int]:
    """strtoul(text, 0) as dmsetup checks it; None if invalid or zero."""
    s = text.strip()
    sign = ""
    if s[:1] in "+-":
        sign, s = s[0], s[1:]
    try:
        if s[:2].lower() == "0x":
            value = int(s[2:], 16) if s[2:] else None
        elif s.startswith("0") and len(s) > 1:
            value = int(s[1:], 8)
        else:
            value = int(s, 10) if s.isdigit() else None
    except ValueError:
        value = None
    if value is None or value == 0 or value > 0xFFFFFFFF or sign == "-":
        return None
    return value


def flag_lines(cookie: int) -> str:
    flags = cookie >> FLAGS_SHIFT
    lines = []
    for bit in range(16):
        if flags & (1 << bit):
            if bit < 8 and bit < len(FLAG_NAMES):
                lines.append(f"DM_UDEV_{FLAG_NAMES[bit]}_FLAG='1'\n")
            elif bit < 8:
                lines.append(f"DM_UDEV_FLAG{bit}='1'\n")
            else:
                lines.append(f"DM_SUBSYSTEM_UDEV_FLAG{bit - 8}='1'\n")
    return "".join(lines)


def udev_running() -> bool:
    return os.path.exists("/run/udev/control")


def complete(cookie: int) -> Optional[str]:
    """Decrement the cookie's semaphore; returns libdm's error text on failure."""
    from pydevmapper._dm import ffi, lib

    semid = lib.semget(cookie, 1, 0)
    if semid < 0:
        err = ffi.errno
        if err == _errno.ENOENT:
            return f"Could not find notification semaphore identified by cookie value {cookie} (0x{cookie:x})"
        if err == _errno.EACCES:
            return f"No permission to access notificaton semaphore identified by cookie value {cookie} (0x{cookie:x})"
        return (f"Failed to access notification semaphore identified by cookie "
                f"value {cookie} (0x{cookie:x}): {os.strerror(err)}")
    op = ffi.new("struct sembuf *")
    op.sem_num, op.sem_op, op.sem_flg = 0, -1, lib.IPC_NOWAIT
    if lib.semop(semid, op, 1) < 0:
        err = ffi.errno
        why = "incorrect semaphore state" if err == _errno.EAGAIN else os.strerror(err)
        return (f"semid {semid}: semop failed for cookie 0x{cookie:x}: {why}\n"
                f"Could not signal waiting process using notification semaphore "
                f"identified by cookie value {cookie} (0x{cookie:x})")
    return None
