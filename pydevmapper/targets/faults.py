# SPDX-License-Identifier: LGPL-2.1-or-later
"""Targets that misbehave on purpose, for testing what sits above them:
``flakey`` (fails, drops or corrupts I/O in periodic windows) and ``delay``.

Formats: the kernel's drivers/md/dm-flakey.c and dm-delay.c.
"""

from __future__ import annotations

import dataclasses

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.targets._base import (
    NoStatus,
    Params,
    Status,
    Words,
    as_devno,
    register,
)
from pydevmapper.types import DevNo

_UINT_MAX = 2**32 - 1
# dm-flakey.c: random corruption is a probability out of 1,000,000,000.
PROBABILITY_BASE = 1_000_000_000


class CorruptBioByte(NamedTuple):
    """``corrupt_bio_byte <Nth_byte> <direction> <value> <flags>``: in the
    down window, set byte ``byte`` (from 1) of each ``direction`` (``r`` or
    ``w``) bio carrying all of ``flags`` (0: any) to ``value``."""

    byte: int
    direction: str
    value: int
    flags: int = 0


@register
@dataclasses.dataclass(frozen=True)
class Flakey(Params):
    """``<device> <offset> <up interval> <down interval> [<#features> <feature>...]``.

    The device works for ``up_interval`` seconds, then misbehaves for
    ``down_interval`` seconds, as the features say.  From Linux 6.4 (flakey
    1.5) a table without any feature gets ``error_reads`` and
    ``error_writes``, and the kernel prints them; before, none showed.
    ``error_reads`` and the ``random_*_corrupt`` probabilities (out of
    ``PROBABILITY_BASE``) need flakey 1.5.
    """

    TYPE = "flakey"
    Status = NoStatus
    device: DevNo
    offset: int
    up_interval: int
    down_interval: int
    error_reads: bool = False
    drop_writes: bool = False
    error_writes: bool = False
    corrupt_bio_byte: CorruptBioByte | None = None
    random_read_corrupt: int = 0
    random_write_corrupt: int = 0

    def _convert(self) -> None:
        if self.corrupt_bio_byte is not None and type(self.corrupt_bio_byte) is not CorruptBioByte:
            self._set("corrupt_bio_byte", CorruptBioByte(*self.corrupt_bio_byte))

    def _check(self) -> None:
        for field in ("up_interval", "down_interval"):
            if not 0 <= getattr(self, field) <= _UINT_MAX:
                raise self._error(field, f"must be from 0 to {_UINT_MAX}")
        if self.up_interval + self.down_interval == 0:
            raise self._error("down_interval", "the up and down intervals together must not be zero")
        if self.up_interval + self.down_interval > _UINT_MAX:
            raise self._error("down_interval", "the up and down intervals together overflow 32 bits")
        if self.drop_writes and self.error_writes:
            raise self._error("error_writes", "conflicts with drop_writes")
        c = self.corrupt_bio_byte
        if c is not None:
            if not 1 <= c.byte <= _UINT_MAX:
                raise self._error("corrupt_bio_byte", f"byte must be from 1 (the first), got {c.byte}")
            if c.direction not in ("r", "w"):
                raise self._error("corrupt_bio_byte", f"direction must be 'r' or 'w', got {c.direction!r}")
            if not 0 <= c.value <= 255:
                raise self._error("corrupt_bio_byte", f"value must be from 0 to 255, got {c.value}")
            if not 0 <= c.flags <= _UINT_MAX:
                raise self._error("corrupt_bio_byte", "flags must fit 32 bits")
            if c.direction == "w" and (self.drop_writes or self.error_writes):
                which = "drop_writes" if self.drop_writes else "error_writes"
                raise self._error("corrupt_bio_byte", f"corrupting writes is incompatible with {which}")
        for field in ("random_read_corrupt", "random_write_corrupt"):
            if not 0 <= getattr(self, field) <= PROBABILITY_BASE:
                raise self._error(field, f"must be from 0 to {PROBABILITY_BASE}")

    def format(self) -> str:
        features: list[str] = []
        if self.error_reads:
            features.append("error_reads")
        if self.drop_writes:
            features.append("drop_writes")
        elif self.error_writes:
            features.append("error_writes")
        c = self.corrupt_bio_byte
        if c is not None:
            features += ["corrupt_bio_byte", str(c.byte), c.direction, str(c.value), str(c.flags)]
        if self.random_read_corrupt:
            features += ["random_read_corrupt", str(self.random_read_corrupt)]
        if self.random_write_corrupt:
            features += ["random_write_corrupt", str(self.random_write_corrupt)]
        return " ".join([f"{self.device} {self.offset} {self.up_interval} {self.down_interval}",
                         str(len(features)), *features])

    @classmethod
    def _read(cls, w: Words) -> Flakey:
        device, offset = w.dev("device"), w.int("offset")
        up, down = w.int("up_interval"), w.int("down_interval")
        kw: dict[str, object] = {}
        args = Words(" ".join(w.counted("features")), cls.TYPE)
        while args.more():
            name = args.take("feature").lower()
            if name in ("error_reads", "drop_writes", "error_writes"):
                if name in kw:
                    raise args.error("features", f"{name} given twice")
                kw[name] = True
            elif name == "corrupt_bio_byte":
                byte = args.int("corrupt_bio_byte byte")
                kw[name] = CorruptBioByte(byte, args.take("corrupt_bio_byte direction").lower(),
                                          args.int("corrupt_bio_byte value"), args.int("corrupt_bio_byte flags"))
            elif name in ("random_read_corrupt", "random_write_corrupt"):
                kw[name] = args.int(name)
            else:
                raise args.error("features", f"unknown feature {name!r}")
        return cls(device, offset, up, down, **kw)  # type: ignore[arg-type]


class DelayClass(NamedTuple):
    """Where one class of I/O goes, and its delay in milliseconds."""

    device: DevNo
    offset: int
    delay_ms: int


@dataclasses.dataclass(frozen=True)
class DelayStatus(Status):
    """``<reads> <writes> <flushes>``: I/Os now held back, per class."""

    TYPE = "delay"
    reads: int
    writes: int
    flushes: int
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> DelayStatus:
        return cls(w.int("reads"), w.int("writes"), w.int("flushes"), w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Delay(Params):
    """``<device> <offset> <delay> [<device> <offset> <delay> [<device> <offset> <delay>]]``:
    reads, then writes, then flushes each go to their own place after their
    own delay.  ``write`` defaults to ``read``'s and ``flush`` to ``write``'s,
    as the kernel does; the kernel prints only those given."""

    TYPE = "delay"
    Status = DelayStatus
    read: DelayClass
    write: DelayClass | None = None
    flush: DelayClass | None = None

    def _convert(self) -> None:
        for field in ("read", "write", "flush"):
            value = getattr(self, field)
            if value is not None:
                self._set(field, DelayClass(as_devno(value[0], self.TYPE, f"{field} device"), value[1], value[2]))

    def _check(self) -> None:
        if self.flush is not None and self.write is None:
            raise self._error("flush", "needs write to be given too (the kernel takes 3, 6 or 9 arguments)")
        for field in ("read", "write", "flush"):
            value = getattr(self, field)
            if value is not None and not 0 <= value.delay_ms <= _UINT_MAX:
                raise self._error(field, "the delay must fit 32 bits")

    def format(self) -> str:
        classes = [c for c in (self.read, self.write, self.flush) if c is not None]
        return " ".join(f"{c.device} {c.offset} {c.delay_ms}" for c in classes)

    @classmethod
    def _read(cls, w: Words) -> Delay:
        classes: list[DelayClass] = []
        for field in ("read", "write", "flush"):
            if field == "read" or w.more():
                classes.append(DelayClass(w.dev(f"{field} device"), w.int(f"{field} offset"),
                                          w.int(f"{field} delay")))
        return cls(*classes)
