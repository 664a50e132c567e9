# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tables: ordered targets, checked before the kernel sees them.

The text form is dmsetup's: one target a line, ``<start> <length> <type>
<parameters>``; blank lines and lines starting with ``#`` are skipped when
parsing.  ``Table.parse(str(table)) == table`` for every valid table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from pydevmapper import validate
from pydevmapper._namedtuple import NamedTuple, build
from pydevmapper.cparse import C_SPACE, strtoul
from pydevmapper.errors import ValidationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from types import ModuleType
    from typing import overload

    from pydevmapper.targets import Params, Status


class Target(NamedTuple):
    """One table line. Sectors are 512 bytes."""

    start: int
    length: int
    type: str
    params: str = ""

    def __str__(self) -> str:
        head = f"{self.start} {self.length} {self.type}"
        return f"{head} {self.params}" if self.params else head

    def __repr__(self) -> str:
        params = "<may hold a key>" if self.type in validate.KEYED_TARGETS else repr(self.params)
        return f"Target(start={self.start!r}, length={self.length!r}, type={self.type!r}, params={params})"

    def check(self) -> None:
        """Raise ValidationError unless the kernel could take this target."""
        validate.sector_count(self.start, "target start")
        validate.sector_count(self.length, "target length")
        if self.length == 0:
            raise ValidationError(f"target at sector {self.start} has zero length")
        validate.target_type(self.type)
        validate.parameter_string(self.params, secret=self.type in validate.KEYED_TARGETS)

    def parsed(self) -> Params:
        """The typed parameters (``pydevmapper.targets``); ``Unknown`` for a
        target type it does not know."""
        params: Params = _targets().parse(self)
        return params


class TargetStatus(NamedTuple):
    """A target's status line as the target reports it (DM_TABLE_STATUS)."""

    start: int
    length: int
    type: str
    status: str

    def parsed(self) -> Status:
        """The typed status (``pydevmapper.targets``); ``UnknownStatus`` for a
        target type it does not know."""
        status: Status = _targets().parse_status(self)
        return status


def _targets() -> ModuleType:
    """pydevmapper.targets, imported on first use (scripts that never parse
    a target do not pay for it), then kept: an import statement per parsed
    status cost a tenth of the parse (benchmark row thin_status_1000)."""
    global _targets_module
    if _targets_module is None:
        import pydevmapper.targets

        _targets_module = pydevmapper.targets
    return _targets_module


_targets_module: ModuleType | None = None


class TableSyntaxError(ValidationError):
    """A table line that is not ``<start> <length> <type> [params]``."""

    def __init__(self, lineno: int, line: str, reason: str) -> None:
        super().__init__(f"line {lineno}: {reason}, got {line!r}")
        self.lineno = lineno


def parse_targets(text: str, *, dmsetup: bool = False) -> list[Target]:
    r"""The targets of dmsetup table text, checked for syntax only.

    Blank lines and lines starting with ``#`` are skipped.  Lines end at
    ``"\n"`` only, as for dmsetup: ``splitlines()`` would also split at
    ``\v``, ``\f``, ``\x1c``-``\x1e``, ``\x85`` and ``\u2028``, which
    parameters may hold.  Numbers are ASCII digits only (``int()`` would
    also take "+5", "5_0" and other scripts' digits).

    ``dmsetup=True`` reads lines exactly as ``dmsetup create``/``load`` do,
    for scripts that feed it the same files: the fields are read with
    ``sscanf("%llu %llu %s %n")`` and a ``#`` ends the parameters (the
    default keeps parameters as written: the kernel receives them so).
    """
    targets: list[Target] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip(C_SPACE) if dmsetup else line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if dmsetup:
            fields = _scan_dmsetup_line(stripped)
            if fields is None:
                raise TableSyntaxError(lineno, line, _LINE_FORM)
            start, length, ttype, params = fields
            params = params.split("#", 1)[0]
        else:
            words = stripped.split(None, 3)
            if len(words) < 3:
                raise TableSyntaxError(lineno, line, _LINE_FORM)
            for word, what in ((words[0], "start"), (words[1], "length")):
                if not (word.isdigit() and word.isascii()):
                    raise TableSyntaxError(lineno, line, f"{what} {word!r} is not a non-negative integer")
            start, length, ttype = int(words[0]), int(words[1]), words[2]
            params = words[3] if len(words) == 4 else ""
        targets.append(build(Target, (start, length, ttype, params)))
    return targets


_LINE_FORM = "expected '<start> <length> <type> [params]'"


def _scan_dmsetup_line(line: str) -> tuple[int, int, str, str] | None:
    """``sscanf(line, "%llu %llu %s %n")`` as glibc runs it, or None if it
    converts fewer than three fields.

    So "+8" is 8, "-8" wraps to 2**64 - 8 (strtoull), an overflow saturates,
    and "10 5x zero" is start 10, length 5, type "x" (fields may touch).
    """
    start, pos, _ = strtoul(line)
    if not pos:
        return None
    length, end, _ = strtoul(line, 10, pos)
    if end == pos:
        return None
    pos, n = end, len(line)
    while pos < n and line[pos] in C_SPACE:
        pos += 1
    type_at = pos
    while pos < n and line[pos] not in C_SPACE:
        pos += 1
    if pos == type_at:
        return None
    ttype = line[type_at:pos]
    while pos < n and line[pos] in C_SPACE:
        pos += 1
    return start, length, ttype, line[pos:]


def _normalised(target: Target) -> Target:
    # Only blanks: a line break stays, for check() to refuse.
    params = target.params
    if isinstance(params, str):
        stripped = params.strip(" \t")
        if stripped != params:
            return build(Target, (target.start, target.length, target.type, stripped))
    return target


class Table(Sequence[Target]):
    """An immutable, validated, ordered list of targets covering 0..size."""

    __slots__ = ("_targets",)

    def __init__(self, targets: Iterable[Target | tuple[int, int, str, str]]) -> None:
        # The kernel splits parameters at whitespace, so edge blanks carry
        # nothing; dropping them keeps parse(format(t)) == t.
        items: list[Target] = []
        expected = 0
        for target in targets:
            target = _normalised(target if isinstance(target, Target) else Target(*target))
            target.check()
            if target.start != expected:
                kind = "gap" if target.start > expected else "overlap"
                raise ValidationError(
                    f"{kind} in table: target {target.type!r} starts at sector "
                    f"{target.start}, the previous one ends at {expected}"
                )
            expected = target.start + target.length
            items.append(target)
        if not items:
            raise ValidationError("a table needs at least one target")
        self._targets = tuple(items)

    @classmethod
    def _from_kernel(cls, targets: Iterable[Target]) -> Table:
        """A table as the kernel reports it: already valid, so not re-checked."""
        table = cls.__new__(cls)
        table._targets = tuple(map(_normalised, targets))
        return table

    @classmethod
    def single(cls, length: int, type: str | Params, params: str = "") -> Table:
        """A one-target table: ``Table.single(2048, "linear", "7:0 0")`` or,
        typed, ``Table.single(2048, targets.Linear("7:0"))``."""
        if not isinstance(type, str):
            return cls([type.target(0, length)])
        return cls([Target(0, length, type, params)])

    @classmethod
    def parse(cls, text: str) -> Table:
        """Parse dmsetup table text (the output of ``dmsetup table``)."""
        return cls(parse_targets(text))

    @property
    def size(self) -> int:
        """Total length in sectors."""
        last = self._targets[-1]
        return last.start + last.length

    def format(self) -> str:
        """The dmsetup table text, one line per target, newline-terminated."""
        return "".join(f"{t}\n" for t in self._targets)

    __str__ = format

    def __repr__(self) -> str:
        return f"Table({list(self._targets)!r})"

    if TYPE_CHECKING:  # typing's overload, for type checkers only
        @overload
        def __getitem__(self, index: int) -> Target: ...
        @overload
        def __getitem__(self, index: slice) -> tuple[Target, ...]: ...

    def __getitem__(self, index: int | slice) -> Target | tuple[Target, ...]:
        return self._targets[index]

    def __len__(self) -> int:
        return len(self._targets)

    def __iter__(self) -> Iterator[Target]:
        return iter(self._targets)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Table):
            return self._targets == other._targets
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._targets)


def as_table(table: Table | str | Iterable[Target]) -> Table:
    """Accept a Table, dmsetup table text, or an iterable of targets."""
    # The exact type first: isinstance() against Table, an abc.Sequence,
    # runs ABCMeta's Python __instancecheck__.
    if type(table) is Table:
        return table
    if isinstance(table, str):
        return Table.parse(table)
    if isinstance(table, Table):
        return table
    return Table(table)
