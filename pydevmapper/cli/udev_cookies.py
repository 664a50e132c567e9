# SPDX-License-Identifier: LGPL-2.1-or-later
"""dmsetup's udev* commands: argument parsing and output only.

The cookies themselves (SysV semaphores keyed ``0x0D4D << 16 | base``) are
``pydevmapper.udev``'s; this module parses cookie arguments as dmsetup's
strtoul does and words results and failures as dmsetup/libdevmapper
1.02.185 do, byte for byte.
"""

from __future__ import annotations

import errno as _errno
import os
import time
from collections.abc import Iterable

from pydevmapper import udev
from pydevmapper.cparse import strtoul

# dmsetup's names for the low 8 flag bits, by bit (udevflags); the high 8
# belong to the subsystem and have no names.
_FLAG_NAMES = {
    udev.DISABLE_DM_RULES: "DISABLE_DM_RULES",
    udev.DISABLE_SUBSYSTEM_RULES: "DISABLE_SUBSYSTEM_RULES",
    udev.DISABLE_DISK_RULES: "DISABLE_DISK_RULES",
    udev.DISABLE_OTHER_RULES: "DISABLE_OTHER_RULES",
    udev.LOW_PRIORITY: "LOW_PRIORITY",
    udev.DISABLE_LIBRARY_FALLBACK: "DISABLE_LIBRARY_FALLBACK",
    udev.PRIMARY_SOURCE: "PRIMARY_SOURCE",
}
MAGIC_TEXT = f"{udev.COOKIE_MAGIC} (0x{udev.COOKIE_MAGIC:x})"


def parse_cookie(text: str) -> int | None:
    """``strtoul(text, &end, 0)`` as dmsetup checks a cookie: None unless
    it read the whole text without overflow and got 1 to UINT32_MAX."""
    value, end, erange = strtoul(text, 0)
    if erange or end != len(text) or not value or value > 0xFFFFFFFF:
        return None
    return value


def parse_age(text: str) -> int | None:
    """``sscanf(text, "%u")`` as udevcomplete_all reads its age: None if no
    number starts the text; else strtoul's value as an unsigned int."""
    value, end, _ = strtoul(text)
    return value & 0xFFFFFFFF if end else None


def flag_lines(cookie: int) -> str:
    """``udevflags``: one ``NAME='1'`` line per flag set in the upper 16 bits."""
    flags = udev.decode_flags(cookie)
    lines: list[str] = []
    for bit in range(16):
        if flags & (1 << bit):
            if bit < 8 and (1 << bit) in _FLAG_NAMES:
                lines.append(f"DM_UDEV_{_FLAG_NAMES[1 << bit]}_FLAG='1'\n")
            elif bit < 8:
                lines.append(f"DM_UDEV_FLAG{bit}='1'\n")
            else:
                lines.append(f"DM_SUBSYSTEM_UDEV_FLAG{bit - 8}='1'\n")
    return "".join(lines)


def key_of(value: int) -> int:
    """The semaphore key of a cookie value (flags replaced by the magic)."""
    return udev.COOKIE_MAGIC << udev.FLAGS_SHIFT | (value & ~udev.FLAGS_MASK & 0xFFFFFFFF)


def _ctime(t: int) -> str:
    try:
        return time.ctime(t)
    except (OverflowError, ValueError, OSError):
        return "unknown"


def cookies_table(found: Iterable[udev.CookieInfo]) -> str:
    """``udevcookies``: the header and one line per cookie semaphore."""
    lines = ["Cookie       Semid      Value      Last semop time           Last change time\n"]
    for c in found:
        lines.append(f"0x{c.cookie:<10x} {c.semid:<10d} {c.value:<10d} "
                     f"{_ctime(c.otime)}  {_ctime(c.ctime)}\n")
    return "".join(lines)


def complete_all_warning(age: int) -> str:
    older = f"older than {age} minutes " if age else ""
    return (f"WARNING: This operation will destroy all semaphores {older}with keys "
            f"that have a prefix {MAGIC_TEXT}.")


def complete_all_declined() -> str:
    return f"Semaphores with keys prefixed by {MAGIC_TEXT} NOT destroyed.\n"


def complete_all_summary(removed: int, skipped: int) -> str:
    return f"{removed} semaphores with keys prefixed by {MAGIC_TEXT} destroyed. {skipped} skipped.\n"


def created_cookie(value: int) -> str:
    """``udevcreatecookie``: the key, as libdm hands it out."""
    return f"0x{key_of(value):08X}\n"


def semget_error(key: int, err: int) -> str:
    """libdm's _get_cookie_sem wording of a failed semget."""
    if err == _errno.ENOENT:
        return f"Could not find notification semaphore identified by cookie value {key} (0x{key:x})"
    if err == _errno.EACCES:
        return f"No permission to access notificaton semaphore identified by cookie value {key} (0x{key:x})"
    return (f"Failed to access notification semaphore identified by cookie "
            f"value {key} (0x{key:x}): {os.strerror(err)}")


def bad_prefix(cookie: int) -> str:
    return (f"Could not continue to access notification semaphore identified by cookie "
            f"value {cookie} (0x{cookie:x}). Incorrect cookie prefix.")


def complete_failed(key: int, semid: int | None, err: int) -> str:
    """udevcomplete: the semaphore exists but could not be decremented."""
    why = "incorrect semaphore state" if err == _errno.EAGAIN else os.strerror(err)
    return (f"semid {semid}: semop failed for cookie 0x{key:x}: {why}\n"
            f"Could not signal waiting process using notification semaphore "
            f"identified by cookie value {key} (0x{key:x})")


def join_failed(cookie: int, semid: int | None, err: int) -> str:
    """A device command could not join the --udevcookie transaction
    (libdm's dm_task_set_cookie; nothing was sent)."""
    if cookie >> udev.FLAGS_SHIFT != udev.COOKIE_MAGIC:
        return bad_prefix(cookie)
    if semid is None:
        return semget_error(cookie, err)
    return (f"semid {semid}: semop failed for cookie 0x{cookie:x}: {os.strerror(err)}\n"
            f"Could not set notification semaphore identified by cookie value {cookie} (0x{cookie:x})")
