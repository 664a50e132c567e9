"""Command-line parsing exactly as dmsetup's getopt_long() call sees it.

glibc's getopt_long permutes (options may follow the command and its
arguments), accepts unique prefixes of long options, and words its errors in
a fixed way that scripts and test suites compare; argparse does none of that
the same way, so this is a small getopt of our own.
"""

from __future__ import annotations

from pydevmapper._namedtuple import NamedTuple

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
    """getopt's complaint, already worded as glibc words it."""


class Parsed(NamedTuple):
    # long option name -> how often given; and its last argument
    counts: dict[str, int]
    values: dict[str, str]
    args: list[str]  # the command and its arguments, in order


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
    values: dict[str, str] = {}
    args: list[str] = []

    def seen(name: str, value: str | None = None) -> None:
        counts[name] = counts.get(name, 0) + 1
        if value is not None:
            values[name] = value

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
    return Parsed(counts, values, args)
