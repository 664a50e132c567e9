# SPDX-License-Identifier: LGPL-2.1-or-later
"""A handle on one device."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.control import Control
    from pydevmapper.tables import Table, TargetStatus
    from pydevmapper.targets import Message
    from pydevmapper.types import DeviceInfo, DevNo


class Device:
    """A handle on one device, addressed by its device number.

    The number stays valid across renames; it could be reused only after the
    device is removed.  As a context manager, a handle that ``create_device``
    returned removes its device on exit.
    """

    __slots__ = ("control", "devno", "_owned")

    def __init__(self, control: Control, devno: DevNo, *, owned: bool = False) -> None:
        self.control = control
        self.devno = devno
        self._owned = owned

    def __repr__(self) -> str:
        return f"<Device {self.devno}>"

    @property
    def name(self) -> str:
        """The device's name now (asked of the kernel each time: it may have been renamed)."""
        return self.info().name

    @property
    def path(self) -> str:
        """``<dev_dir>/mapper/<name>`` (``$DM_DEV_DIR`` or /dev unless the Control says else)."""
        return self.control.node_path(self.name)

    def info(self, *, inactive: bool = False) -> DeviceInfo:
        """The device's state; see ``Control.info``."""
        return self.control.info(self.devno, inactive=inactive)

    def table(self, *, inactive: bool = False) -> Table | None:
        """The table as loaded, or None; see ``Control.table``."""
        return self.control.table(self.devno, inactive=inactive)

    def status(self, *, inactive: bool = False, noflush: bool = False) -> list[TargetStatus]:
        """Each target's status line; see ``Control.status``."""
        return self.control.status(self.devno, inactive=inactive, noflush=noflush)

    def deps(self, *, inactive: bool = False) -> list[DevNo]:
        """The block devices the table uses; see ``Control.deps``."""
        return self.control.deps(self.devno, inactive=inactive)

    def load(self, table: Table | str, *, readonly: bool = False) -> DeviceInfo:
        """Load a table into the inactive slot; ``resume()`` makes it live."""
        return self.control.load(self.devno, table, readonly=readonly)

    def reload(self, table: Table | str, **kwargs: bool) -> DeviceInfo:
        """Load a new table and make it live (``readonly``, ``noflush``, ``nolockfs``); see
        ``Control.reload``."""
        return self.control.reload(self.devno, table, **kwargs)

    def suspend(self, **kwargs: bool) -> DeviceInfo:
        """Suspend the device (``noflush``, ``nolockfs``); see ``Control.suspend``."""
        return self.control.suspend(self.devno, **kwargs)

    def resume(self, *, noflush: bool = False, nolockfs: bool = False) -> DeviceInfo:
        """Resume the device, making an inactive table live (``noflush``, ``nolockfs``); see
        ``Control.resume``."""
        return self.control.resume(self.devno, noflush=noflush, nolockfs=nolockfs)

    def message(self, message: str | Message, sector: int = 0) -> str | None:
        """Send a message to the target at ``sector`` (the first one unless given); returns its
        answer, if any."""
        return self.control.message(self.devno, sector, message)

    def rename(self, new_name: str) -> DeviceInfo:
        """Give the device a new name; the handle still addresses it, by number."""
        return self.control.rename(self.devno, new_name)

    def wait(self, event_nr: int | None = None) -> DeviceInfo:
        """Block until the device's event number differs from ``event_nr`` (none: until the next
        event); see ``Control.wait``."""
        return self.control.wait(self.devno, event_nr)

    def wait_status(self, event_nr: int | None = None) -> tuple[DeviceInfo, list[TargetStatus]]:
        """As ``wait``, with the status lines read right after the event; see
        ``Control.wait_status``."""
        return self.control.wait_status(self.devno, event_nr)

    def wipe_table(self) -> DeviceInfo:
        """An ``error`` table of the same size, live at once; see ``Control.wipe_table``."""
        return self.control.wipe_table(self.devno)

    def remove(self, *, deferred: bool = False, retry: float = 0.0,
               force: bool = False) -> None:
        """Remove the device (see ``Control.remove``); leaving a ``with`` block then removes
        nothing."""
        self.control.remove(self.devno, deferred=deferred, retry=retry, force=force)
        self._owned = False

    @property
    def read_ahead(self) -> int:
        """Read-ahead in 512-byte sectors."""
        return self.control.read_ahead(self.devno)

    def set_read_ahead(self, sectors: int, *, minimum: bool = False) -> int:
        """See ``Control.set_read_ahead``."""
        return self.control.set_read_ahead(self.devno, sectors, minimum=minimum)

    def cancel_deferred_remove(self) -> None:
        """Undo ``remove(deferred=True)`` while the device is still open."""
        self.control.cancel_deferred_remove(self.devno)

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            self._owned = False
            # Clean-up: an error here must not hide the one leaving the block.
            try:
                self.control.clear(self.devno)
            except OSError:
                pass
            try:
                self.control.remove(self.devno, retry=5.0)
            except OSError:
                pass
