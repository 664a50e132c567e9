# SPDX-License-Identifier: LGPL-2.1-or-later
"""``vdo``: deduplication and compression (Linux 6.9+, target 9.x).

Gate on the target: ``ctl.target_version("vdo")`` is None on kernels
without it.  Unlike every other target, vdo prints its table back exactly
as loaded (a device path stays a path), and its status names the backing
device by path.

Formats: the kernel's drivers/md/dm-vdo/dm-vdo-target.c and
Documentation/admin-guide/device-mapper/vdo.rst.
"""

from __future__ import annotations

import dataclasses

from pydevmapper.targets._base import (
    Message,
    ParameterError,
    Params,
    Status,
    Words,
    pairs,
    register,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

_ON_OFF = ("on", "off")
_INDEX_STATES = ("closed", "closing", "error", "offline", "online", "opening", "suspended", "unknown")


@dataclasses.dataclass(frozen=True)
class VdoStatus(Status):
    """``<backing device> <mode> <recovering|-> <index state>
    <online|offline> <used blocks> <physical blocks>`` (4 KiB blocks).

    ``mode`` is ``normal``, ``recovering`` or ``read-only``.
    """

    TYPE = "vdo"
    device: str
    mode: str
    recovering: bool
    index_state: str
    compressing: bool
    used_blocks: int
    physical_blocks: int
    extra: tuple[str, ...] = ()

    @classmethod
    def _read(cls, w: Words) -> VdoStatus:
        device, mode = w.take("device"), w.take("mode")
        recovering = w.choice("recovering", ("recovering", "-"))
        index = w.take("index_state")
        compression = w.choice("compression", ("online", "offline"))
        return cls(device, mode, recovering == "recovering", index, compression == "online",
                   w.int("used_blocks"), w.int("physical_blocks"), w.rest())


@register
@dataclasses.dataclass(frozen=True)
class Vdo(Params):
    """The V4 table: ``V4 <storage device> <physical blocks> <512|4096>
    <block map cache blocks> <block map era length> [<key> <value>]...``.

    ``storage_device`` is kept as written (a path or ``major:minor``): the
    kernel prints it back so.  ``options`` are vdo's key/value pairs
    (``deduplication``, ``compression``, ``maxDiscard``, thread counts...).
    The volume must have been formatted (vdoformat) first.
    """

    TYPE = "vdo"
    Status = VdoStatus
    storage_device: str
    physical_blocks: int
    logical_block_size: int = 4096
    block_map_cache_blocks: int = 32768
    block_map_era_length: int = 16380
    options: tuple[tuple[str, str], ...] = ()

    def _convert(self) -> None:
        if not isinstance(self.storage_device, str):
            self._set("storage_device", str(getattr(self.storage_device, "devno", self.storage_device)))
        given: Any = self.options  # a dict or pairs, until now (unnarrowed: see as_devno)
        opts = given.items() if isinstance(self.options, dict) else given
        self._set("options", tuple((str(k), str(v)) for k, v in opts))

    def _check(self) -> None:
        if not self.storage_device or any(c.isspace() for c in self.storage_device):
            raise self._error("storage_device", f"{self.storage_device!r} is not a device")
        if self.logical_block_size not in (512, 4096):
            raise self._error("logical_block_size", f"must be 512 or 4096, got {self.logical_block_size}")
        if self.physical_blocks < 0 or self.block_map_cache_blocks < 0 or not 0 <= self.block_map_era_length < 2**32:
            raise self._error("physical_blocks", "block counts must be non-negative")
        for key, value in self.options:
            if key in ("deduplication", "compression") and value not in _ON_OFF:
                raise self._error("options", f"{key} is on or off, got {value!r}")
            if not key or not value or any(c.isspace() for c in key + value):
                raise self._error("options", f"{key!r} {value!r} is not a key and a value")

    def check_length(self, length: int) -> None:
        if length % 8:
            raise self._error("length", f"the logical size must be a multiple of 4096 bytes, got {length} sectors")

    def format(self) -> str:
        return " ".join(["V4", self.storage_device, str(self.physical_blocks), str(self.logical_block_size),
                         str(self.block_map_cache_blocks), str(self.block_map_era_length),
                         *(w for pair in self.options for w in pair)])

    @classmethod
    def _read(cls, w: Words) -> Vdo:
        version = w.take("version")
        if version != "V4":
            raise w.error("version", f"only the V4 table is known here, got {version!r}")
        head = (w.take("storage_device"), w.int("physical_blocks"), w.int("logical_block_size"),
                w.int("block_map_cache_blocks"), w.int("block_map_era_length"))
        return cls(*head, tuple(pairs(list(w.rest()), cls.TYPE, "options")))

    @staticmethod
    def stats() -> Message:
        """Answered with vdo's statistics (``{ key : value, ... }`` text)."""
        return Message("stats")

    @staticmethod
    def config() -> Message:
        """Answered with the volume's configuration."""
        return Message("config")

    @staticmethod
    def compression(on: bool) -> Message:
        """Turn compression on or off."""
        return Message("compression", "on" if on else "off")

    @staticmethod
    def index(action: str) -> Message:
        """``close``, ``create``, ``disable`` or ``enable`` the dedupe index."""
        if action not in ("close", "create", "disable", "enable"):
            raise ParameterError("vdo", "index", f"{action!r} is not close, create, disable or enable")
        return Message(f"index-{action}")


def parse_stats(text: str) -> dict[str, object]:
    """vdo's ``stats`` answer (``{ key : value, key : { ... }, }``) as a dict;
    numbers become ints."""
    tokens = text.replace("{", " { ").replace("}", " } ").replace(",", " , ").replace(":", " : ").split()
    pos = 0

    def value() -> dict[str, object] | int | str:
        nonlocal pos
        if tokens[pos] == "{":
            pos += 1
            out: dict[str, object] = {}
            while tokens[pos] != "}":
                if tokens[pos] == ",":
                    pos += 1
                    continue
                key = tokens[pos]
                if tokens[pos + 1] != ":":
                    raise ParameterError("vdo", "stats", f"expected ':' after {key!r}")
                pos += 2
                out[key] = value()
            pos += 1
            return out
        words: list[str] = []
        while tokens[pos] not in (",", "}"):
            words.append(tokens[pos])
            pos += 1
        word = " ".join(words)
        return int(word) if word.lstrip("-").isdigit() else word

    try:
        result = value()
    except IndexError:
        raise ParameterError("vdo", "stats", "unbalanced braces") from None
    if not isinstance(result, dict):
        raise ParameterError("vdo", "stats", "expected { ... }")
    return result
