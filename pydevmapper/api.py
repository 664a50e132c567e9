# SPDX-License-Identifier: LGPL-2.1-or-later
"""Module-level functions for scripts: one shared Control, opened on first use::

    import pydevmapper as dm
    for d in dm.list_devices():
        print(d.name, dm.table(d.name))

Each function takes its arguments in the order of the ``Control`` method
it calls.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pydevmapper.control import Control
from pydevmapper.device import Device
from pydevmapper.tables import Table, TargetStatus
from pydevmapper.types import DeviceInfo, DevNo, ListedDevice, TargetVersion

if TYPE_CHECKING:
    from pydevmapper.channel import Version
    from pydevmapper.targets import Message
    from pydevmapper.types import DeviceId

_lock = threading.Lock()
_control: Control | None = None


def default_control() -> Control:
    """The process-wide Control (safe to share between threads)."""
    global _control
    if _control is None:
        with _lock:
            if _control is None:
                _control = Control()
    return _control


def version() -> Version:
    """The kernel's DM interface version; see ``Control.version``."""
    return default_control().version()


def list_devices() -> list[ListedDevice]:
    """Every device; see ``Control.list_devices``."""
    return default_control().list_devices()


def info(device: DeviceId) -> DeviceInfo:
    """The device's state; see ``Control.info``."""
    return default_control().info(device)


def create_device(name: str, table: Table | str, *, uuid: str | None = None,
                  readonly: bool = False, devno: DevNo | None = None) -> Device:
    """Create, load and resume a device; see ``Control.create_device``."""
    return default_control().create_device(name, table, uuid=uuid, readonly=readonly, devno=devno)


def reload(device: DeviceId, table: Table | str, *, readonly: bool = False,
           noflush: bool = False, nolockfs: bool = False) -> DeviceInfo:
    """Load a new table and make it live; see ``Control.reload``."""
    return default_control().reload(device, table, readonly=readonly, noflush=noflush, nolockfs=nolockfs)


def remove(device: DeviceId, *, deferred: bool = False, retry: float = 0.0,
           force: bool = False) -> None:
    """Remove a device; see ``Control.remove``."""
    default_control().remove(device, deferred=deferred, retry=retry, force=force)


def table(device: DeviceId, *, inactive: bool = False) -> Table | None:
    """The device's table, or None; see ``Control.table``."""
    return default_control().table(device, inactive=inactive)


def status(device: DeviceId, *, inactive: bool = False) -> list[TargetStatus]:
    """Each target's status line; see ``Control.status``."""
    return default_control().status(device, inactive=inactive)


def target_versions() -> list[TargetVersion]:
    """The targets the kernel has loaded (``dmsetup targets``); the typed
    targets themselves are the ``pydevmapper.targets`` module."""
    return default_control().targets()


def message(device: DeviceId, sector: int, message: str | Message) -> str | None:
    """Arguments in ``Control.message``'s order."""
    return default_control().message(device, sector, message)
