# SPDX-License-Identifier: LGPL-2.1-or-later
"""Typed targets against the real kernel: crypt, verity, multipath,
switch and log-writes."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

import pydevmapper as dm
from pydevmapper import targets as t
from tests.root.helpers import dm_block_node, sectors_of
from tests.root.target_helpers import MIB, direct_read, loaded_equal, status, wait_until, write

pytestmark = pytest.mark.dm_root

KEY = bytes(range(64))  # aes-xts-plain64 with a 512-bit key: AES-256-XTS


def test_crypt_encrypts_and_keys_round_trip(dm_make_loop, dm_make_device):
    loop = dm_make_loop(4)
    size = sectors_of(loop.path)
    params = t.Crypt("aes-xts-plain64", KEY, 0, loop, 0, allow_discards=True, sector_size=4096)
    dev = dm_make_device(dm.Table.single(size, params))
    loaded_equal(dev, params)
    got = dev.table()[0].parsed()
    assert isinstance(got.key, t.Secret) and got.key == params.key and "00010203" not in repr(got)
    plain = b"secret data here" * 256
    write(dev, 0, plain)
    assert direct_read(loop.path, 0, 4096) != plain
    assert direct_read(dm_block_node(dev.devno), 0, 4096) == plain
    assert status(dev) == t.NoStatus()
    # key wipe / key set need the device suspended.
    dev.suspend()
    try:
        dev.message(t.Crypt.key_wipe())
        assert dev.table()[0].parsed().key == t.Secret("0" * 128)
        dev.message(t.Crypt.key_set(KEY))
    finally:
        dev.resume()
    assert dev.table()[0].parsed() == params


def test_crypt_with_options(dm_make_loop, dm_make_device):
    loop = dm_make_loop(4)
    params = t.Crypt("aes-cbc-essiv:sha256", bytes(32), 16, loop, 8, same_cpu_crypt=True,
                     submit_from_crypt_cpus=True, no_read_workqueue=True, no_write_workqueue=True)
    dev = dm_make_device(dm.Table.single(MIB, params))
    loaded_equal(dev, params)


def test_crypt_without_a_key(dm_make_loop, dm_make_device):
    # cipher_null takes no key ("-"): the data lands as written, at the offset.
    loop = dm_make_loop(4)
    params = t.Crypt("cipher_null-ecb", None, 16, loop, 8)
    dev = dm_make_device(dm.Table.single(MIB, params))
    loaded_equal(dev, params)
    write(dev, 0, b"\x4e" * 4096)
    assert direct_read(loop.path, 0, 8 * 512) == b"\0" * 8 * 512
    assert direct_read(loop.path, 8 * 512, 4096) == b"\x4e" * 4096


def _verity_tree(data: bytes, salt: bytes, block: int = 4096) -> tuple[bytes, str]:
    """A one-level hash tree (version 1: sha256(salt + block)) and its root."""
    digests = b"".join(hashlib.sha256(salt + data[i:i + block]).digest() for i in range(0, len(data), block))
    assert len(digests) <= block
    level = digests.ljust(block, b"\0")
    return level, hashlib.sha256(salt + level).hexdigest()


def test_verity_turns_c_after_corruption(dm_make_loop, dm_make_device):
    data_loop, hash_loop = dm_make_loop(1), dm_make_loop(1)
    data = bytes(range(256)) * 256  # 16 blocks of 4 KiB
    salt = b"\x5a" * 32
    level, root = _verity_tree(data, salt)
    with open(data_loop.backing_file, "r+b") as fh:
        fh.write(data)
    with open(hash_loop.backing_file, "r+b") as fh:
        fh.write(level)
    params = t.Verity(1, data_loop, hash_loop, 4096, 4096, 16, 0, "sha256", root, salt.hex(),
                      check_at_most_once=False, ignore_zero_blocks=True)
    dev = dm_make_device(dm.Table.single(128, params), readonly=True)
    loaded_equal(dev, params)
    path = dm_block_node(dev.devno)
    assert direct_read(path, 0, len(data)) == data
    assert status(dev) == t.VerityStatus("V")
    # Flip a byte under it; the next read of that block fails verification.
    with open(data_loop.backing_file, "r+b") as fh:
        fh.seek(5 * 4096 + 7)
        fh.write(bytes([data[5 * 4096 + 7] ^ 0xFF]))
    fd = os.open(data_loop.path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        direct_read(path, 5 * 4096, 4096)
    assert status(dev).corrupted


def test_multipath_fails_and_reinstates_a_path(dm_make_loop, dm_make_device):
    a, b = dm_make_loop(4), dm_make_loop(4)
    size = sectors_of(a.path)
    params = t.Multipath([[a, b], ([b], "service-time")], queue_if_no_path=False)
    dev = dm_make_device(dm.Table.single(size, params))
    loaded_equal(dev, params)
    first = status(dev)
    assert [len(g.paths) for g in first.groups] == [2, 1] and not first.failed_paths
    dev.message(t.Multipath.fail_path(a))
    assert status(dev).failed_paths == (dm.DevNo(*a.devno),)
    assert status(dev).groups[0].paths[0].fail_count == 1
    dev.message(t.Multipath.reinstate_path(a))
    assert not status(dev).failed_paths
    dev.message(t.Multipath.disable_group(2))
    assert status(dev).groups[1].state == "D"
    dev.message(t.Multipath.enable_group(2))
    assert status(dev).groups[1].state in ("E", "A")
    dev.message(t.Multipath.no_path_policy(queue=True))
    assert dev.table()[0].parsed().queue_if_no_path
    dev.message(t.Multipath.no_path_policy(queue=False))
    assert not dev.table()[0].parsed().queue_if_no_path


def test_switch_round_trips_and_takes_mappings(dm_make_loop, dm_make_device):
    a, b = dm_make_loop(4), dm_make_loop(4)
    params = t.Switch(64, [(a, 0), (b, 0)])
    dev = dm_make_device(dm.Table.single(4 * MIB, params))
    loaded_equal(dev, params)
    dev.message(t.Switch.set_region_mappings({0: 1, 1: 0}))
    write(dev, 0, b"\x9a" * 4096)  # region 0 now goes to path 1
    assert direct_read(b.path, 0, 4096) == b"\x9a" * 4096


def test_log_writes_counts_logged_entries(dm_make_loop, dm_make_device):
    data, log = dm_make_loop(4), dm_make_loop(8)
    params = t.LogWrites(data, log)
    dev = dm_make_device(dm.Table.single(sectors_of(data.path), params))
    loaded_equal(dev, params)
    before = settled(dev)
    write(dev, 0, b"\xbc" * 8192)
    assert direct_read(data.path, 0, 8192) == b"\xbc" * 8192  # the data device, not the log
    # The write's entries are counted once the fsync's flush wakes the log thread.
    assert wait_until(lambda: status(dev).logged_entries > before.logged_entries, timeout=10)
    written = settled(dev)
    assert written.logged_entries > before.logged_entries and written.highest_sector > before.highest_sector
    dev.message(t.LogWrites.mark("checkpoint-1"))
    assert wait_until(lambda: status(dev).logged_entries == written.logged_entries + 1, timeout=10)
    assert not status(dev).logging_disabled


def settled(dev) -> t.LogWritesStatus:
    """The status once the log thread has caught up: entries are counted by a
    kernel thread after the write (or mark) returns."""
    last = status(dev)
    for _ in range(50):
        time.sleep(0.2)
        now = status(dev)
        if now == last:
            return now
        last = now
    raise AssertionError(f"log-writes still logging after 10 s: {last}")
