# SPDX-License-Identifier: LGPL-2.1-or-later
"""libdevmapper's name mangling: device names and uuids as udev can use them.

The kernel takes any byte but NUL and '/' in a name; udev's rules and the
/dev/mapper links they make cannot carry spaces, quotes or non-ASCII bytes.
libdevmapper therefore stores such names *mangled*: every byte outside
``0-9 A-Z a-z #+-.:=@_`` becomes ``\\xNN`` (two lowercase hex digits), and
it shows them unmangled.  Three modes, as libdm names them:

``"auto"`` (dmsetup's default)
    Mangle a name that needs it; leave one that is already mangled as it
    is; refuse a mix of the two, and a name mangled twice (``\\x5cx``).
``"hex"``
    Mangle every byte outside the set, a backslash included.
``"none"``
    Send and show names as given.

:class:`pydevmapper.Control` never mangles: names go to the kernel and come
back exactly as given.  A program that shares devices with LVM, dmsetup or
udev's rules can call :func:`mangle` before it creates or addresses a
device, and :func:`unmangle` on the names the kernel returns.
"""

from __future__ import annotations

import os

from pydevmapper.errors import ValidationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Literal

    Mode = Literal["none", "auto", "hex"]

MODES = ("none", "auto", "hex")
# The environment variable libdevmapper reads for its default mode.
ENVIRONMENT = "DM_DEFAULT_NAME_MANGLING_MODE"

_SAFE = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#+-.:=@_")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TWICE = "\\x5cx"


def default_mode() -> Mode:
    """libdm's default: $DM_DEFAULT_NAME_MANGLING_MODE when it names a mode
    (any case), else ``"auto"``.  Other values are ignored, as libdm does."""
    value = os.environ.get(ENVIRONMENT, "").lower()
    return value if value in MODES else "auto"  # type: ignore[return-value]  # checked against MODES


def mangled_twice(text: str, what: str = "name") -> ValidationError | None:
    """The error for a name that auto mode takes as mangled more than once."""
    if _TWICE in text:
        return ValidationError(f'The {what} "{text}" seems to be mangled more than once. '
                               "This is not allowed in auto mode.")
    return None


def mangle(text: str, mode: Mode = "auto", what: str = "name") -> str:
    """``text`` mangled as libdm sends it in ``mode``.  ``"none"`` mangles
    as ``"auto"`` but lets a name mangled twice through, as libdm's
    ``dm_task_get_name_mangled`` does (the form dmsetup reports).

    Raises :class:`~pydevmapper.ValidationError` with libdm's message for a
    name the mode refuses.  ``what`` names the text in that message
    ("name", "UUID", "new name", ...).
    """
    if mode not in MODES:
        raise ValidationError(f"unknown name mangling mode {mode!r}: one of {', '.join(MODES)}")
    auto = mode != "hex"
    if mode == "auto" and (twice := mangled_twice(text, what)):
        raise twice
    raw = text.encode("utf-8", "surrogateescape")
    out: list[str] = []
    # None: nothing seen yet; False: found already mangled; True: mangled here.
    mangled: bool | None = None
    i = 0
    while i < len(raw):
        byte = raw[i]
        if auto and raw[i:i + 2] == b"\\x":
            if len(raw) - i < 4 or mangled:
                raise _mixed(what, text)
            out.append(raw[i:i + 4].decode("utf-8", "surrogateescape"))
            mangled = False
            i += 4
            continue
        if byte in _SAFE:
            out.append(chr(byte))
        else:
            if auto and mangled is False:
                raise _mixed(what, text)
            out.append(f"\\x{byte:02x}")
            mangled = True
        i += 1
    result = "".join(out)
    # libdm mangles into the ioctl's field: 127 bytes for a name, 128 for a uuid.
    if len(result.encode("utf-8", "surrogateescape")) > (128 if what.endswith("UUID") else 127):
        raise ValidationError(f'Mangled form of the {what} too long for "{text}".')
    return result


def unmangle(text: str, mode: Mode = "auto", what: str = "name") -> str:
    """``text`` as the kernel holds it, shown as libdm shows it in ``mode``.

    In ``"auto"`` and ``"hex"`` a name must be in mangled form: any byte
    outside the set but a backslash is refused with libdm's message (and
    ``"auto"`` refuses a name mangled twice).  In ``"none"`` every ``\\xNN``
    is decoded and the rest kept.  As in libdm, decoding stops at a ``\\x``
    not followed by two hex digits: the name is kept as it is if nothing was
    decoded before, else cut there.
    """
    if mode not in MODES:
        raise ValidationError(f"unknown name mangling mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "auto" and (twice := mangled_twice(text, what)):
        raise twice
    raw = text.encode("utf-8", "surrogateescape")
    strict = mode != "none"
    out = bytearray()
    decoded = False
    i = 0
    while i < len(raw):
        if strict and raw[i] not in _SAFE and raw[i] != 0x5C:
            raise ValidationError(f'The {what} "{text}" should be mangled but it contains blacklisted characters.')
        if raw[i:i + 2] == b"\\x":
            if not (len(raw) - i >= 4 and raw[i + 2] in _HEX and raw[i + 3] in _HEX):
                # libdm stops here: the name as it was if nothing was
                # decoded yet, else what was decoded so far.
                if not decoded:
                    return text
                break
            out.append(int(raw[i + 2:i + 4], 16))
            decoded = True
            i += 4
            continue
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _mixed(what: str, text: str) -> ValidationError:
    return ValidationError(f'The {what} "{text}" contains mixed mangled and unmangled characters '
                           "or it's already mangled improperly.")
