# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the composite devices share: segments of block devices, and the
linear tables and header wipes made of them."""

from __future__ import annotations

import os
from collections.abc import Iterable

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.errors import ValidationError
from pydevmapper.tables import Table, Target
from pydevmapper.targets import Linear
from pydevmapper.targets._base import as_devno
from pydevmapper.types import DevNo


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
