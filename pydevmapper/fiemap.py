# SPDX-License-Identifier: LGPL-2.1-or-later
"""A file's extents on the block device that holds it (``FS_IOC_FIEMAP``),
in sectors, joined as libdevmapper joins them to map a file with dm-stats
regions (``dmstats create --filemap``): pieces that follow each other on
the device are one extent, whatever their place in the file; extents not
yet placed (delayed allocation, unknown) are left out.
"""

from __future__ import annotations

import os

from pydevmapper._dm import ffi, lib
from pydevmapper._namedtuple import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

# One ioctl's buffer, as libdevmapper sizes it: 2 KiB, header included.
_BUFFER = 2048
_SECTOR_SHIFT = 9


class Piece(NamedTuple):
    """One extent as FIEMAP reports it (bytes)."""

    logical: int
    physical: int
    length: int
    flags: int


class Extent(NamedTuple):
    """A run of the file on its device (sectors)."""

    start: int
    length: int


def file_extents(fd: int) -> list[Extent]:
    """The extents of the open regular file ``fd`` on its device, in file
    order; written back first (``FIEMAP_FLAG_SYNC``).  An empty list for a
    file with nothing allocated.  ``OSError`` from the ioctl (a file
    system without FIEMAP: ``EOPNOTSUPP``)."""
    return join_pieces(_pieces(fd))


def _pieces(fd: int) -> Iterator[list[Piece]]:
    """FIEMAP's answers, one list per ioctl, until one is empty or ends the file."""
    count = (_BUFFER - lib.PYDM_OFFSETOF_FIEMAP_EXTENTS) // ffi.sizeof("struct fiemap_extent")
    buf = ffi.new("char[]", _BUFFER)
    fm = ffi.cast("struct fiemap *", buf)
    extents = ffi.cast("struct fiemap_extent *", buf + lib.PYDM_OFFSETOF_FIEMAP_EXTENTS)
    start = 0
    while True:
        fm.fm_start, fm.fm_length, fm.fm_flags = start, (1 << 64) - 1, lib.FIEMAP_FLAG_SYNC
        fm.fm_extent_count, fm.fm_mapped_extents = count, 0
        if lib.ioctl(fd, lib.FS_IOC_FIEMAP, buf) < 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err))
        chunk = [Piece(e.fe_logical, e.fe_physical, e.fe_length, e.fe_flags)
                 for e in (extents[i] for i in range(fm.fm_mapped_extents))]
        if not chunk:
            return
        yield chunk
        if any(p.flags & lib.FIEMAP_EXTENT_LAST for p in chunk):
            return
        start = chunk[-1].logical + chunk[-1].length


def on_btrfs(fd: int) -> bool:
    """Whether the open file ``fd`` is on btrfs (``fstatfs``: a file's
    ``st_dev`` on btrfs is the subvolume's own number, not a block device)."""
    r = lib.pydm_on_btrfs(fd)
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return r == 1


def join_pieces(chunks: Iterable[Sequence[Piece]]) -> list[Extent]:
    """libdevmapper's joining of FIEMAP's answers (``_stats_map_extents``):
    a piece that starts where the last one ended on the device carries on
    the pending extent, and a piece at the start of the file begins one
    afresh; an extent is complete at the next discontinuity, at the end of
    the file, or at the end of an answer whose last piece starts the file."""
    unplaced = lib.FIEMAP_EXTENT_UNKNOWN | lib.FIEMAP_EXTENT_DELALLOC
    out: list[Extent] = []
    last = Piece(0, 0, 0, 0)
    pending = Piece(0, 0, 0, 0)
    for chunk in chunks:
        eof = False
        for piece in chunk:
            expected = last.physical + last.length
            if piece.flags & lib.FIEMAP_EXTENT_LAST:
                eof = True
            if piece.flags & unplaced:
                continue
            if pending.length and piece.logical != 0 and piece.physical != expected:
                out.append(Extent(pending.physical >> _SECTOR_SHIFT, pending.length >> _SECTOR_SHIFT))
                pending = piece
            elif not pending.length or piece.logical == 0:
                pending = piece
            else:
                pending = pending._replace(length=pending.length + piece.length)
            last = piece
        if chunk and (eof or chunk[-1].logical == 0):
            out.append(Extent(pending.physical >> _SECTOR_SHIFT, pending.length >> _SECTOR_SHIFT))
        if eof:
            break
    return out
