# SPDX-License-Identifier: LGPL-2.1-or-later
"""What every typed target shares: the parameter and status base classes,
the word reader that parses the kernel's text, device references, messages.

A target family's module (``thin``, ``cache``, ...) declares frozen
dataclasses on these bases; ``register`` files them by the kernel's target
name, which is how ``Target.parsed()`` finds them.
"""

from __future__ import annotations

import dataclasses
import os
import stat

from pydevmapper.errors import ValidationError
from pydevmapper.types import DevNo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import builtins
    from typing import Any, ClassVar, NoReturn, TypeVar

    from pydevmapper.tables import Target, TargetStatus

    # The class a classmethod is called on (typing.Self is Python 3.11+).
    P = TypeVar("P", bound="Params")
    S = TypeVar("S", bound="Status")


class ParameterError(ValidationError):
    """A target's parameter or status text the kernel would refuse or that
    does not have the target's form; ``target_type`` and ``field`` say where."""

    def __init__(self, target_type: str, field: str, reason: str) -> None:
        where = f"{target_type} {field}" if field else target_type
        super().__init__(f"{where}: {reason}")
        self.target_type = target_type
        self.field = field


# --------------------------------------------------------------------------
# devices


def as_devno(value: object, target_type: str = "", field: str = "device") -> DevNo:
    """A device reference as the kernel prints it: ``DevNo`` from a DevNo,
    a ``(major, minor)`` pair, ``"major:minor"``, a block device's path or
    anything with a ``devno`` (a ``Device`` handle)."""
    if type(value) is DevNo:
        return value
    # What isinstance() finds in a caller's value has Unknown items to
    # pyright; the same value as Any, which no check narrows, does not.
    loose: Any = value
    devno = getattr(value, "devno", None)
    if devno is not None and not isinstance(value, tuple):
        return as_devno(devno, target_type, field)
    if isinstance(value, tuple) and len(loose) == 2 and all(type(v) is int and v >= 0 for v in loose):
        return DevNo(*loose)
    if isinstance(value, str):
        major, sep, minor = value.partition(":")
        if sep:
            if _is_decimal(major) and _is_decimal(minor):
                return DevNo(int(major), int(minor))
            raise ParameterError(target_type, field, f"{value!r} is not major:minor")
        if value.startswith("/"):
            try:
                st = os.stat(value)
            except OSError as e:
                raise ParameterError(target_type, field, f"{value}: {e.strerror}") from None
            if not stat.S_ISBLK(st.st_mode):
                raise ParameterError(target_type, field, f"{value} is not a block device")
            return DevNo(os.major(st.st_rdev), os.minor(st.st_rdev))
    raise ParameterError(target_type, field,
                         f"expected a DevNo, 'major:minor', a block device path or a Device, got {value!r}")


def _is_decimal(word: str) -> bool:
    return word.isascii() and word.isdigit()


def _is_devno(word: str) -> bool:
    major, sep, minor = word.partition(":")
    return bool(sep) and _is_decimal(major) and _is_decimal(minor)


# --------------------------------------------------------------------------
# reading the kernel's words


class Words:
    """The whitespace-separated words of a parameter or status line, read in
    order; every read names the field, so a short or malformed line says
    which field it lacks."""

    __slots__ = ("pos", "secret", "target_type", "words")

    def __init__(self, text: str, target_type: str, *, secret: bool = False) -> None:
        self.words = text.split()
        self.pos = 0
        self.target_type = target_type
        self.secret = secret  # the text may hold a key: errors never quote it

    def quote(self, text: str) -> str:
        return "a word" if self.secret else repr(text)

    def error(self, field: str, reason: str) -> ParameterError:
        return ParameterError(self.target_type, field, reason)

    def more(self) -> bool:
        return self.pos < len(self.words)

    def peek(self) -> str | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def choice(self, field: str, choices: tuple[str, ...]) -> str:
        """A word that must be one of ``choices``."""
        word = self.take(field)
        if word not in choices:
            raise self.error(field, f"expected {' or '.join(choices)}, got {self.quote(word)}")
        return word

    def take(self, field: str) -> str:
        if self.pos >= len(self.words):
            raise self.error(field, "missing")
        word = self.words[self.pos]
        self.pos += 1
        return word

    def int(self, field: str) -> int:
        word = self.take(field)
        if not _is_decimal(word):
            raise self.error(field, f"{self.quote(word)} is not a non-negative decimal integer")
        return int(word)

    def optional_int(self, field: str) -> builtins.int | None:
        """A non-negative integer, or ``-`` for none."""
        word = self.take(field)
        if word == "-":
            return None
        if not _is_decimal(word):
            raise self.error(field, f"{self.quote(word)} is neither a non-negative decimal integer nor -")
        return int(word)

    def ratio(self, field: str) -> tuple[builtins.int, builtins.int]:
        """``a/b`` as two integers."""
        word = self.take(field)
        a, sep, b = word.partition("/")
        if not (sep and _is_decimal(a) and _is_decimal(b)):
            raise self.error(field, f"{self.quote(word)} is not <n>/<m>")
        return int(a), int(b)

    def dev(self, field: str) -> DevNo:
        word = self.take(field)
        if self.secret and not _is_devno(word):
            raise self.error(field, "expected major:minor")
        return as_devno(word, self.target_type, field)

    def optional_dev(self, field: str) -> DevNo | None:
        """A device, or ``-`` for none."""
        if self.peek() == "-":
            self.take(field)
            return None
        return self.dev(field)

    def counted(self, field: str) -> list[str]:
        """``<#args> <arg>...``; nothing at all counts as zero."""
        if not self.more():
            return []
        count = self.int(f"number of {field}")
        if count > len(self.words) - self.pos:
            raise self.error(field, f"{count} announced, {len(self.words) - self.pos} present")
        args = self.words[self.pos:self.pos + count]
        self.pos += count
        return args

    def rest(self) -> tuple[str, ...]:
        words = tuple(self.words[self.pos:])
        self.pos = len(self.words)
        return words

    def end(self) -> None:
        if self.more():
            raise self.error("", f"unexpected {self.quote(' '.join(self.words[self.pos:]))} after the last field")


def pairs(words: list[str], target_type: str, field: str) -> list[tuple[str, str]]:
    """``key value key value ...`` (cache's core and policy arguments)."""
    if len(words) % 2:
        raise ParameterError(target_type, field, f"{' '.join(words)!r} is not key value pairs")
    return list(zip(words[0::2], words[1::2]))


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --------------------------------------------------------------------------
# the bases


class _Typed:
    """Shared by parameters and statuses: frozen fields, a JSON-ready dict."""

    TYPE: ClassVar[str]

    def _set(self, field: str, value: object) -> None:
        object.__setattr__(self, field, value)

    def _error(self, field: str, reason: str) -> ParameterError:
        return ParameterError(self.TYPE, field, reason)

    def to_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        """Every field, JSON-ready: devices as ``"major:minor"``, records as
        objects, tuples as lists, keys as ``"<secret>"`` unless ``reveal``."""
        return {f.name: _plain(getattr(self, f.name), reveal)
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def _plain(value: object, reveal: bool) -> object:
    if isinstance(value, DevNo):
        return str(value)
    if isinstance(value, _Typed):
        return value.to_dict(reveal=reveal)
    loose: Any = value  # unnarrowed (see as_devno)
    if isinstance(value, tuple) and hasattr(loose, "_asdict"):
        return {k: _plain(v, reveal) for k, v in loose._asdict().items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v, reveal) for v in loose]
    if isinstance(value, dict):
        return {k: _plain(v, reveal) for k, v in loose.items()}
    if isinstance(value, Secret):
        return value.reveal() if reveal else repr(value)
    return value


# annotation -> (type, None allowed), for Params._fields: plain values are
# checked, device references converted
_DEVICES = {"DevNo": False, "DevNo | None": True}
_KINDS = {"int": (int, False), "int | None": (int, True), "bool": (bool, False), "bool | None": (bool, True),
          "str": (str, False), "str | None": (str, True)}


class Params(_Typed):
    """A target's constructor arguments, typed.  ``format()`` is the text the
    kernel prints back for ``table``; ``parse(format())`` equals the object.
    Fields are converted and checked on creation."""

    def __post_init__(self) -> None:
        devices, kinds = self._fields()
        # Device fields take any reference as_devno() takes and hold a DevNo.
        for name, optional in devices:
            value = getattr(self, name)
            if value is not None or not optional:
                self._set(name, as_devno(value, self.TYPE, name))
        self._convert()
        # Plain fields hold what they say: an int field no bool, str or float
        # (it would print as the kernel cannot read), a bool field a bool.
        for name, (kind, optional) in kinds:
            value = getattr(self, name)
            if type(value) is not kind and not (optional and value is None):
                raise self._error(name, f"must be {kind.__name__}{' or None' if optional else ''}, "
                                        f"got {type(value).__name__}")
        self._check()

    @classmethod
    def _fields(cls) -> tuple[list[tuple[str, bool]], list[tuple[str, tuple[type, bool]]]]:
        """The device fields and the plain ones, from the annotations (once a class)."""
        table = cls.__dict__.get("_field_table")
        if table is None:
            fields = dataclasses.fields(cls)  # type: ignore[arg-type]
            table = ([(f.name, _DEVICES[f.type]) for f in fields if f.type in _DEVICES],
                     [(f.name, _KINDS[f.type]) for f in fields if f.type in _KINDS])
            type.__setattr__(cls, "_field_table", table)
        return table

    def _convert(self) -> None:
        """Bring compound fields to their canonical types (device fields are
        converted before, from their annotations)."""

    def _check(self) -> None:
        """Raise ParameterError for a value the kernel would refuse."""

    def format(self) -> str:
        """The parameter text of the table line, as the kernel prints it back for ``table``."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.format()

    SECRET = False  # parameters that may hold keys: errors do not quote them

    @classmethod
    def parse(cls: type[P], params: str) -> P:
        """The parameters of a table line's parameter text; ``ParameterError`` if the text does not
        have the target's form."""
        words = Words(params, cls.TYPE, secret=cls.SECRET)
        value = cls._read(words)
        words.end()
        return value

    @classmethod
    def _read(cls: type[P], w: Words) -> P:
        raise NotImplementedError

    def target(self, start: int, length: int) -> Target:
        """The table line for this target at ``start`` for ``length`` sectors."""
        from pydevmapper.tables import Target

        self.check_length(length)
        return Target(start, length, self.TYPE, self.format())

    def check_length(self, length: int) -> None:
        """Raise ParameterError unless the target can be ``length`` sectors long."""

    Status: ClassVar[type[Status]]


class Status(_Typed):
    """A target's ``STATUSTYPE_INFO`` line, typed.  Words a newer kernel
    appends after the fields known here are kept in ``extra``.  Built from
    what the kernel said, so nothing is checked on creation."""

    @classmethod
    def _failure(cls: type[S], w: Words) -> S | None:
        """The whole status of a target that failed (``Fail``) or could not
        read its metadata (``Error``): ``failed`` or ``error`` set, every
        other field None.  None for any other status."""
        if w.peek() not in ("Fail", "Error"):
            return None
        state = w.take("state")
        return cls(failed=state == "Fail", error=state == "Error", extra=w.rest())  # type: ignore[call-arg]

    @classmethod
    def parse(cls: type[S], status: str) -> S:
        """The status in a target's status line; ``ParameterError`` if the line does not have the
        target's form."""
        return cls._read(Words(status, cls.TYPE))

    @classmethod
    def _read(cls: type[S], w: Words) -> S:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class NoStatus(Status):
    """The status of a target that reports nothing (linear, zero, error...);
    anything it does report is kept in ``extra``."""

    TYPE = "target"
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> NoStatus:
        return cls(w.rest())


@dataclasses.dataclass(frozen=True)
class Unknown(Params):
    """The parameters of a target this module does not know, kept as text."""

    TYPE = "unknown"
    type: str
    params: str
    Status = NoStatus

    def format(self) -> str:
        return self.params

    def target(self, start: int, length: int) -> Target:
        from pydevmapper.tables import Target

        return Target(start, length, self.type, self.params)


@dataclasses.dataclass(frozen=True)
class UnknownStatus(Status):
    """The status of a target this module does not know, kept as text."""

    TYPE = "unknown"
    type: str
    status: str


# --------------------------------------------------------------------------
# secrets and messages


class Secret:
    """Key material: never in ``repr``, ``str``, exceptions or logs.  The
    text goes to the kernel only inside a table or a message sent with
    DM_SECURE_DATA_FLAG (see ``Message``); ``reveal()`` hands it out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for what goes to the kernel."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:  # pragma: no cover - never pickled
        raise TypeError("a Secret is not pickled")


class Message:
    """A message for ``Control.message``: its words, and whether it carries
    key material (then it goes out with DM_SECURE_DATA_FLAG, and its text
    never shows in ``repr``)."""

    __slots__ = ("_words", "secure")

    def __init__(self, *words: object, secure: bool = False) -> None:
        self._words = tuple(words)
        self.secure = secure or any(isinstance(w, Secret) for w in words)

    def text(self) -> str:
        """What the kernel receives (keys included)."""
        return " ".join(w.reveal() if isinstance(w, Secret) else str(w) for w in self._words)

    def __repr__(self) -> str:
        shown = " ".join("<secret>" if isinstance(w, Secret) else str(w) for w in self._words)
        return f"Message({shown!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return self.text() == other.text() and self.secure == other.secure
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.text(), self.secure))


# --------------------------------------------------------------------------
# the registry


_REGISTRY: dict[str, type[Params]] = {}


def register(cls: type[P]) -> type[P]:
    """File a parameter class under its kernel target name."""
    _REGISTRY[cls.TYPE] = cls
    return cls


def params_class(target_type: str) -> type[Params] | None:
    """The class for a target type, or None for one this module does not know."""
    return _REGISTRY.get(target_type)


def known_types() -> list[str]:
    """The target types that have a parameter class here, sorted."""
    return sorted(_REGISTRY)


def parse(target: Target) -> Params:
    """A table line's typed parameters (``Unknown`` for an unknown target)."""
    cls = _REGISTRY.get(target.type)
    if cls is None:
        return Unknown(target.type, target.params)
    return cls.parse(target.params)


def parse_status(status: TargetStatus) -> Status:
    """A status line, typed (``UnknownStatus`` for an unknown target)."""
    cls = _REGISTRY.get(status.type)
    if cls is None:
        return UnknownStatus(status.type, status.status)
    return cls.Status.parse(status.status)
