# SPDX-License-Identifier: LGPL-2.1-or-later
"""Typed errors.

Kernel failures are ``DMError``: an ``OSError`` that keeps the errno and adds
the DM command, the device it addressed and, when the kernel explained itself
in its log (it explains a rejected table nowhere else), that explanation.
Bad input never reaches the kernel; it raises ``ValidationError``, a
``ValueError`` naming what is wrong.
"""

from __future__ import annotations

import errno as _errno
import os


class ValidationError(ValueError):
    """Input the kernel would reject, truncate or misread; nothing was sent."""


class StackConflictError(ValidationError):
    """A declared stack cannot be made: devices of its names exist and are
    not what it declares.  ``device`` names the stack (its top device),
    ``differences`` has a line per difference; nothing was changed."""

    def __init__(self, device: str, differences: list[str]) -> None:
        super().__init__(f"stack {device} conflicts with what exists: " + "; ".join(differences))
        self.device = device
        self.differences = differences


class UnmappableFileError(ValidationError):
    """A file dm-stats cannot map (``stats.create_file_regions``): ``reason``
    is "not_regular", "not_device_mapper", "no_physical_extents" (btrfs:
    its FIEMAP gives its own addresses, not the device's), "no_extents"
    or "short_extent" (a piece under a sector, such as inline data);
    nothing was changed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DMError(OSError):
    """A device-mapper command failed in the kernel.

    Attributes beyond OSError's ``errno`` and ``strerror``:
    ``command`` (e.g. ``"DM_TABLE_LOAD"``), ``device`` (how the device was
    addressed: a name, ``uuid:<uuid>`` or ``<major>:<minor>``; None for global
    commands) and ``kernel_message`` (lines the kernel logged about the
    failure, or None when there were none or the log is unreadable).
    """

    def __init__(
        self,
        errno: int,
        command: str,
        device: str | None = None,
        kernel_message: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(errno, detail or os.strerror(errno))
        self.command = command
        self.device = device
        self.kernel_message = kernel_message

    def __str__(self) -> str:
        where = f"{self.command} {self.device}" if self.device else self.command
        text = f"{where}: {self.strerror} [Errno {self.errno}]"
        if self.kernel_message:
            text += f"; kernel: {self.kernel_message}"
        return text

    def __reduce__(self) -> tuple[type[DMError], tuple[object, ...]]:  # keep the extra fields across pickling
        return (type(self), (self.errno, self.command, self.device,
                             self.kernel_message, self.strerror))


class RollbackError(DMError):
    """A multi-step operation failed and putting back what it had changed
    failed too.  The errno, command, device and kernel message are the
    original failure's (also ``__cause__``); ``left`` has a line per device
    that is not as it was."""

    def __init__(self, cause: DMError, left: list[str]) -> None:
        code = cause.errno if cause.errno is not None else _errno.EIO
        super().__init__(code, cause.command, cause.device, cause.kernel_message,
                         f"{cause.strerror}; not put back: {'; '.join(left)}")
        self.left = left

    def __reduce__(self) -> tuple[type[DMError], tuple[object, ...]]:
        return (DMError, (self.errno, self.command, self.device, self.kernel_message, self.strerror))


class DeviceNotFoundError(DMError):
    """No device with that name, uuid or number (ENXIO)."""


class RegionNotFoundError(DMError):
    """The device has no statistics region of that id (ENOENT)."""


class DeviceBusyError(DMError):
    """The device is open or otherwise in use (EBUSY)."""


class DeviceExistsError(DMError):
    """A device with that name or uuid already exists (the kernel says EBUSY)."""


class DMPermissionError(DMError, PermissionError):
    """Device-mapper needs CAP_SYS_ADMIN (EPERM/EACCES)."""


class InvalidTableError(DMError):
    """The kernel rejected a table; ``kernel_message`` says why when it can."""


class UnsupportedError(DMError):
    """The running kernel's DM interface is too old for the request (ENOTSUP)."""


class DeviceMapperUnavailableError(DMError):
    """There is no device-mapper control node (dm-mod not loaded?)."""


def _class_for(errno: int, command: str, table_rejected: bool) -> type[DMError]:
    # A target passes its own lookup errno up (a missing backing device
    # gives ENXIO), so a rejected table is not always EINVAL.
    if command == "DM_TABLE_LOAD" and (table_rejected or errno == _errno.EINVAL):
        return InvalidTableError
    if errno in (_errno.EPERM, _errno.EACCES):
        return DMPermissionError
    if errno == _errno.ENXIO:
        return DeviceNotFoundError
    if errno == _errno.EBUSY:
        # The kernel answers a duplicate name or uuid with EBUSY.
        if command in ("DM_DEV_CREATE", "DM_DEV_RENAME"):
            return DeviceExistsError
        return DeviceBusyError
    return DMError


def error_for(
    errno: int,
    command: str,
    device: str | None = None,
    kernel_message: str | None = None,
    table_rejected: bool = False,
) -> DMError:
    """The typed error for a failed command.

    ``table_rejected``: the device of a failed DM_TABLE_LOAD exists, so the
    table, not the device, was the problem whatever the errno.
    """
    cls = _class_for(errno, command, table_rejected)
    detail = None
    if cls is DMPermissionError:
        detail = f"{os.strerror(errno)} (device-mapper needs CAP_SYS_ADMIN: run as root)"
    elif cls is DeviceExistsError:
        detail = "a device with that name or uuid already exists"
    return cls(errno, command, device, kernel_message, detail)
