# SPDX-License-Identifier: LGPL-2.1-or-later
"""RAID through md: ``raid`` (raid0/1/4/5/6/10 and their layouts) and the
older ``mirror``.

Formats: the kernel's drivers/md/dm-raid.c, dm-raid1.c, dm-log.c and
Documentation/admin-guide/device-mapper/dm-raid.rst (where those disagree,
the C code wins: raid4's parity is the first disk, the status has eight
fields, the sync action is never ``init``).
"""

from __future__ import annotations

import dataclasses

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.targets._base import (
    Message,
    ParameterError,
    Params,
    Status,
    Words,
    as_devno,
    is_power_of_two,
    register,
)
from pydevmapper.types import DevNo

# name -> parity devices (dm-raid.c raid_types[])
RAID_TYPES = {
    "raid0": 0, "raid1": 0, "raid10": 0, "raid10_near": 0, "raid10_far": 0, "raid10_offset": 0,
    "raid4": 1, "raid5_n": 1, "raid5_ls": 1, "raid5_rs": 1, "raid5_la": 1, "raid5_ra": 1,
    "raid6_zr": 2, "raid6_nr": 2, "raid6_nc": 2, "raid6_n_6": 2, "raid6_ls_6": 2, "raid6_rs_6": 2,
    "raid6_la_6": 2, "raid6_ra_6": 2,
}
MAX_RAID_DEVICES = 253
SYNC_ACTIONS = ("idle", "frozen", "resync", "recover", "check", "repair", "reshape")


def _level(raid_type: str) -> str:
    return "raid10" if raid_type.startswith("raid10") else raid_type[:5]


# optional parameters each level takes (dm-raid.c's ALL_*_FLAGS)
_COMMON = {"sync", "nosync", "rebuild", "daemon_sleep", "min_recovery_rate", "max_recovery_rate",
           "region_size", "delta_disks", "data_offset"}
_ALLOWED = {
    "raid0": {"data_offset"},
    "raid1": _COMMON | {"write_mostly", "max_write_behind"},
    "raid10": _COMMON | {"raid10_copies", "raid10_format", "raid10_use_near_sets"},
    "raid4": _COMMON | {"stripe_cache", "journal_dev", "journal_mode"},
    "raid5": _COMMON | {"stripe_cache", "journal_dev", "journal_mode"},
    "raid6": (_COMMON - {"nosync"}) | {"stripe_cache", "journal_dev", "journal_mode"},
}
# the valued parameters in the order the kernel prints them (raid_status)
_VALUED_ORDER = ("daemon_sleep", "min_recovery_rate", "max_recovery_rate", "write_mostly", "max_write_behind",
                 "stripe_cache", "region_size", "raid10_copies", "raid10_format", "delta_disks", "data_offset",
                 "journal_dev", "journal_mode")
_INT_PARAMS = {"daemon_sleep", "min_recovery_rate", "max_recovery_rate", "max_write_behind", "stripe_cache",
               "region_size", "raid10_copies", "delta_disks", "data_offset"}


class RaidDevice(NamedTuple):
    """One member: its metadata device and data device (None: ``-``)."""

    metadata: DevNo | None
    data: DevNo | None


@dataclasses.dataclass(frozen=True)
class RaidStatus(Status):
    """``<type> <#devices> <health> <synced>/<total> <sync action>
    <mismatches> <data offset> <journal>``.

    ``health`` has one character a device: ``A`` alive and in sync, ``a``
    alive but not in sync, ``D`` dead, ``-`` absent.  The sync ratio is in
    sectors; ``mismatch_count`` counts after a ``check``.  ``data_offset``
    (dm-raid 1.9) and ``journal`` (1.10: ``A``, ``a`` writeback, ``D``,
    ``-`` none) are None on kernels that do not print them.
    """

    TYPE = "raid"
    raid_type: str
    devices: int
    health: str
    sync_current: int
    sync_total: int
    sync_action: str | None = None
    mismatch_count: int | None = None
    data_offset: int | None = None
    journal: str | None = None
    extra: tuple[str, ...] = ()

    @property
    def in_sync(self) -> bool:
        """Fully synced, every device alive and in sync, nothing running."""
        return (self.sync_current == self.sync_total and set(self.health) <= {"A"}
                and self.sync_action in (None, "idle"))

    @classmethod
    def _read(cls, w: Words) -> RaidStatus:
        raid_type, count = w.take("raid_type"), w.int("devices")
        health = w.take("health")
        if set(health) - {"A", "a", "D", "-"}:
            raise w.error("health", f"{health!r} holds a character other than A, a, D or -")
        current, total = w.ratio("sync_current/sync_total")
        action = w.take("sync_action") if w.more() else None
        mismatches = w.int("mismatch_count") if w.more() else None
        offset = w.int("data_offset") if w.more() else None
        journal = w.take("journal") if w.more() else None
        return cls(raid_type, count, health, current, total, action, mismatches, offset, journal, w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Raid(Params):
    """``<raid type> <#params> <chunk size> [<param>...] <#devices> [<meta> <data>]...``.

    ``chunk_size`` in sectors: a power of two of at least 8, and 0 for
    raid1 (which has none; the kernel prints 0 whatever it was given).
    The optional parameters are dm-raid's, None or empty when not given;
    the kernel prints them in a fixed order and, for some, the value in
    effect rather than the one given: ``max_write_behind`` reads back
    halved, ``region_size`` and ``stripe_cache`` as adjusted, and
    ``raid10_use_near_sets`` not at all (though counted) - give the values
    in effect to read back equal.
    """

    TYPE = "raid"
    raid_type: str
    chunk_size: int
    devices: tuple[RaidDevice, ...]
    sync: bool = False
    nosync: bool = False
    rebuild: tuple[int, ...] = ()
    daemon_sleep: int | None = None
    min_recovery_rate: int | None = None
    max_recovery_rate: int | None = None
    write_mostly: tuple[int, ...] = ()
    max_write_behind: int | None = None
    stripe_cache: int | None = None
    region_size: int | None = None
    raid10_copies: int | None = None
    raid10_format: str | None = None
    delta_disks: int | None = None
    data_offset: int | None = None
    journal_dev: DevNo | None = None
    journal_mode: str | None = None
    raid10_use_near_sets: bool = False
    Status = RaidStatus

    def _convert(self) -> None:
        self._set("raid_type", self.raid_type.lower())
        devices: list[RaidDevice] = []
        given: tuple[object, ...] = self.devices  # any of the forms the class takes, until now
        for i, dev in enumerate(given):
            if not isinstance(dev, tuple) or hasattr(dev, "devno") or (
                    len(dev) == 2 and all(type(x) is int for x in dev)):
                dev = (None, dev)  # a bare data device
            meta, data = dev
            devices.append(RaidDevice(None if meta is None else as_devno(meta, self.TYPE, f"device {i} metadata"),
                                      None if data is None else as_devno(data, self.TYPE, f"device {i} data")))
        self._set("devices", tuple(devices))
        self._set("rebuild", tuple(sorted(self.rebuild)))
        self._set("write_mostly", tuple(sorted(self.write_mostly)))

    def _given(self) -> set[str]:
        given = {f for f in ("sync", "nosync", "raid10_use_near_sets") if getattr(self, f)}
        given |= {f for f in ("rebuild", "write_mostly") if getattr(self, f)}
        return given | {f for f in _VALUED_ORDER if f not in ("write_mostly",) and getattr(self, f) is not None}

    def _check(self) -> None:
        if self.raid_type not in RAID_TYPES:
            raise self._error("raid_type", f"unknown raid type {self.raid_type!r}")
        level, n, parity = _level(self.raid_type), len(self.devices), RAID_TYPES[self.raid_type]
        minimum = {"raid6": 4, "raid10": 2}.get(level, parity + 1)
        if not minimum <= n <= MAX_RAID_DEVICES:
            raise self._error("devices", f"{self.raid_type} needs {minimum} to {MAX_RAID_DEVICES} devices, got {n}")
        for i, dev in enumerate(self.devices):
            if dev.metadata is not None and dev.data is None:
                raise self._error("devices", f"device {i} has a metadata device but no data device")
        if level == "raid1":
            if self.chunk_size != 0:
                raise self._error("chunk_size", "raid1 has no chunks: give 0 (the kernel ignores it and prints 0)")
        elif not is_power_of_two(self.chunk_size) or self.chunk_size < 8:
            raise self._error("chunk_size", f"must be a power of two of at least 8 sectors, got {self.chunk_size}")
        refused = self._given() - _ALLOWED[level]
        if refused:
            raise self._error(min(refused), f"{level} does not take {', '.join(sorted(refused))}")
        if self.sync and self.nosync:
            raise self._error("nosync", "sync and nosync are mutually exclusive")
        if (self.sync or self.nosync) and self.rebuild:
            raise self._error("rebuild", "sync/nosync and rebuild are mutually exclusive")
        for field in ("rebuild", "write_mostly"):
            indexes = getattr(self, field)
            if len(set(indexes)) != len(indexes) or any(not 0 <= i < n for i in indexes):
                raise self._error(field, f"indexes must be distinct and below {n}, got {indexes}")
        if self.write_mostly and len(self.write_mostly) >= n:
            raise self._error("write_mostly", "not every raid1 device can be write_mostly")
        for field in ("daemon_sleep", "min_recovery_rate", "max_recovery_rate", "stripe_cache"):
            value = getattr(self, field)
            if value is not None and not 0 <= value < 2**31:
                raise self._error(field, f"must be from 0 to 2**31-1, got {value}")
        # dm-raid stores half of it, at most md's COUNTER_MAX (16383).
        if self.max_write_behind is not None and not 0 <= self.max_write_behind <= 32767:
            raise self._error("max_write_behind", f"must be from 0 to 32767, got {self.max_write_behind}")
        if self.max_recovery_rate and (self.min_recovery_rate or 0) > self.max_recovery_rate:
            raise self._error("min_recovery_rate", "is above max_recovery_rate")
        if self.region_size is not None and self.region_size and not is_power_of_two(self.region_size):
            raise self._error("region_size", f"must be a power of two, got {self.region_size}")
        if self.region_size and level != "raid0" and self.chunk_size and self.region_size < self.chunk_size:
            raise self._error("region_size", "is smaller than the chunk size")
        if self.raid10_copies is not None and not 2 <= self.raid10_copies <= n:
            raise self._error("raid10_copies", f"must be from 2 to the {n} devices, got {self.raid10_copies}")
        if self.raid10_format is not None and self.raid10_format not in ("near", "far", "offset"):
            raise self._error("raid10_format", f"must be near, far or offset, got {self.raid10_format!r}")
        if self.raid10_use_near_sets and self.raid10_format in (None, "near"):
            raise self._error("raid10_use_near_sets", "applies to the far and offset formats only")
        minimal_devs = 4 if level == "raid6" else 2  # dm-raid.c raid_types[].minimal_devs
        if self.delta_disks is not None and not 1 <= abs(self.delta_disks) <= MAX_RAID_DEVICES - minimal_devs:
            raise self._error("delta_disks", f"must be from 1 to {MAX_RAID_DEVICES - minimal_devs} either way")
        if self.data_offset is not None and self.data_offset and (self.data_offset < 32 or self.data_offset % 8):
            raise self._error("data_offset", "must be 0, or at least 32 sectors and a multiple of 8")
        if self.journal_mode is not None:
            if self.journal_dev is None:
                raise self._error("journal_mode", "needs journal_dev")
            if self.journal_mode not in ("writethrough", "writeback"):
                raise self._error("journal_mode", f"must be writethrough or writeback, got {self.journal_mode!r}")

    def format(self) -> str:
        params: list[str] = []
        for flag in ("sync", "nosync"):
            if getattr(self, flag):
                params.append(flag)
        for i in self.rebuild:
            params += ["rebuild", str(i)]
        for field in _VALUED_ORDER:
            if field == "write_mostly":
                for i in self.write_mostly:
                    params += ["write_mostly", str(i)]
                continue
            value = getattr(self, field)
            if value is not None:
                params += [field, str(value)]
        if self.raid10_use_near_sets:
            params.append("raid10_use_near_sets")
        devices = [w for d in self.devices for w in (_dash(d.metadata), _dash(d.data))]
        return " ".join([self.raid_type, str(1 + len(params)), str(self.chunk_size), *params,
                         str(len(self.devices)), *devices])

    @classmethod
    def _read(cls, w: Words) -> Raid:
        raid_type = w.take("raid_type").lower()
        count, chunk = w.int("number of raid parameters"), w.int("chunk_size")
        kw: dict[str, object] = {}
        rebuild: list[int] = []
        write_mostly: list[int] = []
        used = 1
        while used < count:
            key = w.peek()
            if key is None:
                raise w.error("raid parameters", f"{count} announced, {used} present")
            if key.lower() not in _ALLOWED_ALL:
                # raid_status counts raid10_use_near_sets but never prints it.
                if used == count - 1 and key.isdigit():
                    kw["raid10_use_near_sets"] = True
                    break
                raise w.error("raid parameters", f"unknown parameter {key!r}")
            key = w.take("parameter").lower()
            used += 1
            if key in ("sync", "nosync", "raid10_use_near_sets"):
                kw[key] = True
                continue
            used += 1
            if key == "rebuild":
                rebuild.append(w.int("rebuild"))
            elif key == "write_mostly":
                write_mostly.append(w.int("write_mostly"))
            elif key == "journal_dev":
                kw[key] = w.optional_dev("journal_dev")
            elif key == "delta_disks":
                word = w.take("delta_disks")
                if not word.lstrip("+-").isdigit():
                    raise w.error("delta_disks", f"{word!r} is not an integer")
                kw[key] = int(word)
            elif key in _INT_PARAMS:
                kw[key] = w.int(key)
            else:
                kw[key] = w.take(key).lower()
        n = w.int("number of devices")
        devices = tuple(RaidDevice(w.optional_dev(f"device {i} metadata"), w.optional_dev(f"device {i} data"))
                        for i in range(n))
        return cls(raid_type, chunk, devices, rebuild=tuple(rebuild), write_mostly=tuple(write_mostly),
                   **kw)  # type: ignore[arg-type]

    # messages (raid_message); raid0 takes none
    @staticmethod
    def sync_action(action: str) -> Message:
        """``check``, ``repair``, ``resync``, ``recover``, ``idle`` or ``frozen``."""
        if action not in ("check", "repair", "resync", "recover", "idle", "frozen"):
            raise ParameterError("raid", "sync_action", f"{action!r} is not a sync action one can request")
        return Message(action)


_ALLOWED_ALL = {name for names in _ALLOWED.values() for name in names}


def _dash(dev: DevNo | None) -> str:
    return "-" if dev is None else str(dev)


class MirrorLeg(NamedTuple):
    """One leg of a mirror: a device and the sector offset on it."""

    device: DevNo
    offset: int


@dataclasses.dataclass(frozen=True)
class MirrorStatus(Status):
    """``<#legs> <device>... <in sync>/<regions> 1 <health> <log status>``.

    ``health`` one character a leg: ``A`` alive, ``F`` flush, ``D``
    write, ``S`` sync, ``R`` read error, ``U`` unknown.  ``log`` holds the
    log's words (``("core",)`` or ``("disk", "<dev>", "<A|D|F>")``).
    """

    TYPE = "mirror"
    legs: tuple[DevNo, ...]
    in_sync_regions: int
    total_regions: int
    health: str
    log: tuple[str, ...]
    extra: tuple[str, ...] = ()

    @property
    def in_sync(self) -> bool:
        """Every region in sync and every leg alive (``A``)."""
        return self.in_sync_regions == self.total_regions and set(self.health) <= {"A"}

    @classmethod
    def _read(cls, w: Words) -> MirrorStatus:
        n = w.int("number of legs")
        legs = tuple(w.dev(f"leg {i}") for i in range(n))
        synced, total = w.ratio("in_sync_regions/total_regions")
        w.choice("number of health fields", ("1",))
        health = w.take("health")
        log = tuple(w.counted("log status"))
        return cls(legs, synced, total, health, log, w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Mirror(Params):
    """``<core|disk> <#log args> <log args> <#legs> [<device> <offset>]...
    [<#features> <feature>...]``.

    A ``core`` log keeps the dirty regions in memory; with ``log_device``
    it is a ``disk`` log.  ``region_size`` in sectors, a power of two of at
    least 2.  ``sync``: None (default), ``"sync"`` (resync everything) or
    ``"nosync"`` (take the legs as in sync).
    """

    TYPE = "mirror"
    region_size: int
    legs: tuple[MirrorLeg, ...]
    log_device: DevNo | None = None
    sync: str | None = None
    handle_errors: bool = False
    keep_log: bool = False
    Status = MirrorStatus

    def _convert(self) -> None:
        self._set("legs", tuple(MirrorLeg(as_devno(leg[0], self.TYPE, f"leg {i}"), leg[1])
                                for i, leg in enumerate(self.legs)))

    def _check(self) -> None:
        if not 2 <= len(self.legs) <= 9:
            raise self._error("legs", f"a mirror has 2 to 9 legs, got {len(self.legs)}")
        if self.region_size < 2 or not is_power_of_two(self.region_size) or self.region_size >= 2**32:
            raise self._error("region_size", f"must be a power of two of at least 2, got {self.region_size}")
        if self.sync not in (None, "sync", "nosync"):
            raise self._error("sync", f"must be None, 'sync' or 'nosync', got {self.sync!r}")
        if self.keep_log and not self.handle_errors:
            raise self._error("keep_log", "requires handle_errors")

    def check_length(self, length: int) -> None:
        if self.region_size > length:
            raise self._error("region_size", f"{self.region_size} is larger than the target ({length})")

    def format(self) -> str:
        log = [str(self.region_size)] + ([self.sync] if self.sync else [])
        if self.log_device is not None:
            log.insert(0, str(self.log_device))
        words = ["disk" if self.log_device is not None else "core", str(len(log)), *log, str(len(self.legs))]
        words += [w for leg in self.legs for w in (str(leg.device), str(leg.offset))]
        features = [f for f in ("handle_errors", "keep_log") if getattr(self, f)]
        if features:
            words += [str(len(features)), *features]
        return " ".join(words)

    @classmethod
    def _read(cls, w: Words) -> Mirror:
        log_type = w.take("log type")
        log = Words(" ".join(w.counted("log arguments")), cls.TYPE)
        if log_type == "core":
            device = None
        elif log_type == "disk":
            device = log.dev("log_device")
        else:
            raise w.error("log type", f"only core and disk logs are known here, got {log_type!r}")
        region = log.int("region_size")
        sync = log.take("sync") if log.more() else None
        log.end()
        n = w.int("number of legs")
        legs = tuple(MirrorLeg(w.dev(f"leg {i} device"), w.int(f"leg {i} offset")) for i in range(n))
        flags: dict[str, bool] = {}
        for word in w.counted("features"):
            if word not in ("handle_errors", "keep_log"):
                raise w.error("features", f"unknown feature {word!r}")
            flags[word] = True
        return cls(region, legs, device, sync, **flags)
