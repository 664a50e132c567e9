# SPDX-License-Identifier: LGPL-2.1-or-later
"""Device events without a polling loop: DM_DEV_ARM_POLL + poll().

The kernel counts device-mapper events globally; ``arm_poll`` remembers the
count on one open control descriptor, and poll() on that descriptor reports
POLLIN once the count has moved.  Which device moved is not said, so each
wake-up compares event numbers from DM_LIST_DEVICES (interface 4.37+)
before and after.  Arming happens *before* each listing: an event between
the listing and the poll then still wakes the poll, so none is lost.

``watch()`` is a blocking generator, ``async_watch()`` an asyncio async
iterator; both yield a ``DeviceEvent`` for every device whose event number
changed, that appeared, was renamed or went away.  Each opens its own
control descriptor, because arming is per descriptor: two watchers sharing
one would re-arm each other and miss events.

For one device, ``Control.wait(device, event_nr)`` (DM_DEV_WAIT) blocks in
the kernel until that device's event number moves.  For what udev and the
kernel announce (with udev cookies, and devices of other processes as they
come), see ``pydevmapper.uevents``.
"""

from __future__ import annotations

import asyncio
import errno
import select
import time
from collections.abc import AsyncIterator, Iterator

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.channel import LIST_EVENT_NR
from pydevmapper.control import Control
from pydevmapper.errors import UnsupportedError
from pydevmapper.types import DevNo


class DeviceEvent(NamedTuple):
    """A device that changed between two listings: its name, event number and
    device number, and ``kind``: "added", "renamed", "event" (its event number
    moved) or "removed" (with the name and event number it had).  With a
    ``name_prefix``, a device renamed away from the prefix is "removed", one
    renamed into it "added".  The net change between two listings, by
    device number: a number reused by a new device reads as "renamed"."""

    name: str
    event_nr: int
    devno: DevNo
    kind: str = "event"


Snapshot = dict[DevNo, DeviceEvent]


class _Watcher:
    """A private control descriptor, armed, with the last listing seen."""

    def __init__(self, control: Control | None, name_prefix: str) -> None:
        path = control.path if control is not None else None
        # No node handling or udev: this descriptor only lists and polls.
        self.ctl = Control(path, udev_sync=False)
        self.prefix = name_prefix
        try:
            if not self.ctl.supports(LIST_EVENT_NR):
                raise UnsupportedError(errno.ENOTSUP, "DM_LIST_DEVICES", None, None,
                                       "event numbers in the device list need interface 4.37")
            self.ctl.arm_poll()
            self.last = self._snapshot()
        except BaseException:
            self.ctl.close()
            raise

    def fileno(self) -> int:
        return self.ctl.fileno()

    def _snapshot(self) -> Snapshot:
        listed = self.ctl.list_devices(uuids=False)
        return {d.devno: DeviceEvent(d.name, d.event_nr or 0, d.devno)
                for d in listed if d.name.startswith(self.prefix)}

    def changes(self) -> list[DeviceEvent]:
        """Re-arm, list, and return what changed since the last listing."""
        self.ctl.arm_poll()
        now = self._snapshot()
        found: list[DeviceEvent] = []
        for devno, ev in now.items():
            old = self.last.get(devno)
            if old is None:
                found.append(ev._replace(kind="added"))
            elif old.name != ev.name:
                found.append(ev._replace(kind="renamed"))
            elif old.event_nr != ev.event_nr:
                found.append(ev)
        found += [ev._replace(kind="removed") for devno, ev in self.last.items() if devno not in now]
        self.last = now
        return found

    def close(self) -> None:
        self.ctl.close()


class watch:
    """``for ev in watch(...)``: device events, blocking in poll() between them.

    ``control`` only names the control node (a private descriptor is used).
    ``timeout``: stop after this many seconds without an event (None: never).
    ``name_prefix``: only devices whose name starts with it.  Arms when
    called, not at the first ``next()``: no event after ``watch()`` returns
    is missed.  ``with watch() as events:`` (or ``close()``) closes the
    descriptor; so does running out on a timeout.
    """

    def __init__(self, control: Control | None = None, *,
                 timeout: float | None = None, name_prefix: str = "") -> None:
        self._watcher: _Watcher | None = _Watcher(control, name_prefix)
        self._timeout = timeout
        self._pending: list[DeviceEvent] = []
        self._poller = select.poll()
        self._poller.register(self._watcher.fileno(), select.POLLIN)

    def __iter__(self) -> Iterator[DeviceEvent]:
        return self

    def __next__(self) -> DeviceEvent:
        if self._watcher is None:
            raise StopIteration
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while not self._pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.close()
                raise StopIteration
            # poll() retries EINTR itself (PEP 475) and raises what a handler raises.
            if self._poller.poll(None if left is None else max(1, int(left * 1000))):
                self._pending = self._watcher.changes()
        return self._pending.pop(0)

    def close(self) -> None:
        """Close the private descriptor; the iteration ends."""
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def __enter__(self) -> watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def readable(fd: int, timeout: float | None) -> bool:
    """Wait on the running loop (``loop.add_reader``, never blocking it)
    until ``fd`` is readable; False once ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, ready)
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


class async_watch:
    """``async for ev in async_watch(...)``: device events on the running loop.

    Same arguments and events as ``watch()``; waits with ``loop.add_reader``
    on the private descriptor, so it never blocks the loop.  ``timeout``
    ends the iteration after that long without an event.  Use
    ``async with async_watch() as events:`` (or call ``aclose()``) to close
    the descriptor early.
    """

    def __init__(self, control: Control | None = None, *,
                 timeout: float | None = None, name_prefix: str = "") -> None:
        self._watcher: _Watcher | None = _Watcher(control, name_prefix)
        self._timeout = timeout
        self._pending: list[DeviceEvent] = []

    def __aiter__(self) -> AsyncIterator[DeviceEvent]:
        return self

    async def __anext__(self) -> DeviceEvent:
        if self._watcher is None:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        while not self._pending:
            left = None if deadline is None else deadline - loop.time()
            if not await readable(self._watcher.fileno(), left):
                await self.aclose()
                raise StopAsyncIteration
            self._pending = self._watcher.changes()
        return self._pending.pop(0)

    async def aclose(self) -> None:
        """Close the private descriptor; the iteration ends."""
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    async def __aenter__(self) -> async_watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
