# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the composite devices share: segments of block devices and the
linear tables made of them, a header wipe, typed status reads, the undoing
of a half-made stack, and waits on the kernel's progress."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.errors import ValidationError
from pydevmapper.operations import remove_quietly
from pydevmapper.tables import Table, Target
from pydevmapper.targets import Linear
from pydevmapper.targets._base import as_devno
from pydevmapper.types import DevNo

if TYPE_CHECKING:
    from typing import TypeVar

    from pydevmapper.control import Control
    from pydevmapper.device import Device
    from pydevmapper.targets import Params, Status
    from pydevmapper.types import DeviceId

    S = TypeVar("S", bound=Status)
    P = TypeVar("P", bound=Params)


class Segment(NamedTuple):
    """``length`` sectors of ``device`` (a ``DevNo``, ``"major:minor"`` or a
    block device path) from sector ``offset``."""

    device: DevNo | str
    offset: int
    length: int


def linear(segments: Iterable[Segment], what: str) -> Table:
    """The segments end to end, checked."""
    targets: list[Target] = []
    start = 0
    for seg in segments:
        if not isinstance(seg, tuple) or len(seg) != 3:
            raise ValidationError(f"{what}: a segment is (device, offset, length), not {seg!r}")
        device, offset, length = seg
        if type(offset) is not int or offset < 0:
            raise ValidationError(f"{what}: a segment's offset is a sector number, not {offset!r}")
        if type(length) is not int or length <= 0:
            raise ValidationError(f"{what}: a segment's length is a positive number of sectors, not {length!r}")
        targets.append(Linear(as_devno(device, "linear"), offset).target(start, length))
        start += length
    if not targets:
        raise ValidationError(f"{what}: at least one segment")
    return Table(targets)


def zero(path: str, size: int) -> None:
    """Zero the first ``size`` bytes of the device at ``path``, on disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, bytes(size), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def single_target(ctl: Control, name: str, kind: type[P], what: str) -> tuple[P, int]:
    """The parameters and length of the device's one target, which must be
    exactly a ``kind`` (not a subclass: a snapshot-merge is no snapshot);
    else ``ValidationError`` saying the device is not ``what``."""
    table = ctl.table(name)
    params = table[0].parsed() if table is not None and len(table) == 1 else None
    if table is None or type(params) is not kind:
        raise ValidationError(f"{name} is not {what} (its table is {table})")
    return params, table.size


def status_of(ctl: Control, device: DeviceId, kind: type[S]) -> S:
    """The device's first target's typed status, which must be a ``kind``."""
    st = ctl.status(device)[0].parsed()
    if not isinstance(st, kind):
        raise ValueError(f"{device}: expected a {kind.TYPE} status, read {st!r}")
    return st


def undo(ctl: Control, made: list[Device]) -> None:
    """Remove what a failed step had made, the last made first."""
    for dev in reversed(made):
        remove_quietly(ctl, dev.devno)


def wait_until(read: Callable[[], S], done: Callable[[S], bool], timeout: float | None,
               late: Callable[[S], str]) -> S:
    """``read()`` until ``done`` says yes, sleeping a little longer each time
    (10 ms up to 0.5 s); ``TimeoutError`` saying ``late(last read)`` after
    ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.01
    while True:
        value = read()
        if done(value):
            return value
        if deadline is not None and time.monotonic() + pause > deadline:
            raise TimeoutError(errno.ETIMEDOUT, late(value))
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
