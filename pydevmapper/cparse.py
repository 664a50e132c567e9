# SPDX-License-Identifier: LGPL-2.1-or-later
"""Numbers read as glibc reads them: ``strtol``, ``strtoul``, ``atoi``.

dmsetup reads its switches, cookies and table lines with these (and with
``sscanf``, which calls them), so pydmsetup and ``parse_targets(...,
dmsetup=True)`` take exactly what dmsetup takes: leading blanks, one sign,
base prefixes, saturation on overflow, and a negative unsigned value that
wraps.
"""

from __future__ import annotations

# C's isspace() in the C locale.
C_SPACE = " \t\n\v\f\r"
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = ULONG_MAX = (1 << 64) - 1  # LP64: unsigned long is 64 bits
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def scan(text: str, base: int = 10, pos: int = 0) -> tuple[bool, int | None, int]:
    """The integer at ``pos`` as glibc's strto* scan it: (negative, magnitude,
    end).  Leading blanks and one sign are taken; base 0 reads a ``0x``
    (hex) or ``0`` (octal) prefix, base 16 allows ``0x``.  ``magnitude`` is
    None when no digit follows (then ``end`` is ``pos``: nothing was read).
    """
    n = len(text)
    i = pos
    while i < n and text[i] in C_SPACE:
        i += 1
    negative = i < n and text[i] == "-"
    if i < n and text[i] in "+-":
        i += 1
    if base in (0, 16) and text[i:i + 2].lower() == "0x" and i + 2 < n \
            and text[i + 2].lower() in _DIGITS[:16]:
        base, i = 16, i + 2
    elif base == 0:
        base = 8 if text[i:i + 1] == "0" else 10
    valid = _DIGITS[:base]
    start = i
    while i < n and text[i].lower() in valid and text[i].isascii():
        i += 1
    if i == start:
        return False, None, pos
    return negative, int(text[start:i], base), i


def strtol(text: str, base: int = 10) -> tuple[int, str, bool]:
    """``strtol``: (value, unread rest, overflowed); saturates at LONG_MIN/LONG_MAX."""
    negative, magnitude, end = scan(text, base)
    if magnitude is None:
        return 0, text, False
    value = -magnitude if negative else magnitude
    if value > LONG_MAX:
        return LONG_MAX, text[end:], True
    if value < LONG_MIN:
        return LONG_MIN, text[end:], True
    return value, text[end:], False


def strtoul(text: str, base: int = 10, pos: int = 0) -> tuple[int, int, bool]:
    """``strtoul`` (and ``strtoull``: both 64 bits here): (value, end,
    overflowed).  A negative value wraps; an overflow saturates at
    ULONG_MAX whatever the sign.  ``end`` is ``pos`` when nothing was read."""
    negative, magnitude, end = scan(text, base, pos)
    if magnitude is None:
        return 0, pos, False
    if magnitude > ULONG_MAX:
        return ULONG_MAX, end, True
    return (-magnitude % (1 << 64)) if negative else magnitude, end, False


def to_int(value: int) -> int:
    """C's conversion of a long to int (gcc: modulo 2**32)."""
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def atoi(text: str | None) -> int:
    """``atoi``: ``(int) strtol(text, NULL, 10)``."""
    return to_int(strtol(text or "")[0])
