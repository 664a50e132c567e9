# SPDX-License-Identifier: LGPL-2.1-or-later
"""A block device's read-ahead, in 512-byte sectors.

Read and set through sysfs (``/sys/dev/block/<major>:<minor>/bdi/read_ahead_kb``),
as libdevmapper does when it knows the device number: no node has to exist
and no device is opened (opening one can block, e.g. a full thin pool).
sysfs takes KiB, so an odd number of sectors is rounded up; the kernel may
keep a coarser unit still (whole pages), so a write returns what it reads
back, the read-ahead in effect.
"""

from __future__ import annotations

import errno

from pydevmapper.errors import DeviceNotFoundError, DMError, ValidationError, error_for
from pydevmapper.types import DevNo

# libdevmapper keeps read-ahead in a uint32_t and reserves UINT32_MAX for
# "the kernel's default" (DM_READ_AHEAD_AUTO).
MAX_SECTORS = (1 << 32) - 2
COMMAND = "read-ahead"  # names the operation in errors (it is no DM ioctl)


def sysfs_path(devno: DevNo) -> str:
    return f"/sys/dev/block/{devno.major}:{devno.minor}/bdi/read_ahead_kb"


def check_sectors(sectors: object) -> int:
    """A read-ahead the kernel takes as given: an int, 0 to MAX_SECTORS."""
    if isinstance(sectors, bool) or not isinstance(sectors, int):
        raise ValidationError(f"read-ahead must be an int number of sectors, "
                              f"not {type(sectors).__name__}")
    if not 0 <= sectors <= MAX_SECTORS:
        raise ValidationError(f"read-ahead {sectors} is not between 0 and {MAX_SECTORS} sectors")
    return sectors


def read(devno: DevNo, device: str | None = None) -> int:
    """The read-ahead of ``devno`` in sectors.  ``device`` names it in errors."""
    try:
        with open(sysfs_path(devno), "rb") as f:
            text = f.read(64)
    except OSError as exc:
        raise _error(exc, device or str(devno)) from None
    try:
        return int(text) * 2
    except ValueError:
        raise DMError(errno.EIO, COMMAND, device or str(devno), None,
                      f"{sysfs_path(devno)} holds {text!r}, not a number") from None


def write(devno: DevNo, sectors: int, *, minimum: bool = False,
          device: str | None = None) -> int:
    """Set the read-ahead of ``devno``; returns the read-ahead now in effect
    (read back: see the module's docstring).

    ``minimum``: only raise it, never lower it (dmsetup's ``--readahead +N``).
    """
    check_sectors(sectors)
    label = device or str(devno)
    if minimum:
        current = read(devno, label)
        if current >= sectors:
            return current
    try:
        with open(sysfs_path(devno), "wb", buffering=0) as f:
            f.write(str((sectors + 1) // 2).encode())
    except OSError as exc:
        raise _error(exc, label) from None
    return read(devno, label)


def _error(exc: OSError, device: str) -> DMError:
    if exc.errno == errno.ENOENT:
        # No sysfs entry: no such block device, or a DM device whose disk
        # the kernel has not added yet (from 5.15 it does at the first
        # table load; before, at the creation).
        # ENXIO, as the DM ioctls answer for an unknown device.
        return DeviceNotFoundError(errno.ENXIO, COMMAND, device, None,
                                   "no such block device (a device-mapper device has "
                                   "none until its first table is loaded)")
    return error_for(exc.errno or errno.EIO, COMMAND, device)
