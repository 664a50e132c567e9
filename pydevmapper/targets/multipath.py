# SPDX-License-Identifier: LGPL-2.1-or-later
"""Several paths to one place: ``multipath`` (path selectors round-robin,
queue-length, service-time), ``switch``, and ``log-writes`` (which records
every write on a second device).

Formats: the kernel's drivers/md/dm-mpath.c, dm-ps-*.c, dm-switch.c,
dm-log-writes.c and their Documentation/admin-guide/device-mapper/*.rst.
"""

from __future__ import annotations

import dataclasses

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.targets._base import (
    Message,
    NoStatus,
    ParameterError,
    Params,
    Status,
    Words,
    as_devno,
    register,
)
from pydevmapper.types import DevNo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# per-path argument words each selector prints back (its table_args), and
# their defaults: repeat_count (always 1 now), relative_throughput
SELECTOR_PATH_ARGS = {"round-robin": ("1",), "queue-length": ("1",), "service-time": ("1", "1")}
_QUEUE_MODES = ("bio", "rq", "mq")


class MultipathPath(NamedTuple):
    """A path and its selector arguments (round-robin and queue-length:
    ``(repeat_count,)``; service-time: ``(repeat_count, relative_throughput)``)."""

    device: DevNo
    args: tuple[str, ...] = ()


class PathGroup(NamedTuple):
    """A priority group: its paths, path selector and the selector's own
    arguments (historical-service-time takes some; the others none)."""

    paths: tuple[MultipathPath, ...]
    selector: str = "round-robin"
    selector_args: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PathStatus(Status):
    """One path in a multipath status: ``active`` (``A``) or failed (``F``),
    its failure count and the selector's words (queue-length: in-flight
    I/Os; service-time: in-flight size and relative throughput)."""

    TYPE = "multipath"
    device: DevNo
    active: bool
    fail_count: int
    selector_info: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class GroupStatus(Status):
    """A priority group: ``state`` ``A`` active, ``E`` enabled, ``D`` disabled."""

    TYPE = "multipath"
    state: str
    paths: tuple[PathStatus, ...]
    selector_status: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class MultipathStatus(Status):
    """``<#features> <queue io> <pg_init count> <#hw args> <hw args>
    <#groups> <next group> <group>...``.

    ``queueing`` is true while I/O is being queued (the kernel's
    MPATHF_QUEUE_IO bit, e.g. no path left with queue_if_no_path).
    """

    TYPE = "multipath"
    queueing: bool
    pg_init_count: int
    hw_handler_status: tuple[str, ...]
    next_group: int
    groups: tuple[GroupStatus, ...]
    extra: tuple[str, ...] = ()

    @property
    def failed_paths(self) -> tuple[DevNo, ...]:
        """The devices of the paths not active, over every group."""
        return tuple(p.device for g in self.groups for p in g.paths if not p.active)

    @classmethod
    def _read(cls, w: Words) -> MultipathStatus:
        features = w.counted("features")
        if len(features) < 2 or not all(f.isdigit() for f in features[:2]):
            raise w.error("features", f"expected <queue io> <pg_init count>, got {features}")
        hw = tuple(w.counted("hw handler status"))
        count, next_group = w.int("number of groups"), w.int("next group")
        groups: list[GroupStatus] = []
        for g in range(count):
            state = w.choice(f"group {g + 1} state", ("A", "E", "D"))
            selector = tuple(w.counted(f"group {g + 1} selector status"))
            n_paths, n_info = w.int(f"group {g + 1} paths"), w.int(f"group {g + 1} selector info count")
            paths: list[PathStatus] = []
            for p in range(n_paths):
                dev, state_p = w.dev(f"path {p} device"), w.choice(f"path {p} state", ("A", "F"))
                fails = w.int(f"path {p} fail count")
                info = tuple(w.take(f"path {p} selector info") for _ in range(n_info))
                paths.append(PathStatus(dev, state_p == "A", fails, info))
            groups.append(GroupStatus(state, tuple(paths), selector))
        return cls(features[0] != "0", int(features[1]), hw, next_group, tuple(groups), w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Multipath(Params):
    """``<#features> <feature>... <#hw args> [<hw handler> <arg>...]
    <#groups> <initial group> <group>...``, each group ``<selector> 0
    <#paths> <#path args> [<device> <arg>...]...``.

    Per-path arguments are filled with the selector's defaults (the kernel
    prints them all back).  The kernel prints ``queue_if_no_path`` as it is
    now (messages change it) and the current group as the initial one; a
    hardware handler's arguments are not printed back, and neither is
    ``queue_mode`` unless it is ``bio`` (then with
    ``retain_attached_hw_handler``, which bio mode implies).
    """

    TYPE = "multipath"
    groups: tuple[PathGroup, ...]
    initial_group: int = 1
    queue_if_no_path: bool = False
    pg_init_retries: int | None = None
    pg_init_delay_msecs: int | None = None
    retain_attached_hw_handler: bool = False
    queue_mode: str | None = None
    hw_handler: str | None = None
    Status = MultipathStatus

    def _convert(self) -> None:
        groups: list[PathGroup] = []
        # Any of the forms the class takes, until now.
        given: tuple[PathGroup | tuple[Any, ...] | Sequence[Any], ...] = self.groups
        for g, group in enumerate(given):
            # A PathGroup, (paths, selector[, selector_args]) or just the
            # paths (round-robin).
            selector_args: tuple[str, ...] = ()
            if isinstance(group, tuple) and len(group) in (2, 3) and _is_selector(group[1]):
                paths, selector, *more = group
                selector_args = tuple(str(a) for a in more[0]) if more else ()
            else:
                paths, selector = group, "round-robin"
            defaults = SELECTOR_PATH_ARGS.get(selector, ())
            fixed: list[MultipathPath] = []
            path: MultipathPath | tuple[Any, ...] | DevNo | str | object
            for p, path in enumerate(paths):
                # A MultipathPath, (device, args) or just the device.  Until
                # as_devno below, the MultipathPath holds the device as given.
                if isinstance(path, tuple) and not all(type(x) is int for x in path):
                    path = MultipathPath(*path)  # pyright: ignore[reportArgumentType]
                else:
                    path = MultipathPath(path)  # type: ignore[arg-type]
                args = tuple(str(a) for a in path.args)
                fixed.append(MultipathPath(as_devno(path.device, self.TYPE, f"group {g + 1} path {p}"),
                                           args + defaults[len(args):]))
            groups.append(PathGroup(tuple(fixed), selector, selector_args))
        self._set("groups", tuple(groups))
        if self.queue_mode in ("rq", "mq"):
            self._set("queue_mode", None)  # request-based, the default (the kernel prints nothing)
        if self.queue_mode == "bio":
            self._set("retain_attached_hw_handler", True)

    def _check(self) -> None:
        n = len(self.groups)
        if n > 1024:
            raise self._error("groups", "at most 1024 groups")
        if (n == 0) != (self.initial_group == 0) or self.initial_group > n:
            raise self._error("initial_group", f"must be from 1 to the {n} groups (0 with no group)")
        for g, group in enumerate(self.groups):
            if not 1 <= len(group.paths) <= 1024:
                raise self._error("groups", f"group {g + 1} needs 1 to 1024 paths")
            widths = {len(p.args) for p in group.paths}
            if len(widths) > 1:
                raise self._error("groups", f"the paths of group {g + 1} have different numbers of arguments")
            defaults = SELECTOR_PATH_ARGS.get(group.selector)
            for p in group.paths:
                if defaults is not None and len(p.args) > len(defaults):
                    raise self._error("groups", f"{group.selector} takes at most {len(defaults)} path arguments")
                if defaults is not None and p.args and p.args[0] != "1":
                    raise self._error("groups", "repeat_count other than 1 is deprecated (the kernel uses 1)")
                if group.selector == "service-time" and len(p.args) > 1 and not (
                        p.args[1].isdigit() and int(p.args[1]) <= 100):
                    raise self._error("groups", f"relative_throughput must be from 0 to 100, got {p.args[1]}")
        if self.pg_init_retries is not None and not 1 <= self.pg_init_retries <= 50:
            raise self._error("pg_init_retries", f"must be from 1 to 50, got {self.pg_init_retries}")
        if self.pg_init_delay_msecs is not None and not 0 <= self.pg_init_delay_msecs <= 60000:
            raise self._error("pg_init_delay_msecs", f"must be from 0 to 60000, got {self.pg_init_delay_msecs}")
        if self.queue_mode is not None and self.queue_mode not in _QUEUE_MODES:
            raise self._error("queue_mode", f"must be one of {', '.join(_QUEUE_MODES)}")
        if self.queue_mode == "bio" and self.hw_handler:
            raise self._error("hw_handler", "bio mode takes no hardware handler (the kernel drops it)")

    def format(self) -> str:
        features: list[str] = []
        if self.queue_if_no_path:
            features.append("queue_if_no_path")
        if self.pg_init_retries is not None:
            features += ["pg_init_retries", str(self.pg_init_retries)]
        if self.pg_init_delay_msecs is not None:
            features += ["pg_init_delay_msecs", str(self.pg_init_delay_msecs)]
        if self.retain_attached_hw_handler:
            features.append("retain_attached_hw_handler")
        if self.queue_mode is not None:
            features += ["queue_mode", self.queue_mode]
        words = [str(len(features)), *features]
        words += ["1", self.hw_handler] if self.hw_handler else ["0"]
        words += [str(len(self.groups)), str(self.initial_group)]
        for group in self.groups:
            width = len(group.paths[0].args)
            words += [group.selector, str(len(group.selector_args)), *group.selector_args,
                      str(len(group.paths)), str(width)]
            for path in group.paths:
                words += [str(path.device), *path.args]
        return " ".join(words)

    @classmethod
    def _read(cls, w: Words) -> Multipath:
        kw: dict[str, object] = {}
        features = Words(" ".join(w.counted("features")), cls.TYPE)
        while features.more():
            name = features.take("feature").lower()
            if name in ("queue_if_no_path", "retain_attached_hw_handler"):
                kw[name] = True
            elif name in ("pg_init_retries", "pg_init_delay_msecs"):
                kw[name] = features.int(name)
            elif name == "queue_mode":
                kw[name] = features.take(name).lower()
            else:
                raise features.error("features", f"unknown feature {name!r}")
        hw = w.counted("hw handler")
        if hw:
            kw["hw_handler"] = hw[0]  # its arguments are not printed back
        count, initial = w.int("number of groups"), w.int("initial group")
        groups: list[PathGroup] = []
        for g in range(count):
            selector = w.take(f"group {g + 1} selector")
            selector_args = tuple(w.counted(f"group {g + 1} selector arguments"))
            n_paths, width = w.int(f"group {g + 1} paths"), w.int(f"group {g + 1} path arguments")
            paths = tuple(MultipathPath(w.dev(f"group {g + 1} path {p}"), tuple(w.take("path argument")
                                                                               for _ in range(width)))
                          for p in range(n_paths))
            groups.append(PathGroup(paths, selector, selector_args))
        return cls(tuple(groups), initial, **kw)  # type: ignore[arg-type]

    # messages (multipath_message)
    @staticmethod
    def fail_path(device: object) -> Message:
        """Mark path ``device`` failed."""
        return Message("fail_path", as_devno(device, "multipath", "path"))

    @staticmethod
    def reinstate_path(device: object) -> Message:
        """Mark the failed path ``device`` usable again."""
        return Message("reinstate_path", as_devno(device, "multipath", "path"))

    @staticmethod
    def switch_group(group: int) -> Message:
        """Use group ``group`` (from 1) next; enables every group."""
        return Message("switch_group", _group(group))

    @staticmethod
    def disable_group(group: int) -> Message:
        """Bypass group ``group`` (from 1): it is used only when no other group can take I/O."""
        return Message("disable_group", _group(group))

    @staticmethod
    def enable_group(group: int) -> Message:
        """Stop bypassing group ``group`` (from 1)."""
        return Message("enable_group", _group(group))

    @staticmethod
    def no_path_policy(queue: bool) -> Message:
        """``queue_if_no_path`` (True) or ``fail_if_no_path`` (False), now."""
        return Message("queue_if_no_path" if queue else "fail_if_no_path")


def _is_selector(word: object) -> bool:
    return isinstance(word, str) and ":" not in word and not word.startswith("/")


def _group(n: int) -> int:
    if type(n) is not int or n < 1:
        raise ParameterError("multipath", "group", f"groups are numbered from 1, got {n!r}")
    return n


class SwitchPath(NamedTuple):
    """One path of a switch target: a device and the sector offset on it."""

    device: DevNo
    offset: int


@register
@dataclasses.dataclass(frozen=True)
class Switch(Params):
    """``<#paths> <region size> 0 [<device> <offset>]...``: the device split
    into ``region_size``-sector regions, each mapped to a path (round-robin
    after a load; ``set_region_mappings`` changes it)."""

    TYPE = "switch"
    Status = NoStatus
    region_size: int
    paths: tuple[SwitchPath, ...]

    def _convert(self) -> None:
        self._set("paths", tuple(SwitchPath(as_devno(p[0], self.TYPE, f"path {i}"), p[1])
                                 for i, p in enumerate(self.paths)))

    def _check(self) -> None:
        if not self.paths:
            raise self._error("paths", "at least one path is needed")
        if not 1 <= self.region_size < 2**32:
            raise self._error("region_size", f"must be from 1 to 2**32-1, got {self.region_size}")

    def format(self) -> str:
        return " ".join([str(len(self.paths)), str(self.region_size), "0",
                         *(w for p in self.paths for w in (str(p.device), str(p.offset)))])

    @classmethod
    def _read(cls, w: Words) -> Switch:
        n, region = w.int("number of paths"), w.int("region_size")
        if w.int("number of optional arguments") != 0:
            raise w.error("number of optional arguments", "switch takes none")
        return cls(region, tuple(SwitchPath(w.dev(f"path {i}"), w.int(f"path {i} offset")) for i in range(n)))

    @staticmethod
    def set_region_mappings(mappings: dict[int, int] | list[tuple[int, int]]) -> Message:
        """Map regions to paths: ``{region: path}`` (both from 0)."""
        items = sorted(mappings.items() if isinstance(mappings, dict) else mappings)
        if not items or any(r < 0 or p < 0 for r, p in items):
            raise ParameterError("switch", "mappings", "give at least one region: path pair, both non-negative")
        return Message("set_region_mappings", *(f"{r:x}:{p:x}" for r, p in items))


@dataclasses.dataclass(frozen=True)
class LogWritesStatus(Status):
    """``<logged entries> <highest allocated sector> [logging_disabled]``."""

    TYPE = "log-writes"
    logged_entries: int
    highest_sector: int
    logging_disabled: bool = False
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> LogWritesStatus:
        entries, highest = w.int("logged_entries"), w.int("highest_sector")
        disabled = w.peek() == "logging_disabled"
        if disabled:
            w.take("logging_disabled")
        return cls(entries, highest, disabled, w.rest())


@register
@dataclasses.dataclass(frozen=True)
class LogWrites(Params):
    """``<device> <log device>``: writes go to ``device`` and are recorded,
    in order, on ``log_device`` (for replaying crash states)."""

    TYPE = "log-writes"
    Status = LogWritesStatus
    device: DevNo
    log_device: DevNo

    def _check(self) -> None:
        if self.device == self.log_device:
            raise self._error("log_device", "must differ from the device")

    def format(self) -> str:
        return f"{self.device} {self.log_device}"

    @classmethod
    def _read(cls, w: Words) -> LogWrites:
        return cls(w.dev("device"), w.dev("log_device"))

    @staticmethod
    def mark(label: str) -> Message:
        """Record a mark (one word) in the log."""
        if not label or any(c.isspace() for c in label):
            raise ParameterError("log-writes", "mark", f"a mark is one word, got {label!r}")
        return Message("mark", label)
