"""How a device is addressed, and what the kernel says about it."""

from __future__ import annotations

from typing import NamedTuple, Union

from pydevmapper import validate
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


DeviceId = Union[str, Name, Uuid, DevNo]


def describe(device: DeviceId) -> str:
    """How errors name the device: ``name``, ``uuid:<uuid>`` or ``maj:min``."""
    if isinstance(device, Uuid):
        return f"uuid:{device}"
    return str(device)


def check_id(device: object) -> DeviceId:
    """Validate a device address without sending anything."""
    if isinstance(device, Uuid):
        validate.device_uuid(device)
    elif isinstance(device, DevNo):
        for part in device:
            if isinstance(part, bool) or not isinstance(part, int) or part < 0:
                raise validate.ValidationError(f"bad device number {device!r}")
    elif isinstance(device, tuple) and len(device) == 2:
        return check_id(DevNo(*device))
    elif isinstance(device, str):
        validate.device_name(device)
    else:
        raise validate.ValidationError(
            f"address a device by name (str), Uuid(...) or DevNo(major, minor), not {device!r}"
        )
    return device  # type: ignore[return-value]


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
        return DevNo(self.major, self.minor)

    @property
    def suspended(self) -> bool:
        return bool(self.flags & DMFlag.SUSPEND)

    @property
    def read_only(self) -> bool:
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
        return bool(self.flags & DMFlag.INTERNAL_SUSPEND)
