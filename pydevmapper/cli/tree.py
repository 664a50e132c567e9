# SPDX-License-Identifier: LGPL-2.1-or-later
"""``ls --tree``: its ``-o`` options and the drawing, byte for byte as dmsetup.

dmsetup draws the graph pstree-style: one node a line (or, with
``compact``, a chain of single children on one line), each level indented
by one space plus a two-column branch symbol, lines cut at the terminal
width less three (80 when stdout is no terminal) with ``...`` unless
``notrunc``.  The graph itself comes from pydevmapper.deptree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pydevmapper._namedtuple import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable

    from pydevmapper.deptree import DeviceGraph, DeviceNode
    from pydevmapper.types import DevNo


class Symbols(NamedTuple):
    empty: bytes   # below a finished branch
    branch: bytes  # a child with siblings after it
    vert: bytes    # below a branch that goes on
    last: bytes    # the last child
    single: bytes  # compact: an only child on its parent's line
    first: bytes   # compact: the first of several children on the parent's line


ASCII = Symbols(b"  ", b"|-", b"| ", b"`-", b"---", b"-+-")
_V, _VR, _H, _UR, _HD = (c.encode() for c in "\u2502\u251c\u2500\u2514\u252c")
UTF = Symbols(b"  ", _VR + _H, _V + b" ", _UR + _H, _H * 3, _H + _HD + _H)
_VT_ON, _VT_OFF = b"\033(0\017", b"\033(B"
VT100 = Symbols(b"  ", _VT_ON + b"tq" + _VT_OFF, _VT_ON + b"x" + _VT_OFF + b" ",
                _VT_ON + b"mq" + _VT_OFF, _VT_ON + b"qqq" + _VT_OFF, _VT_ON + b"qwq" + _VT_OFF)


class TreeOptions(NamedTuple):
    symbols: Symbols
    device: bool = True       # (major:minor)
    blkdevname: bool = False  # <dm-0>
    active: bool = False      # attribute list: ACTIVE/SUSPENDED
    rw: bool = False          # RW/RO
    open: bool = False        # open count
    uuid: bool = False
    targets: bool = False     # "table"/"status": accepted, print nothing, stop compact
    compact: bool = False
    truncate: bool = True
    inverted: bool = False

    @property
    def attributes(self) -> bool:
        return self.active or self.rw or self.open or self.uuid


# dmsetup tries the words in this order, so an abbreviation takes the first
# that it begins (``a`` is active, not ascii); an empty word is ``device``.
_WORDS = ("device", "blkdevname", "nodevice", "status", "table", "active", "open",
          "uuid", "rw", "utf", "vt100", "ascii", "inverted", "compact", "notrunc")


class BadOption(ValueError):
    """The rest of the option string from the word not understood."""


def abbreviated_words(text: str, choices: Iterable[str]) -> list[str]:
    """dmsetup's -o word matching: each comma-separated word is the first
    choice it begins (so an empty word is the first choice); a trailing comma
    ends the list.  An unknown word raises BadOption with the rest of text."""
    found: list[str] = []
    start = 0
    while start < len(text):
        end = text.find(",", start)
        end = len(text) if end < 0 else end
        word = text[start:end]
        match = next((c for c in choices if c.startswith(word)), None)
        if match is None:
            raise BadOption(text[start:])
        found.append(match)
        start = end + 1
    return found


def parse_options(text: str | None, utf8: bool) -> TreeOptions:
    """``-o`` for ``--tree``; ``utf8``: whether the locale's codeset is UTF-8."""
    opts = TreeOptions(UTF if utf8 else ASCII)
    for word in abbreviated_words(text or "", _WORDS):
        if word in ("utf", "vt100", "ascii"):
            opts = opts._replace(symbols={"utf": UTF, "vt100": VT100, "ascii": ASCII}[word])
        elif word in ("status", "table"):
            opts = opts._replace(targets=True)
        elif word == "nodevice":
            opts = opts._replace(device=False)
        elif word == "notrunc":
            opts = opts._replace(truncate=False)
        else:
            # word is one of the bool fields
            opts = opts._replace(**{word: True})  # type: ignore[arg-type]
    return opts


def locale_is_utf8() -> bool:
    """Whether C's setlocale(LC_ALL, "") would pick a UTF-8 codeset.

    Python coerces a C locale to C.UTF-8 (exporting LC_CTYPE); dmsetup,
    started from the same shell, stays in C and draws ASCII.
    """
    import locale

    coerced = (sys.flags.utf8_mode and os.environ.get("LC_CTYPE") == "C.UTF-8"
               and "PYTHONUTF8" not in os.environ)
    try:
        return not coerced and locale.nl_langinfo(locale.CODESET) == "UTF-8"
    except (AttributeError, ValueError):
        return False


def terminal_width(opts: TreeOptions) -> int:
    """Where lines are cut: the terminal's columns less 3, else 80."""
    if opts.symbols is not VT100:  # dmsetup: cutting breaks vt100 sequences
        try:
            cols = os.get_terminal_size(1).columns
        except OSError:
            cols = 0
        if cols > 3:
            return cols - 3
    return 80


class _Printer:
    """dmsetup's character output: counts columns (UTF-8 lead bytes only)
    and, when truncating, stops at the width with ``...``, keeping one
    ASCII character in reserve in case the line ends right after it."""

    def __init__(self, width: int, truncate: bool) -> None:
        self.width = width
        self.truncate = truncate
        self.x = 1
        self.held = 0  # the reserved character, 0 for none
        self.out: bytearray = bytearray()

    def char(self, c: int) -> None:
        lead = (c & 0xC0) != 0x80
        self.x += lead
        if not self.truncate:
            self.out.append(c)
            return
        if self.x <= self.width:
            self.out.append(c)
        if self.x == self.width + 1 and lead:
            if self.held or c & 0x80:
                self.out += b"..."
            else:
                self.held = c
                self.x -= 1

    def text(self, data: bytes) -> None:
        for c in data:
            self.char(c)

    def newline(self) -> None:
        if self.held and self.x == self.width:
            self.out.append(self.held)
        self.held = 0
        self.out += b"\n"
        self.x = 1


_MAX_DEPTH = 100


def render(graph: DeviceGraph, opts: TreeOptions, width: int,
           kernel_name: Callable[[int, int], str | None]) -> bytes:
    """The whole tree as dmsetup prints it."""
    p = _Printer(width, opts.truncate)
    sym = opts.symbols
    more = [0] * (_MAX_DEPTH + 2)    # does a sibling follow the node at this depth
    widths = [0] * (_MAX_DEPTH + 2)  # compact: columns the node at this depth took
    compact = opts.compact and not opts.attributes and not opts.targets

    def encode(text: str) -> bytes:
        return text.encode("utf-8", "surrogateescape")

    def prefix(depth: int) -> None:
        for d in range(depth):
            p.text(b" " * (widths[d] + 1))
            if d == depth - 1:
                p.text(sym.branch if more[depth] else sym.last)
            else:
                p.text(sym.vert if more[d + 1] else sym.empty)

    def attributes(node: DeviceNode) -> None:
        info = node.info
        if info is None:
            return
        shown: list[bytes] = []
        if opts.active:
            shown.append(b"SUSPENDED" if info.suspended else b"ACTIVE")
        if opts.rw:
            shown.append(b"RO" if info.read_only else b"RW")
        if opts.open:
            shown.append(str(info.open_count).encode())
        if opts.uuid:
            shown.append(encode(info.uuid))
        if shown:
            p.text(b" [" + b", ".join(shown) + b"]")

    def show(devno: DevNo, depth: int, last: bool, has_children: bool) -> None:
        if depth + 2 > _MAX_DEPTH:
            return
        node = graph[devno]
        name = encode(node.name)
        if not name and not opts.device and not opts.blkdevname:
            return
        more[depth] = not last
        widths[depth] = 0
        first_on_line = p.x == 1
        if not compact or first_on_line:
            prefix(depth)
        start = p.x
        if compact and not first_on_line:
            p.text(sym.first if more[depth] else sym.single)
        p.text(name)
        if opts.blkdevname:
            kname = kernel_name(devno.major, devno.minor)
            if kname:
                p.text(b" <" + encode(kname) + b">")
        if opts.device:
            p.text(f" ({devno.major}:{devno.minor})".encode())
        if opts.attributes:
            attributes(node)
        if compact:
            widths[depth] = p.x - start
        if not compact or not has_children:
            p.newline()

    def walk(children: list[DevNo], depth: int) -> None:
        for i, child in enumerate(children):
            below = graph.children(child, opts.inverted)
            show(child, depth, i == len(children) - 1, bool(below))
            if below:
                walk(below, depth + 1)

    walk(graph.roots(opts.inverted), 0)
    return bytes(p.out)
