# SPDX-License-Identifier: LGPL-2.1-or-later
"""Caching and change tracking: ``cache`` (policies smq, mq, cleaner,
default), ``writecache`` and ``era``.

Formats: the kernel's drivers/md/dm-cache-target.c, dm-cache-policy-smq.c,
dm-writecache.c, dm-era-target.c and their
``Documentation/admin-guide/device-mapper/*.rst`` (where those disagree, the C code wins).
"""

from __future__ import annotations

import dataclasses

from pydevmapper.targets._base import (
    Message,
    ParameterError,
    Params,
    Status,
    Words,
    is_power_of_two,
    pairs,
    register,
)
from pydevmapper.types import DevNo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

_IO_MODES = ("writeback", "writethrough", "passthrough")
_MQ_TUNABLES = ("random_threshold", "sequential_threshold", "discard_promote_adjustment",
                "read_promote_adjustment", "write_promote_adjustment")
# dm-cache-target.c: DATA_DEV_BLOCK_SIZE_MIN_SECTORS (32 KiB) and _MAX (1 GiB)
MIN_CACHE_BLOCK_SIZE = 64
MAX_CACHE_BLOCK_SIZE = 2097152


@dataclasses.dataclass(frozen=True)
class CacheStatus(Status):
    """A cache's status (``Fail`` alone when the cache failed: ``failed``;
    ``Error`` alone when its metadata cannot be read: ``error``).

    Blocks of metadata are 4 KiB (``metadata_block_size`` is 8 sectors);
    cache blocks are ``cache_block_size`` sectors.  ``features`` always
    holds the I/O mode (``io_mode``); ``core_args`` and ``policy_args`` are
    the key/value pairs the kernel reports.
    """

    TYPE = "cache"
    metadata_block_size: int | None = None
    used_metadata_blocks: int | None = None
    total_metadata_blocks: int | None = None
    cache_block_size: int | None = None
    used_cache_blocks: int | None = None
    total_cache_blocks: int | None = None
    read_hits: int | None = None
    read_misses: int | None = None
    write_hits: int | None = None
    write_misses: int | None = None
    demotions: int | None = None
    promotions: int | None = None
    dirty: int | None = None
    features: tuple[str, ...] = ()
    core_args: tuple[tuple[str, str], ...] = ()
    policy: str | None = None
    policy_args: tuple[tuple[str, str], ...] = ()
    metadata_mode: str | None = None
    needs_check: bool = False
    failed: bool = False
    error: bool = False
    extra: tuple[str, ...] = ()

    @property
    def io_mode(self) -> str | None:
        """``writeback``, ``writethrough`` or ``passthrough``, from ``features``; None if none is
        listed."""
        return next((f for f in self.features if f in _IO_MODES), None)

    @property
    def migration_threshold(self) -> int | None:
        """The ``migration_threshold`` core argument, in sectors; None if not reported."""
        value = dict(self.core_args).get("migration_threshold")
        return int(value) if value is not None else None

    @classmethod
    def _read(cls, w: Words) -> CacheStatus:
        failure = cls._failure(w)
        if failure is not None:
            return failure
        meta_block = w.int("metadata_block_size")
        used_meta, total_meta = w.ratio("used_metadata_blocks/total_metadata_blocks")
        block = w.int("cache_block_size")
        used, total = w.ratio("used_cache_blocks/total_cache_blocks")
        read_hits, read_misses, write_hits, write_misses, demotions, promotions, dirty = (
            w.int(f) for f in ("read_hits", "read_misses", "write_hits", "write_misses",
                               "demotions", "promotions", "dirty"))
        features = tuple(w.counted("features"))
        core = tuple(pairs(w.counted("core_args"), cls.TYPE, "core_args"))
        policy = w.take("policy")
        policy_args = tuple(pairs(w.counted("policy_args"), cls.TYPE, "policy_args"))
        mode = w.choice("metadata_mode", ("rw", "ro"))
        check = w.choice("needs_check", ("needs_check", "-"))
        return cls(meta_block, used_meta, total_meta, block, used, total, read_hits, read_misses, write_hits,
                   write_misses, demotions, promotions, dirty, features, core, policy, policy_args, mode,
                   check == "needs_check", extra=w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Cache(Params):
    """``<metadata dev> <cache dev> <origin dev> <block size> <#features>
    <feature>... <policy> <#policy args> [<key> <value>]...``.

    ``io_mode`` None leaves the kernel's default (writeback) and prints
    nothing.  ``policy_args`` are key/value pairs, ``migration_threshold``
    (sectors) among them.  The kernel prints the table back exactly as
    given; ``format()`` writes features in a fixed order, so a table built
    here reads back equal.
    """

    TYPE = "cache"
    Status = CacheStatus
    metadata_device: DevNo
    cache_device: DevNo
    origin_device: DevNo
    block_size: int
    io_mode: str | None = None
    metadata2: bool = False
    no_discard_passdown: bool = False
    policy: str = "smq"
    policy_args: tuple[tuple[str, str], ...] = ()

    def _convert(self) -> None:
        given: Any = self.policy_args  # a dict or pairs, until now (unnarrowed: see as_devno)
        args = given.items() if isinstance(self.policy_args, dict) else given
        self._set("policy_args", tuple((str(k), str(v)) for k, v in args))

    def _check(self) -> None:
        size = self.block_size
        if not MIN_CACHE_BLOCK_SIZE <= size <= MAX_CACHE_BLOCK_SIZE or size % MIN_CACHE_BLOCK_SIZE:
            raise self._error("block_size", f"must be a multiple of {MIN_CACHE_BLOCK_SIZE} sectors from "
                                            f"{MIN_CACHE_BLOCK_SIZE} to {MAX_CACHE_BLOCK_SIZE}, got {size}")
        if self.io_mode is not None and self.io_mode not in _IO_MODES:
            raise self._error("io_mode", f"must be one of {', '.join(_IO_MODES)}, got {self.io_mode!r}")
        if not self.policy or any(c.isspace() for c in self.policy):
            raise self._error("policy", f"{self.policy!r} is not a policy name")
        if len(self.policy_args) * 2 > 1024:
            raise self._error("policy_args", "at most 512 pairs")
        for key, value in self.policy_args:
            if not key or not value or any(c.isspace() for c in key + value):
                raise self._error("policy_args", f"{key!r} {value!r} is not a key and a value")
            if key == "migration_threshold" and not (value.isascii() and value.isdigit()):
                raise self._error("policy_args", f"migration_threshold {value!r} is not a sector count")
            # smq, cleaner and default take no tunables; mq (an alias of smq)
            # takes its old ones, numbers, and ignores them.
            if key != "migration_threshold" and self.policy in ("smq", "cleaner", "default"):
                raise self._error("policy_args", f"policy {self.policy} takes no {key!r} (only migration_threshold)")
            if self.policy == "mq" and key != "migration_threshold" and (
                    key not in _MQ_TUNABLES or not (value.isascii() and value.isdigit())):
                raise self._error("policy_args", f"mq takes {', '.join(_MQ_TUNABLES)} (numbers), not {key} {value}")

    def format(self) -> str:
        features = (["metadata2"] if self.metadata2 else []) + ([self.io_mode] if self.io_mode else []) + (
            ["no_discard_passdown"] if self.no_discard_passdown else [])
        args = [w for pair in self.policy_args for w in pair]
        return " ".join([str(self.metadata_device), str(self.cache_device), str(self.origin_device),
                         str(self.block_size), str(len(features)), *features, self.policy,
                         str(len(args)), *args])

    @classmethod
    def _read(cls, w: Words) -> Cache:
        devices = (w.dev("metadata_device"), w.dev("cache_device"), w.dev("origin_device"))
        block = w.int("block_size")
        kw: dict[str, object] = {}
        for word in w.counted("features"):
            if word in _IO_MODES:
                if "io_mode" in kw:
                    raise w.error("features", "more than one I/O mode")
                kw["io_mode"] = word
            elif word in ("metadata2", "no_discard_passdown"):
                kw[word] = True
            else:
                raise w.error("features", f"unknown feature {word!r}")
        policy = w.take("policy")
        args = tuple(pairs(w.counted("policy_args"), cls.TYPE, "policy_args"))
        return cls(*devices, block, policy=policy, policy_args=args, **kw)  # type: ignore[arg-type]

    @staticmethod
    def set_config(key: str, value: int | str) -> Message:
        """Set a core or policy tunable (``migration_threshold``)."""
        return Message(_word(key, "key"), _word(str(value), "value"))

    @staticmethod
    def invalidate_cblocks(*ranges: int | tuple[int, int]) -> Message:
        """Drop cache blocks (passthrough mode only): block numbers or
        ``(begin, end)`` ranges, ``end`` excluded."""
        words: list[str] = []
        for r in ranges:
            if isinstance(r, tuple):
                begin, end = r
                if not 0 <= begin < end:
                    raise ParameterError("cache", "invalidate_cblocks", f"empty or reversed range {r}")
                words.append(f"{begin}-{end}")
            elif r >= 0:
                words.append(str(r))
            else:
                raise ParameterError("cache", "invalidate_cblocks", f"{r} is not a block number")
        return Message("invalidate_cblocks", *words)


def _word(text: str, field: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ParameterError("cache", field, f"{text!r} is not one word")
    return text


@dataclasses.dataclass(frozen=True)
class EraStatus(Status):
    """``<metadata block size> <used>/<total metadata blocks> <current era>
    <held metadata root|->``, or ``Error`` alone (``error``, the rest None)."""

    TYPE = "era"
    metadata_block_size: int | None = None
    used_metadata_blocks: int | None = None
    total_metadata_blocks: int | None = None
    current_era: int | None = None
    held_metadata_root: int | None = None
    error: bool = False
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> EraStatus:
        if w.peek() == "Error":
            w.take("Error")
            return cls(error=True, extra=w.rest())
        meta_block = w.int("metadata_block_size")
        used, total = w.ratio("used_metadata_blocks/total_metadata_blocks")
        era = w.int("current_era")
        return cls(meta_block, used, total, era, w.optional_int("held_metadata_root"), extra=w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Era(Params):
    """``<metadata dev> <origin dev> <block size>``: tracks which blocks of
    the origin were written in which era (``block_size`` a multiple of 8)."""

    TYPE = "era"
    Status = EraStatus
    metadata_device: DevNo
    origin_device: DevNo
    block_size: int

    def _check(self) -> None:
        if self.block_size <= 0 or self.block_size % 8 or self.block_size >= 2**32:
            raise self._error("block_size", f"must be a positive multiple of 8 sectors, got {self.block_size}")

    def format(self) -> str:
        return f"{self.metadata_device} {self.origin_device} {self.block_size}"

    @classmethod
    def _read(cls, w: Words) -> Era:
        return cls(w.dev("metadata_device"), w.dev("origin_device"), w.int("block_size"))

    @staticmethod
    def checkpoint() -> Message:
        """Start a new era."""
        return Message("checkpoint")

    @staticmethod
    def take_metadata_snap() -> Message:
        """Take a snapshot of the metadata, for a program to read while the target runs."""
        return Message("take_metadata_snap")

    @staticmethod
    def drop_metadata_snap() -> Message:
        """Drop the metadata snapshot ``take_metadata_snap`` took."""
        return Message("drop_metadata_snap")


_WC_COUNTERS = ("reads", "read_hits", "writes", "write_hits_uncommitted", "write_hits_committed",
                "writes_around", "writes_allocate", "writes_blocked_on_freelist", "flushes", "discards")


@dataclasses.dataclass(frozen=True)
class WritecacheStatus(Status):
    """``<error> <total blocks> <free blocks> <blocks under writeback>`` and,
    from writecache 1.6 (Linux 5.15), ten counters (None before)."""

    TYPE = "writecache"
    error: bool
    total_blocks: int
    free_blocks: int
    writeback_blocks: int
    reads: int | None = None
    read_hits: int | None = None
    writes: int | None = None
    write_hits_uncommitted: int | None = None
    write_hits_committed: int | None = None
    writes_around: int | None = None
    writes_allocate: int | None = None
    writes_blocked_on_freelist: int | None = None
    flushes: int | None = None
    discards: int | None = None
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> WritecacheStatus:
        # The kernel prints writecache_has_error() with %ld: 0 or 1.
        error = w.int("error")
        total, free, writeback = w.int("total_blocks"), w.int("free_blocks"), w.int("writeback_blocks")
        # The counters came with 5.15; a word there that is no count is
        # something newer still, kept in extra.
        counters = {f: w.int(f) for f in _WC_COUNTERS} if (w.peek() or "").isdigit() else {}
        return cls(error != 0, total, free, writeback, **counters, extra=w.rest())


# valued options in the order the kernel prints them, with their limits
_WC_VALUED = (("start_sector", 2**64 - 1), ("high_watermark", 100), ("low_watermark", 100),
              ("writeback_jobs", 2**32 - 1), ("autocommit_blocks", 2**32 - 1),
              ("autocommit_time", 3_600_000), ("max_age", 86_400_000))


@register
@dataclasses.dataclass(frozen=True)
class Writecache(Params):
    """``<p|s> <origin dev> <cache dev> <block size> <#options> <option>...``.

    ``mode`` ``s`` caches on a block device (SSD), ``p`` on persistent
    memory.  ``block_size`` is in **bytes** (a power of two, 512 to 4096).
    Options left None are not given (the kernel's defaults apply; it
    prints only those given, in a fixed order).  ``fua`` (True ``fua``,
    False ``nofua``) is for ``p`` only, ``pause_writeback`` for ``s`` only.
    """

    TYPE = "writecache"
    mode: str
    origin_device: DevNo
    cache_device: DevNo
    block_size: int = 4096
    start_sector: int | None = None
    high_watermark: int | None = None
    low_watermark: int | None = None
    writeback_jobs: int | None = None
    autocommit_blocks: int | None = None
    autocommit_time: int | None = None
    max_age: int | None = None
    cleaner: bool = False
    fua: bool | None = None
    metadata_only: bool = False
    pause_writeback: int | None = None
    Status = WritecacheStatus

    def _check(self) -> None:
        if self.mode not in ("p", "s"):
            raise self._error("mode", f"must be 'p' (persistent memory) or 's' (SSD), got {self.mode!r}")
        if not (is_power_of_two(self.block_size) and 512 <= self.block_size <= 4096):
            raise self._error("block_size", f"must be a power of two from 512 to 4096 bytes, got {self.block_size}")
        for field, limit in _WC_VALUED:
            value = getattr(self, field)
            if value is not None and not 0 <= value <= limit:
                raise self._error(field, f"must be from 0 to {limit}, got {value}")
        high = 50 if self.high_watermark is None else self.high_watermark
        low = 45 if self.low_watermark is None else self.low_watermark
        if high < low:
            raise self._error("low_watermark", f"{low}% is above the high watermark {high}% "
                                               "(unset, they are 50 and 45)")
        if self.fua is not None and self.mode == "s":
            raise self._error("fua", "applies to persistent memory (mode 'p') only")
        if self.pause_writeback is not None:
            if self.mode == "p":
                raise self._error("pause_writeback", "applies to SSD mode ('s') only")
            if not 0 <= self.pause_writeback <= 60000:
                raise self._error("pause_writeback", f"must be from 0 to 60000 ms, got {self.pause_writeback}")

    def format(self) -> str:
        options: list[str] = []
        for field, _ in _WC_VALUED:
            value = getattr(self, field)
            if value is not None:
                options += [field, str(value)]
        if self.cleaner:
            options.append("cleaner")
        if self.fua is not None:
            options.append("fua" if self.fua else "nofua")
        if self.metadata_only:
            options.append("metadata_only")
        if self.pause_writeback is not None:
            options += ["pause_writeback", str(self.pause_writeback)]
        return " ".join([self.mode, str(self.origin_device), str(self.cache_device), str(self.block_size),
                         str(len(options)), *options])

    @classmethod
    def _read(cls, w: Words) -> Writecache:
        mode = w.take("mode").lower()
        origin, cache, block = w.dev("origin_device"), w.dev("cache_device"), w.int("block_size")
        args = Words(" ".join(w.counted("options")), cls.TYPE)
        kw: dict[str, object] = {}
        valued = dict(_WC_VALUED)
        while args.more():
            name = args.take("option")
            if name in valued or name == "pause_writeback":
                kw[name] = args.int(name)
            elif name in ("cleaner", "metadata_only"):
                kw[name] = True
            elif name in ("fua", "nofua"):
                kw["fua"] = name == "fua"
            else:
                raise args.error("options", f"unknown option {name!r}")
        return cls(mode, origin, cache, block, **kw)  # type: ignore[arg-type]

    @staticmethod
    def flush() -> Message:
        """Commit and write back everything, and wait for it."""
        return Message("flush")

    @staticmethod
    def flush_on_suspend() -> Message:
        """Write back everything on the next suspend (before removing the cache device)."""
        return Message("flush_on_suspend")

    @staticmethod
    def start_cleaner() -> Message:
        """Write back everything and keep the cache empty (the ``cleaner`` message)."""
        return Message("cleaner")

    @staticmethod
    def clear_stats() -> Message:
        """Reset the statistics counters the status reports (Linux 5.15
        and later, which have them)."""
        return Message("clear_stats")
