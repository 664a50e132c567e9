# SPDX-License-Identifier: LGPL-2.1-or-later
"""Snapshots of a whole device: ``snapshot-origin``, ``snapshot`` and
``snapshot-merge``.

Formats: the kernel's drivers/md/dm-snap.c, dm-exception-store.c,
dm-snap-persistent.c and Documentation/admin-guide/device-mapper/snapshot.rst.
"""

from __future__ import annotations

import dataclasses

from pydevmapper.targets._base import (
    NoStatus,
    Params,
    Status,
    Words,
    is_power_of_two,
    register,
)
from pydevmapper.types import DevNo

# dm-exception-store.c: a chunk is at most INT_MAX bytes.
MAX_CHUNK_SIZE = 1 << 22 - 1  # the largest power of two <= INT_MAX >> 9
_STORES = ("P", "PO", "N")


@register
@dataclasses.dataclass(frozen=True)
class SnapshotOrigin(Params):
    """``<origin device>``: the origin, whose writes first copy the old data
    to every snapshot's COW device."""

    TYPE = "snapshot-origin"
    Status = NoStatus
    device: DevNo

    def format(self) -> str:
        return str(self.device)

    @classmethod
    def _read(cls, w: Words) -> SnapshotOrigin:
        return cls(w.dev("device"))


@dataclasses.dataclass(frozen=True)
class SnapshotStatus(Status):
    """``<allocated>/<total> <metadata>`` in sectors, or a state word:
    ``state`` is ``valid``, ``Invalid`` (the COW overflowed or failed),
    ``Overflow`` (full, with the ``PO`` store), ``Merge failed`` or
    ``Unknown``; the sector counts are None unless ``valid``."""

    TYPE = "snapshot"
    state: str
    allocated_sectors: int | None = None
    total_sectors: int | None = None
    metadata_sectors: int | None = None
    extra: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """``state`` is ``valid``: the snapshot works and its sector counts are set."""
        return self.state == "valid"

    @classmethod
    def _read(cls, w: Words) -> SnapshotStatus:
        first = w.peek()
        if first in ("Invalid", "Overflow", "Unknown"):
            return cls(w.take("state"), extra=w.rest())
        if first == "Merge" and w.words[w.pos + 1:w.pos + 2] == ["failed"]:
            w.take("state")
            w.take("state")
            return cls("Merge failed", extra=w.rest())
        allocated, total = w.ratio("allocated_sectors/total_sectors")
        return cls("valid", allocated, total, w.int("metadata_sectors"), w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Snapshot(Params):
    """``<origin> <COW device> <P|PO|N> <chunk size> [<#features> <feature>...]``.

    ``store``: ``P`` persistent, ``PO`` persistent and reporting
    ``Overflow`` instead of invalidating when full, ``N`` transient.
    ``chunk_size`` in sectors, a power of two (0 with a persistent store:
    take it from the existing COW header).
    """

    TYPE = "snapshot"
    Status = SnapshotStatus
    origin: DevNo
    cow: DevNo
    store: str = "P"
    chunk_size: int = 8
    discard_zeroes_cow: bool = False
    discard_passdown_origin: bool = False

    def _check(self) -> None:
        if self.store not in _STORES:
            raise self._error("store", f"must be one of {', '.join(_STORES)}, got {self.store!r}")
        if self.chunk_size == 0:
            if self.store == "N":
                raise self._error("chunk_size", "a transient store needs a chunk size")
        elif not is_power_of_two(self.chunk_size) or self.chunk_size > MAX_CHUNK_SIZE:
            raise self._error("chunk_size", f"must be a power of two up to {MAX_CHUNK_SIZE}, got {self.chunk_size}")
        if self.origin == self.cow:
            raise self._error("cow", "the COW device cannot be the origin")
        if self.discard_passdown_origin and not self.discard_zeroes_cow:
            raise self._error("discard_passdown_origin", "depends on discard_zeroes_cow")

    def format(self) -> str:
        text = f"{self.origin} {self.cow} {self.store} {self.chunk_size}"
        features = [f for f in ("discard_zeroes_cow", "discard_passdown_origin") if getattr(self, f)]
        return " ".join([text, str(len(features)), *features]) if features else text

    @classmethod
    def _read(cls, w: Words) -> Snapshot:
        origin, cow = w.dev("origin"), w.dev("cow")
        store, chunk = w.take("store").upper(), w.int("chunk_size")
        flags: dict[str, bool] = {}
        for word in w.counted("features"):
            if word.lower() not in ("discard_zeroes_cow", "discard_passdown_origin"):
                raise w.error("features", f"unknown feature {word!r}")
            flags[word.lower()] = True
        return cls(origin, cow, store, chunk, **flags)


@register
@dataclasses.dataclass(frozen=True)
class SnapshotMerge(Snapshot):
    """A snapshot merging back into its origin: ``snapshot``'s parameters
    (with a persistent store); loaded in the origin's place."""

    TYPE = "snapshot-merge"
    Status = SnapshotStatus

    def _check(self) -> None:
        super()._check()
        if self.store == "N":
            raise self._error("store", "a transient store cannot be merged")
