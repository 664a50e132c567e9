# SPDX-License-Identifier: LGPL-2.1-or-later
"""The value types: how a device is addressed, and what the kernel says about devices and targets.

Tables and their targets are in ``table``; the handle on one device is ``device.Device``.
"""

from __future__ import annotations

import functools
import os

from pydevmapper import validate
from pydevmapper._namedtuple import NamedTuple, build
from pydevmapper.errors import ValidationError
from pydevmapper.flags import DMFlag


class Name(str):
    """Address a device by name (a plain ``str`` means the same)."""

    __slots__ = ()


class Uuid(str):
    """Address a device by uuid: ``Uuid("LVM-...")``."""

    __slots__ = ()


class DevNo(NamedTuple):
    """Address a device by its block device number."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}:{self.minor}"


TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, Union

    DeviceId = Union[str, Name, Uuid, DevNo]  # what every ``device`` argument takes


def __getattr__(name: str) -> object:
    # DeviceId serves annotations, which the library never evaluates:
    # built on first use, so importing this module does not import typing
    # (see _namedtuple for why that matters).
    if name == "DeviceId":
        from typing import Union

        value = globals()["DeviceId"] = Union[str, Name, Uuid, DevNo]
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def describe(device: DeviceId) -> str:
    """How errors name the device: ``name``, ``uuid:<uuid>`` or ``maj:min``."""
    if isinstance(device, Uuid):
        return f"uuid:{device}"
    if isinstance(device, tuple) and len(device) == 2:
        return f"{device[0]}:{device[1]}"
    return str(device)


def check_id(device: object) -> DeviceId:
    """Validate a device address without sending anything."""
    address(device)
    return device  # type: ignore[return-value]


# The kernel's dev_t holds a 12-bit major and a 20-bit minor (MINORBITS,
# kernel-internal); it would silently truncate larger numbers.
_DEV_LIMITS = (1 << 12, 1 << 20)


def address(device: object) -> tuple[bytes, bytes, int]:
    """Validate a device address; the (name, uuid, dev) it puts in a request header."""
    kind = type(device)
    if kind is str or kind is Name or kind is Uuid:
        return _string_address(device)
    # What isinstance() finds in a caller's value has Unknown items to
    # pyright; the same value as Any, which no check narrows, does not.
    loose: Any = device
    if isinstance(device, tuple) and len(loose) == 2:
        for part, limit in zip(loose, _DEV_LIMITS):
            if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part < limit:
                raise ValidationError(f"bad device number {device!r}")
        return b"", b"", os.makedev(loose[0], loose[1])
    if isinstance(device, str):  # another str subclass: not worth a cache entry
        return _string_address.__wrapped__(device)
    raise ValidationError(
        f"address a device by name (str), Uuid(...) or DevNo(major, minor), not {device!r}"
    )


@functools.lru_cache(maxsize=1024, typed=True)
def _string_address(device: str) -> tuple[bytes, bytes, int]:
    # Cached: a script addresses the same few devices again and again, and
    # checking a name costs more than the ioctl path around it.  typed=True
    # keeps Uuid("x") and the name "x" apart; a failed check caches nothing.
    if isinstance(device, Uuid):
        return b"", validate.device_uuid(device), 0
    return validate.device_name(device), b"", 0


class DeviceInfo(NamedTuple):
    """A device's state as DM_DEV_STATUS (and most commands) report it."""

    name: str
    uuid: str  # "" when the device has none
    major: int
    minor: int
    open_count: int
    event_nr: int
    target_count: int
    flags: DMFlag

    @property
    def devno(self) -> DevNo:
        """The device number, as a ``DevNo``."""
        # Not DevNo(...): create() and resume() read this between an ioctl
        # and the node they make (see _namedtuple.build).
        return build(DevNo, (self.major, self.minor))

    @property
    def suspended(self) -> bool:
        """The device is suspended."""
        return bool(self.flags & DMFlag.SUSPEND)

    @property
    def read_only(self) -> bool:
        """The table asked about is read-only (the live one unless ``info(inactive=True)``)."""
        return bool(self.flags & DMFlag.READONLY)

    @property
    def live_table(self) -> bool:
        """A table is active."""
        return bool(self.flags & DMFlag.ACTIVE_PRESENT)

    @property
    def inactive_table(self) -> bool:
        """A table is loaded and waits for a resume."""
        return bool(self.flags & DMFlag.INACTIVE_PRESENT)

    @property
    def deferred_remove(self) -> bool:
        """Marked to vanish on last close."""
        return bool(self.flags & DMFlag.DEFERRED_REMOVE)

    @property
    def internally_suspended(self) -> bool:
        """Suspended by the kernel itself (``dm_internal_suspend``), not by a suspend command."""
        return bool(self.flags & DMFlag.INTERNAL_SUSPEND)


class ListedDevice(NamedTuple):
    """One entry of DM_LIST_DEVICES."""

    name: str
    major: int
    minor: int
    # None when the kernel does not report it (event numbers: DM 4.37,
    # uuids: 4.45 and only when asked).  "" means the device has no uuid.
    event_nr: int | None
    uuid: str | None

    @property
    def devno(self) -> DevNo:
        """The device number, as a ``DevNo`` (as ``DeviceInfo.devno``)."""
        return build(DevNo, (self.major, self.minor))


class TargetVersion(NamedTuple):
    """A loaded target type and its version (DM_LIST_VERSIONS)."""

    name: str
    version: tuple[int, int, int]
