# SPDX-License-Identifier: LGPL-2.1-or-later
"""dmsetup's udev commands: mknodes, udevflags, udevcomplete, udevcomplete_all,
udevcookies, udevcreatecookie, udevreleasecookie.

Each parses its arguments, calls the API and formats; see commands.py for
the calling convention.
"""

from __future__ import annotations

import os
import sys

from pydevmapper.cli import udev_cookies
from pydevmapper.cli.session import UDEV_TIMEOUT, Failed, Session


def mknodes(s: Session, args: list[str], multiple: bool) -> None:
    # As libdm's DM_DEVICE_MKNODES: /dev/mapper made to match the kernel
    # (udev's correct symlinks are left alone), or just the one device's entry.
    if args or s.has("uuid") or s.has("major"):
        info = s.info(s.device(args[0] if args else None))
        if info is not None:
            name = s.sent(info.name)  # /dev/mapper holds the names as sent
            s.call("mknodes", name, lambda: s.control.sync_node(name))
    else:
        s.call("mknodes", None, s.control.sync_nodes)


def _cookie(s: Session, text: str) -> int:
    value = udev_cookies.parse_cookie(text)
    if value is None:
        s.error("Incorrect cookie value.")
        raise Failed()
    return value


def udevflags(s: Session, args: list[str], multiple: bool) -> None:
    s.write(udev_cookies.flag_lines(_cookie(s, args[0])))


def udevcomplete(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper import udev

    cookie = _cookie(s, args[0])
    s.write(f"DM_COOKIE_COMPLETED=0x{cookie:<10x}\n")
    # A value with flags over a zero base only steers the rules: nobody waits.
    if not cookie & ~udev.FLAGS_MASK or not s.cookies_supported():
        return
    key = udev_cookies.key_of(cookie)
    s.flush()  # all out before the waiter runs on
    try:
        udev.complete(key)
    except OSError as exc:
        # An OSError from a system call always has an errno.
        if (exc.strerror or "").startswith("semget("):
            s.error(udev_cookies.semget_error(key, exc.errno))  # type: ignore[arg-type]
        else:
            semid = next((c.semid for c in udev.list_cookies() if c.cookie == key), None)
            s.error(udev_cookies.complete_failed(key, semid, exc.errno))  # type: ignore[arg-type]
        raise Failed() from None
    if s.ends_when_released:
        # Run by udev's rules: udevd watches the device for writes only once
        # this program has ended, and the waiter just released may write at
        # once (LVM wiping a new volume); every moment more here loses the
        # change event that write should raise.
        os._exit(0)


def udevcookies(s: Session, args: list[str], multiple: bool) -> None:
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


def udevcomplete_all(s: Session, args: list[str], multiple: bool) -> None:
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


def udevcreatecookie(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper import udev

    if not s.cookies_supported():
        return  # libdm hands out cookie 0 and prints nothing
    try:
        value = udev.create_cookie(0)
    except OSError as exc:
        # An OSError from a system call always has an errno.
        s.error(f"Failed to create notification semaphore: {os.strerror(exc.errno)}")  # type: ignore[arg-type]
        raise Failed() from None
    s.write(udev_cookies.created_cookie(value))


def udevreleasecookie(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper import udev

    cookie = _cookie(s, args[0]) if args else s.udev_cookie()
    if not cookie:
        s.error("No udev transaction cookie given.")
        raise Failed()
    if not s.cookies_supported():
        return
    if cookie >> udev.FLAGS_SHIFT != udev.COOKIE_MAGIC:
        s.error(udev_cookies.bad_prefix(cookie))
        raise Failed()
    try:
        udev.release_cookie(cookie, UDEV_TIMEOUT)
    except udev.UdevTimeoutError as exc:
        s.error(f"{s.prog}: {exc.strerror}")
        raise Failed() from None
    except OSError as exc:
        # An OSError from a system call always has an errno.
        s.error(udev_cookies.semget_error(cookie, exc.errno))  # type: ignore[arg-type]
        raise Failed() from None
