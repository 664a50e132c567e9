# SPDX-License-Identifier: LGPL-2.1-or-later
"""Thin provisioning: ``thin-pool`` and ``thin``.

Formats: the kernel's drivers/md/dm-thin.c (pool_status, thin_status,
pool_message) and Documentation/admin-guide/device-mapper/thin-provisioning.rst.
"""

from __future__ import annotations

import dataclasses

from pydevmapper.targets._base import (
    Message,
    ParameterError,
    Params,
    Status,
    Words,
    register,
)
from pydevmapper.types import DevNo

# dm-thin.c: DATA_DEV_BLOCK_SIZE_MIN_SECTORS (64 KiB), _MAX_SECTORS (1 GiB).
MIN_DATA_BLOCK_SIZE = 128
MAX_DATA_BLOCK_SIZE = 2097152
# dm-thin-metadata.h: THIN_MAX_DEV_ID, device ids are 24 bits.
MAX_DEV_ID = (1 << 24) - 1

# pool features in the order the kernel prints them (emit_flags)
_POOL_FEATURES = ("skip_block_zeroing", "ignore_discard", "no_discard_passdown", "read_only",
                  "error_if_no_space")


@dataclasses.dataclass(frozen=True)
class ThinPoolStatus(Status):
    """A pool's status.  A failed pool reports only ``Fail`` (``failed``), and
    one whose metadata cannot be read only ``Error`` (``error``): then every
    other field is None.

    ``mode`` is ``rw``, ``ro`` or ``out_of_data_space``; ``discards`` is
    ``discard_passdown``, ``no_discard_passdown`` or ``ignore_discard``;
    ``no_space_policy`` is ``queue_if_no_space`` or ``error_if_no_space``.
    ``held_metadata_root`` is None while no metadata snapshot is held.
    Block counts are in the pool's metadata (4 KiB) and data blocks.
    """

    TYPE = "thin-pool"
    transaction_id: int | None = None
    used_metadata_blocks: int | None = None
    total_metadata_blocks: int | None = None
    used_data_blocks: int | None = None
    total_data_blocks: int | None = None
    held_metadata_root: int | None = None
    mode: str | None = None
    discards: str | None = None
    no_space_policy: str | None = None
    needs_check: bool = False
    metadata_low_watermark: int | None = None
    failed: bool = False
    error: bool = False
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> ThinPoolStatus:
        failure = cls._failure(w)
        if failure is not None:
            return failure
        transaction_id = w.int("transaction_id")
        used_meta, total_meta = w.ratio("used_metadata_blocks/total_metadata_blocks")
        used_data, total_data = w.ratio("used_data_blocks/total_data_blocks")
        held = w.optional_int("held_metadata_root")
        mode = w.choice("mode", ("rw", "ro", "out_of_data_space"))
        discards = w.choice("discards", ("discard_passdown", "no_discard_passdown", "ignore_discard"))
        policy = w.choice("no_space_policy", ("queue_if_no_space", "error_if_no_space"))
        needs_check = w.choice("needs_check", ("needs_check", "-"))
        # The metadata low watermark came with dm-thin 1.20 (Linux 4.19).
        watermark = w.int("metadata_low_watermark") if w.more() else None
        return cls(transaction_id, used_meta, total_meta, used_data, total_data, held, mode, discards, policy,
                   needs_check == "needs_check", watermark, extra=w.rest())


@register
@dataclasses.dataclass(frozen=True)
class ThinPool(Params):
    """``<metadata dev> <data dev> <data block size> <low water mark>
    [<#features> <feature>...]``.

    ``data_block_size`` is in sectors (a multiple of 128, 128 to 2097152);
    ``low_water_mark`` in data blocks: when free data blocks fall to it the
    pool raises an event.  The features are the kernel's, as booleans.
    """

    TYPE = "thin-pool"
    Status = ThinPoolStatus
    metadata_device: DevNo
    data_device: DevNo
    data_block_size: int
    low_water_mark: int
    skip_block_zeroing: bool = False
    ignore_discard: bool = False
    no_discard_passdown: bool = False
    read_only: bool = False
    error_if_no_space: bool = False

    def _check(self) -> None:
        size = self.data_block_size
        if size < MIN_DATA_BLOCK_SIZE or size > MAX_DATA_BLOCK_SIZE or size % MIN_DATA_BLOCK_SIZE:
            raise self._error("data_block_size", f"must be a multiple of {MIN_DATA_BLOCK_SIZE} sectors from "
                                                 f"{MIN_DATA_BLOCK_SIZE} to {MAX_DATA_BLOCK_SIZE}, got {size}")
        if sum(getattr(self, f) for f in _POOL_FEATURES) > 4:
            raise self._error("features", "the kernel takes at most 4 of the 5 features at once")
        if self.metadata_device == self.data_device:
            raise self._error("data_device", "must differ from the metadata device")

    def format(self) -> str:
        features = [f for f in _POOL_FEATURES if getattr(self, f)]
        return (f"{self.metadata_device} {self.data_device} {self.data_block_size} {self.low_water_mark} "
                + " ".join([str(len(features)), *features]))

    @classmethod
    def _read(cls, w: Words) -> ThinPool:
        meta, data = w.dev("metadata_device"), w.dev("data_device")
        size, low = w.int("data_block_size"), w.int("low_water_mark")
        flags: dict[str, bool] = {}
        for word in w.counted("features"):
            if word not in _POOL_FEATURES:
                raise w.error("features", f"unknown feature {word!r}")
            flags[word] = True
        return cls(meta, data, size, low, **flags)

    # messages (pool_message)
    @staticmethod
    def create_thin(dev_id: int) -> Message:
        """Create a new, empty thin device ``dev_id``."""
        return Message("create_thin", _dev_id(dev_id))

    @staticmethod
    def create_snap(dev_id: int, origin_id: int) -> Message:
        """Create thin device ``dev_id`` as a snapshot of ``origin_id``
        (suspend the origin's thin device first if it is active)."""
        return Message("create_snap", _dev_id(dev_id), _dev_id(origin_id, "origin_id"))

    @staticmethod
    def delete(dev_id: int) -> Message:
        """Delete thin device ``dev_id`` and free its blocks."""
        return Message("delete", _dev_id(dev_id))

    @staticmethod
    def set_transaction_id(current: int, new: int) -> Message:
        """Move the pool's transaction id from ``current`` to ``new``."""
        for value, what in ((current, "current"), (new, "new")):
            if type(value) is not int or value < 0:
                raise ParameterError("thin-pool", what, f"must be a non-negative integer, got {value!r}")
        return Message("set_transaction_id", current, new)

    @staticmethod
    def reserve_metadata_snap() -> Message:
        """Take a metadata snapshot (its root shows as ``held_metadata_root``)."""
        return Message("reserve_metadata_snap")

    @staticmethod
    def release_metadata_snap() -> Message:
        """Release the metadata snapshot ``reserve_metadata_snap`` took."""
        return Message("release_metadata_snap")


def _dev_id(value: int, field: str = "dev_id") -> int:
    if type(value) is not int or not 0 <= value <= MAX_DEV_ID:
        raise ParameterError("thin-pool", field, f"must be an integer from 0 to {MAX_DEV_ID}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ThinStatus(Status):
    """``<mapped sectors> <highest mapped sector>``; ``Fail`` on a failed
    pool (``failed``), ``Error`` when the pool's metadata cannot be read
    (``error``), and ``highest_mapped_sector`` None while nothing is
    mapped.  ``-`` alone (no device in the pool's metadata) reads as
    ``mapped_sectors`` None."""

    TYPE = "thin"
    mapped_sectors: int | None = None
    highest_mapped_sector: int | None = None
    failed: bool = False
    error: bool = False
    extra: tuple[str, ...] = ()

    @classmethod
    def parse(cls, status: str) -> ThinStatus:
        # The usual two numbers without the word reader: a pool's volumes
        # are read by the thousand (benchmark row thin_status_1000).
        words = status.split()
        if len(words) == 2:
            mapped, highest = words
            if mapped.isdigit() and mapped.isascii():
                if highest == "-":
                    return cls(int(mapped))
                if highest.isdigit() and highest.isascii():
                    return cls(int(mapped), int(highest))
        return cls._read(Words(status, cls.TYPE))

    @classmethod
    def _read(cls, w: Words) -> ThinStatus:
        failure = cls._failure(w)
        if failure is not None:
            return failure
        first = w.take("mapped_sectors")
        if first == "-":
            return cls(extra=w.rest())
        if not (first.isascii() and first.isdigit()):
            raise w.error("mapped_sectors", f"{first!r} is not a sector count")
        return cls(int(first), w.optional_int("highest_mapped_sector"), extra=w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Thin(Params):
    """``<pool dev> <dev id> [<external origin dev>]``: thin device ``dev_id``
    of the pool; unprovisioned blocks read from ``external_origin``."""

    TYPE = "thin"
    Status = ThinStatus
    pool: DevNo
    dev_id: int
    external_origin: DevNo | None = None

    def _check(self) -> None:
        if not 0 <= self.dev_id <= MAX_DEV_ID:
            raise self._error("dev_id", f"must be from 0 to {MAX_DEV_ID}, got {self.dev_id}")

    def format(self) -> str:
        text = f"{self.pool} {self.dev_id}"
        return f"{text} {self.external_origin}" if self.external_origin is not None else text

    @classmethod
    def _read(cls, w: Words) -> Thin:
        if w.peek() == "Fail":
            raise w.error("", "the pool has failed: the kernel prints Fail instead of the thin device's table")
        pool, dev_id = w.dev("pool"), w.int("dev_id")
        origin = w.dev("external_origin") if w.more() else None
        return cls(pool, dev_id, origin)
