# SPDX-License-Identifier: LGPL-2.1-or-later
"""The simple mappings: linear, striped, zero, error, unstriped, and our own
``basic_target`` (csrc/basic_target.c).

Formats: the kernel's drivers/md/dm-linear.c, dm-stripe.c, dm-zero.c,
dm-target.c (error), dm-unstripe.c.
"""

from __future__ import annotations

import dataclasses

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.targets._base import (
    Message,
    NoStatus,
    Params,
    Status,
    Words,
    as_devno,
    register,
)
from pydevmapper.types import DevNo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import TypeVar

    P = TypeVar("P", bound="_NoParameters")


@register
@dataclasses.dataclass(frozen=True)
class Linear(Params):
    """``<device> <offset>``: ``length`` sectors of ``device`` from ``offset``."""

    TYPE = "linear"
    Status = NoStatus
    device: DevNo
    offset: int = 0

    def format(self) -> str:
        return f"{self.device} {self.offset}"

    @classmethod
    def _read(cls, w: Words) -> Linear:
        return cls(w.dev("device"), w.int("offset"))


class _NoParameters(Params):
    """A target that takes no parameters."""

    Status = NoStatus

    def format(self) -> str:
        return ""

    @classmethod
    def _read(cls: type[P], w: Words) -> P:
        return cls()


@register
@dataclasses.dataclass(frozen=True)
class Zero(_NoParameters):
    """Reads return zeros, writes are dropped.  No parameters."""

    TYPE = "zero"


@register
@dataclasses.dataclass(frozen=True)
class Error(_NoParameters):
    """Every I/O fails.  No parameters."""

    TYPE = "error"


class Stripe(NamedTuple):
    """One leg of a striped target."""

    device: DevNo
    offset: int


@dataclasses.dataclass(frozen=True)
class StripedStatus(Status):
    """``<#stripes> <device>... 1 <A|D per stripe>``: ``D`` marks a stripe
    that has had an I/O error."""

    TYPE = "striped"
    devices: tuple[DevNo, ...]
    health: str
    extra: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[DevNo, ...]:
        """The devices of the stripes marked ``D`` (they have had an I/O error)."""
        return tuple(d for d, c in zip(self.devices, self.health) if c == "D")

    @classmethod
    def _read(cls, w: Words) -> StripedStatus:
        count = w.int("number of stripes")
        devices = tuple(w.dev(f"stripe {i} device") for i in range(count))
        w.choice("number of health fields", ("1",))
        health = w.take("health")
        if len(health) != count or set(health) - {"A", "D"}:
            raise w.error("health", f"{health!r} is not one A or D per stripe")
        return cls(devices, health, w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Striped(Params):
    """``<#stripes> <chunk size> [<device> <offset>]...``: data spread over the
    stripes in ``chunk_size``-sector chunks."""

    TYPE = "striped"
    Status = StripedStatus
    chunk_size: int
    stripes: tuple[Stripe, ...]

    def _convert(self) -> None:
        self._set("stripes", tuple(
            Stripe(as_devno(s[0], self.TYPE, f"stripe {i} device"), s[1]) for i, s in enumerate(self.stripes)))

    def _check(self) -> None:
        if not self.stripes:
            raise self._error("stripes", "at least one stripe is needed")
        # dm-stripe.c takes any chunk size from 1 sector (a power of two is
        # not required); the table then needs it aligned to the devices'
        # logical block size, which only the kernel knows.
        if not 1 <= self.chunk_size < 2**32:
            raise self._error("chunk_size", f"must be from 1 to 2**32-1 sectors, got {self.chunk_size}")

    def check_length(self, length: int) -> None:
        n = len(self.stripes)
        if length % n:
            raise self._error("length", f"{length} is not divisible by the {n} stripes")
        if (length // n) % self.chunk_size:
            raise self._error("length", f"{length // n} sectors a stripe is not a multiple of "
                                        f"the chunk size {self.chunk_size}")

    def format(self) -> str:
        legs = "".join(f" {s.device} {s.offset}" for s in self.stripes)
        return f"{len(self.stripes)} {self.chunk_size}{legs}"

    @classmethod
    def _read(cls, w: Words) -> Striped:
        count = w.int("number of stripes")
        chunk = w.int("chunk_size")
        stripes = tuple(Stripe(w.dev(f"stripe {i} device"), w.int(f"stripe {i} offset")) for i in range(count))
        return cls(chunk, stripes)


@register
@dataclasses.dataclass(frozen=True)
class Unstriped(Params):
    """``<#stripes> <chunk size> <stripe #> <device> <offset>``: one stripe
    of a striped layout (e.g. a RAID0 member) read as its own device."""

    TYPE = "unstriped"
    Status = NoStatus
    stripes: int
    chunk_size: int
    stripe: int
    device: DevNo
    offset: int = 0

    def _check(self) -> None:
        if self.stripes < 1:
            raise self._error("stripes", "must be at least 1")
        # Stricter than dm-unstripe.c, which takes stripe == stripes (a
        # stripe that does not exist) and anything with one stripe.
        if self.stripe >= self.stripes:
            raise self._error("stripe", f"{self.stripe} is not below the {self.stripes} stripes")
        if self.chunk_size < 1:
            raise self._error("chunk_size", "must be at least 1 sector")

    def check_length(self, length: int) -> None:
        if length % self.chunk_size:
            raise self._error("length", f"{length} is not a multiple of the chunk size {self.chunk_size}")

    def format(self) -> str:
        return f"{self.stripes} {self.chunk_size} {self.stripe} {self.device} {self.offset}"

    @classmethod
    def _read(cls, w: Words) -> Unstriped:
        return cls(w.int("stripes"), w.int("chunk_size"), w.int("stripe"), w.dev("device"), w.int("offset"))


@dataclasses.dataclass(frozen=True)
class BasicTargetStatus(Status):
    """``<reads> <writes> <read_sectors> <write_sectors>`` since load or reset."""

    TYPE = "basic_target"
    reads: int
    writes: int
    read_sectors: int
    write_sectors: int
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> BasicTargetStatus:
        return cls(w.int("reads"), w.int("writes"), w.int("read_sectors"), w.int("write_sectors"), w.rest())


@register
@dataclasses.dataclass(frozen=True)
class BasicTarget(Linear):
    """pydevmapper's example target (csrc/basic_target.c): linear's
    parameters, counting the I/O it maps."""

    TYPE = "basic_target"
    # mypy types Linear.Status by its value (type[NoStatus]), not as
    # Params declares it (type[Status]).
    Status = BasicTargetStatus  # type: ignore[assignment]

    @staticmethod
    def reset() -> Message:
        """Zero the counters."""
        return Message("reset")

    @staticmethod
    def stats() -> Message:
        """Answered with the counters, in the status's form."""
        return Message("stats")

    @staticmethod
    def event() -> Message:
        """Raise a device-mapper event (for testing event handling)."""
        return Message("event")
