"""Tables: ordered targets, checked before the kernel sees them.

The text form is dmsetup's: one target a line, ``<start> <length> <type>
<parameters>``; blank lines and lines starting with ``#`` are skipped when
parsing.  ``Table.parse(str(table)) == table`` for every valid table.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, NamedTuple, Sequence, Tuple, Union, overload

from pydevmapper import validate
from pydevmapper.errors import ValidationError


class Target(NamedTuple):
    """One table line. Sectors are 512 bytes."""

    start: int
    length: int
    type: str
    params: str = ""

    def __str__(self) -> str:
        head = f"{self.start} {self.length} {self.type}"
        return f"{head} {self.params}" if self.params else head

    def check(self) -> None:
        """Raise ValidationError unless the kernel could take this target."""
        validate.sector_count(self.start, "target start")
        validate.sector_count(self.length, "target length")
        if self.length == 0:
            raise ValidationError(f"target at sector {self.start} has zero length")
        validate.target_type(self.type)
        validate.parameter_string(self.params)


class TargetStatus(NamedTuple):
    """A target's status line as the target reports it (DM_TABLE_STATUS)."""

    start: int
    length: int
    type: str
    status: str


class TableSyntaxError(ValidationError):
    """A table line that is not ``<start> <length> <type> [params]``."""

    def __init__(self, lineno: int, line: str, reason: str) -> None:
        super().__init__(f"line {lineno}: {reason}, got {line!r}")
        self.lineno = lineno


def parse_targets(text: str, *, strip_comments: bool = False) -> List[Target]:
    """The targets of dmsetup table text, checked for syntax only.

    Blank lines and lines starting with ``#`` are skipped.  Lines end at
    "\n" only, as for dmsetup: splitlines() would also split at \v, \f,
    \x1c-\x1e, \x85 and \u2028, which parameters may hold.
    ``strip_comments``: drop a ``#`` and what follows from the parameters,
    as ``dmsetup create``/``load`` do (``Table.parse`` keeps them: the
    kernel receives parameters as written).  Numbers are ASCII digits only,
    as dmsetup's sscanf takes them (int() would accept "+5" and "5_0").
    """
    targets = []
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split(None, 3)
        if len(fields) < 3:
            raise TableSyntaxError(lineno, line, "expected '<start> <length> <type> [params]'")
        for word, what in ((fields[0], "start"), (fields[1], "length")):
            if not (word.isdigit() and word.isascii()):
                raise TableSyntaxError(lineno, line, f"{what} {word!r} is not a non-negative integer")
        params = fields[3] if len(fields) == 4 else ""
        if strip_comments:
            params = params.split("#", 1)[0]
        targets.append(Target(int(fields[0]), int(fields[1]), fields[2], params))
    return targets


def _normalised(target: Target) -> Target:
    # Only blanks: a line break stays, for check() to refuse.
    if isinstance(target.params, str) and target.params != target.params.strip(" \t"):
        return target._replace(params=target.params.strip(" \t"))
    return target


class Table(Sequence[Target]):
    """An immutable, validated, ordered list of targets covering 0..size."""

    __slots__ = ("_targets",)

    def __init__(self, targets: Iterable[Union[Target, Tuple[int, int, str, str]]]) -> None:
        # The kernel splits parameters at whitespace, so edge blanks carry
        # nothing; dropping them keeps parse(format(t)) == t.
        items = tuple(_normalised(t if isinstance(t, Target) else Target(*t)) for t in targets)
        if not items:
            raise ValidationError("a table needs at least one target")
        expected = 0
        for target in items:
            target.check()
            if target.start != expected:
                kind = "gap" if target.start > expected else "overlap"
                raise ValidationError(
                    f"{kind} in table: target {target.type!r} starts at sector "
                    f"{target.start}, the previous one ends at {expected}"
                )
            expected = target.start + target.length
        self._targets = items

    @classmethod
    def _from_kernel(cls, targets: Iterable[Target]) -> "Table":
        """A table as the kernel reports it: already valid, so not re-checked."""
        table = cls.__new__(cls)
        table._targets = tuple(_normalised(t) for t in targets)
        return table

    @classmethod
    def single(cls, length: int, type: str, params: str = "") -> "Table":
        """A one-target table: ``Table.single(2048, "linear", "7:0 0")``."""
        return cls([Target(0, length, type, params)])

    @classmethod
    def parse(cls, text: str) -> "Table":
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

    @overload
    def __getitem__(self, index: int) -> Target: ...
    @overload
    def __getitem__(self, index: slice) -> Tuple[Target, ...]: ...

    def __getitem__(self, index):
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


def as_table(table: Union["Table", str, Iterable[Target]]) -> Table:
    """Accept a Table, dmsetup table text, or an iterable of targets."""
    if isinstance(table, Table):
        return table
    if isinstance(table, str):
        return Table.parse(table)
    return Table(table)
