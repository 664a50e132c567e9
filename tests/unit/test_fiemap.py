# SPDX-License-Identifier: LGPL-2.1-or-later
"""fiemap.join_pieces: FIEMAP's answers joined into extents as libdevmapper
joins them for a file map (dmstats create --filemap).  The real ioctl on a
real file system: tests/root/test_stats_filemap.py."""

from __future__ import annotations

import errno
import os

import pytest

from pydevmapper._dm import lib
from pydevmapper.fiemap import Extent, Piece, join_pieces, on_btrfs

K = 1024
LAST = lib.FIEMAP_EXTENT_LAST


def test_pieces_that_follow_each_other_on_the_device_are_one_extent():
    chunk = [Piece(0, 100 * K, 8 * K, 0), Piece(8 * K, 108 * K, 4 * K, 0), Piece(12 * K, 300 * K, 4 * K, LAST)]
    assert join_pieces([chunk]) == [Extent(200, 24), Extent(600, 8)]


def test_following_on_the_device_is_what_counts_not_the_place_in_the_file():
    """A hole in the file between two pieces that touch on the device: one extent."""
    chunk = [Piece(16 * K, 50 * K, 40 * K, 0), Piece(160 * K, 90 * K, 8 * K, LAST)]
    assert join_pieces([chunk]) == [Extent(100, 96)]


def test_a_hole_at_the_start_of_the_file():
    chunk = [Piece(64 * K, 10 * K, 4 * K, 0), Piece(68 * K, 20 * K, 4 * K, LAST)]
    assert join_pieces([chunk]) == [Extent(20, 8), Extent(40, 8)]


def test_pieces_not_yet_placed_are_left_out():
    chunk = [Piece(0, 10 * K, 4 * K, 0), Piece(4 * K, 0, 4 * K, lib.FIEMAP_EXTENT_DELALLOC),
             Piece(8 * K, 50 * K, 4 * K, lib.FIEMAP_EXTENT_UNKNOWN | LAST)]
    assert join_pieces([chunk]) == [Extent(20, 8)]


def test_an_extent_carries_on_across_answers():
    first = [Piece(0, 10 * K, 4 * K, 0), Piece(4 * K, 30 * K, 4 * K, 0)]
    second = [Piece(8 * K, 34 * K, 4 * K, 0), Piece(12 * K, 90 * K, 4 * K, LAST)]
    assert join_pieces([first, second]) == [Extent(20, 8), Extent(60, 16), Extent(180, 8)]


def test_a_file_of_one_piece_and_one_with_none():
    assert join_pieces([[Piece(0, 10 * K, 4 * K, LAST)]]) == [Extent(20, 8)]
    assert join_pieces([]) == []


def test_on_btrfs_asks_the_file_system_of_the_descriptor():
    """procfs is not btrfs (the btrfs answer is proven on a real btrfs in
    the root test); a bad descriptor is the OSError."""
    fd = os.open("/proc", os.O_RDONLY)
    try:
        assert on_btrfs(fd) is False
    finally:
        os.close(fd)
    with pytest.raises(OSError) as e:
        on_btrfs(-1)
    assert e.value.errno == errno.EBADF
