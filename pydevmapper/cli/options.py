# SPDX-License-Identifier: LGPL-2.1-or-later
"""Command-line parsing exactly as dmsetup's getopt_long() call sees it.

glibc's getopt_long permutes (options may follow the command and its
arguments), accepts unique prefixes of long options, and words its errors in
a fixed way that scripts and test suites compare; argparse does none of that
the same way, so this is a small getopt of our own.
"""

from __future__ import annotations

import errno
import os

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.cparse import C_SPACE, atoi, strtol, to_int

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

SHORT_OPTIONS = "cCfG:hj:m:M:no:O:rS:u:U:vy"

# dmsetup's long options in its own table order: the order matters, it is
# the order glibc lists the candidates of an ambiguous abbreviation in.
# (name, takes an argument)
LONG_OPTIONS: tuple[tuple[str, bool], ...] = (
    ("readonly", False), ("alias", True), ("alldevices", False),
    ("allprograms", False), ("allregions", False), ("area", False),
    ("areas", True), ("areasize", True), ("bounds", True), ("checks", False),
    ("clear", False), ("columns", False), ("concise", False), ("count", True),
    ("deferred", False), ("select", True), ("exec", True), ("filemap", False),
    ("follow", True), ("force", False), ("foreground", False), ("gid", True),
    ("group", False), ("groupid", True), ("help", False), ("histogram", False),
    ("inactive", False), ("interval", True), ("length", True),
    ("manglename", True), ("major", True), ("minor", True), ("mode", True),
    ("nameprefixes", False), ("nogroup", False), ("noflush", False),
    ("noheadings", False), ("nolockfs", False), ("noopencount", False),
    ("nosuffix", False), ("notable", False), ("notimesuffix", False),
    ("udevcookie", True), ("nomonitor", False), ("noudevrules", False),
    ("noudevsync", False), ("options", True), ("precise", False),
    ("programid", True), ("raw", False), ("readahead", True), ("region", False),
    ("regions", True), ("regionid", True), ("relative", False), ("retry", False),
    ("rows", False), ("segments", False), ("separator", True), ("setuuid", False),
    ("showkeys", False), ("sort", True), ("start", True), ("table", True),
    ("target", True), ("tree", False), ("uid", True), ("units", True),
    ("uuid", True), ("unbuffered", False), ("unquoted", False),
    ("userdata", True), ("verbose", True), ("verifyudev", False),
    ("version", False), ("yes", False), ("addnodeonresume", False),
    ("addnodeoncreate", False), ("json", False),
)
_TAKES_ARG: dict[str, bool] = dict(LONG_OPTIONS)

# Short options and the long option each is an alias of.
SHORT_TO_LONG = {
    "c": "columns", "C": "columns", "f": "force", "G": "gid", "h": "help",
    "j": "major", "m": "minor", "M": "mode", "n": "notable", "o": "options",
    "O": "sort", "r": "readonly", "S": "select", "u": "uuid", "U": "uid",
    "v": "verbose", "y": "yes",
}
_SHORT_TAKES_ARG = {c: SHORT_OPTIONS[i + 1:i + 2] == ":"
                    for i, c in enumerate(SHORT_OPTIONS) if c != ":"}


class UsageError(Exception):
    """getopt's complaint, already worded as glibc words it (or, for a
    switch's value, as dmsetup words it)."""


class Parsed(NamedTuple):
    # long option name -> how often given; and its last argument
    counts: dict[str, int]
    values: dict[str, str]
    args: list[str]  # the command and its arguments, in order
    given: dict[str, list[str]]  # every argument of each option, in order


# -- switch values, read as dmsetup's C reads them ----------------------------

READ_AHEAD_AUTO = -1  # libdevmapper's DM_READ_AHEAD_AUTO (UINT32_MAX) as an int


def read_ahead_value(text: str) -> int:
    """--readahead's argument as dmsetup takes it: sectors, or READ_AHEAD_AUTO."""
    if text.lower() == "auto":
        return READ_AHEAD_AUTO
    if text.lower() == "none":
        return 0
    return atoi(text)


def read_ahead_minimum(given: list[str]) -> bool:
    """``+N`` asks for at least N.  dmsetup never clears the flag, so one
    ``+`` among several --readahead switches counts (auto/none set none)."""
    return any(v.lower() not in ("auto", "none") and v.lstrip(C_SPACE)[:1] == "+"
               for v in given)


def mode_value(text: str) -> int:
    """-M's argument as dmsetup reads it: ``(int) strtol(text, &end, 8)``."""
    return to_int(strtol(text, 8)[0])


def _check_mode(text: str) -> str | None:
    _, rest, erange = strtol(text, 8)
    value = mode_value(text)
    if erange or rest or not value:
        return f"Invalid argument for --mode: {text}. {os.strerror(errno.ERANGE) if erange else ''}"
    if not 0 < value <= 0o7777:
        # dmsetup takes any int and fails later, when mknod refuses the
        # mode; nothing past the permission bits can work, so refuse it now.
        return f"Invalid argument for --mode: {text}. "
    return None


def _check_read_ahead(text: str) -> str | None:
    value = read_ahead_value(text)
    if value < READ_AHEAD_AUTO:
        return f"Negative read ahead value ({value}) is not understood."
    return None


# dmsetup checks these values as getopt hands them over, so the first bad
# one on the command line is the one reported (before any later getopt error).
VALUE_CHECKS: dict[str, Callable[[str], str | None]] = {
    "count": lambda v: "Count must be zero or greater." if atoi(v) < 0 else None,
    "interval": lambda v: "Interval must be a positive integer." if atoi(v) <= 0 else None,
    "manglename": lambda v: (None if v.lower() in ("none", "auto", "hex")
                             else "Unknown name mangling mode."),
    "mode": _check_mode,
    "readahead": _check_read_ahead,
}


def _match_long(prog: str, word: str) -> tuple[str, str | None]:
    body = word[2:]
    name, eq, value = body.partition("=")
    if name in _TAKES_ARG:
        return name, (value if eq else None)
    candidates = [n for n, _ in LONG_OPTIONS if n.startswith(name)]
    if not candidates:
        raise UsageError(f"{prog}: unrecognized option '{word}'")
    if len(candidates) > 1:
        listed = " ".join(f"'--{c}'" for c in candidates)
        raise UsageError(f"{prog}: option '--{name}' is ambiguous; possibilities: {listed}")
    return candidates[0], (value if eq else None)


def parse(prog: str, argv: list[str]) -> Parsed:
    """Parse argv (without the program name) the way dmsetup's getopt does."""
    counts: dict[str, int] = {}
    given: dict[str, list[str]] = {}
    args: list[str] = []

    def seen(name: str, value: str | None = None) -> None:
        counts[name] = counts.get(name, 0) + 1
        if value is not None:
            given.setdefault(name, []).append(value)
            check = VALUE_CHECKS.get(name)
            problem = check(value) if check is not None else None
            if problem:
                raise UsageError(problem)

    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            args.extend(argv[i:])
            break
        if word.startswith("--"):
            name, value = _match_long(prog, word)
            if _TAKES_ARG[name]:
                if value is None:
                    if i >= len(argv):
                        raise UsageError(f"{prog}: option '--{name}' requires an argument")
                    value = argv[i]
                    i += 1
            elif value is not None:
                raise UsageError(f"{prog}: option '--{name}' doesn't allow an argument")
            seen(name, value)
        elif word.startswith("-") and word != "-":
            j = 1
            while j < len(word):
                ch = word[j]
                j += 1
                if ch not in _SHORT_TAKES_ARG:
                    raise UsageError(f"{prog}: invalid option -- '{ch}'")
                if _SHORT_TAKES_ARG[ch]:
                    if j < len(word):
                        value = word[j:]
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        raise UsageError(f"{prog}: option requires an argument -- '{ch}'")
                    seen(SHORT_TO_LONG[ch], value)
                    break
                seen(SHORT_TO_LONG[ch])
        else:
            args.append(word)  # permuted: options may follow
    return Parsed(counts, {name: every[-1] for name, every in given.items()}, args, given)
