# SPDX-License-Identifier: LGPL-2.1-or-later
"""A cache in front of a live device, and its removal::

    import pydevmapper as dm
    from pydevmapper.composites import CacheStack, Segment

    with dm.Control() as ctl:
        cache = CacheStack.create(ctl, "vol", metadata=[Segment("/dev/nvme0n1", 0, 16384)],
                                  cache=[Segment("/dev/nvme0n1", 16384, 2097152)], io_mode="writeback")
        print(cache.status().dirty)          # blocks not yet written to the origin
        cache.flush(timeout=600)             # every dirty block written back
        cache.uncache(timeout=600)           # vol as it was, without the cache

After ``teardown`` (or a restart), ``CacheStack.setup`` with the same
layout, the origin's table included, brings the device back with the
cache's dirty blocks; run on a stack that runs, it adopts it.

The devices are named as LVM names its own: the device ``<name>`` keeps its
name and number and becomes a ``cache`` target over ``<name>_corig`` (a
new device with its old table), ``<name>_cmeta`` and ``<name>_cdata``,
linear over the segments given.  Each method refuses bad input before it
changes anything and puts back what it changed when a later step fails.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydevmapper.channel import DEV_CREATE
from pydevmapper.composites.segments import Segment, linear, single_target, status_of, undo, wait_until, zero
from pydevmapper.device import Device
from pydevmapper.errors import DeviceExistsError, DMError, RollbackError, ValidationError
from pydevmapper.operations import create_device, put_back, reload, remove
from pydevmapper.stacks import DeviceSpec, Ensured, ensure_stack, teardown_stack
from pydevmapper.tables import Table, Target, as_table
from pydevmapper.targets import Cache, CacheStatus
from pydevmapper.types import DevNo, check_id

if TYPE_CHECKING:
    from pydevmapper.control import Control

#: bytes zeroed at the start of new cache metadata: its superblock, which
#: the kernel formats when it reads all zeroes
_SUPERBLOCK = 4096


def _stand_in(block_size: int, io_mode: str, policy: str, policy_args: dict[str, str] | None) -> Cache:
    """The cache's parameters, checked now, with stand-in devices: the
    real ones exist only once the stack's devices are made."""
    return Cache(DevNo(0, 1), DevNo(0, 2), DevNo(0, 3), block_size, io_mode, policy=policy,
                 policy_args=tuple((policy_args or {}).items()))


class CacheStack:
    """A cached device, its origin, metadata and cache devices.  Made with
    ``create``; ``CacheStack(ctl, name)`` takes one that runs."""

    def __init__(self, ctl: Control, name: str) -> None:
        check_id(name)
        self.ctl = ctl
        self.name = name
        self.params, self.size = single_target(ctl, name, Cache, "a cache")

    @classmethod
    def create(cls, ctl: Control, name: str, *, metadata: Sequence[Segment], cache: Sequence[Segment],
               block_size: int = 64, io_mode: str = "writethrough", policy: str = "smq",
               policy_args: dict[str, str] | None = None) -> CacheStack:
        """Put a cache in front of the running device ``name``: its I/O goes
        through the cache from the moment the call returns, its name and
        number unchanged.  ``block_size`` in sectors (a multiple of 64);
        ``io_mode``: ``writethrough`` (the origin always current),
        ``writeback`` or ``passthrough``.  The metadata's first 4 KiB are
        zeroed, so the kernel formats it.  On failure nothing is left and
        the device runs as before."""
        check_id(name)
        meta_table, cache_table = linear(metadata, f"{name} metadata"), linear(cache, f"{name} cache")
        probe = _stand_in(block_size, io_mode, policy, policy_args)
        info = ctl.info(name)
        live = ctl.table(name)
        if live is None:
            raise ValidationError(f"{name} has no live table to put a cache in front of")
        names = [f"{info.name}_cmeta", f"{info.name}_cdata", f"{info.name}_corig"]
        for each in names:
            if ctl.exists(each):
                raise DeviceExistsError(errno.EBUSY, DEV_CREATE.name, each, None, "exists")
        made: list[Device] = []
        try:
            meta = create_device(ctl, names[0], meta_table)
            made.append(meta)
            zero(meta.path, _SUPERBLOCK)
            made.append(create_device(ctl, names[1], cache_table))
            made.append(create_device(ctl, names[2], live, readonly=info.read_only))
            params = dataclasses.replace(probe, metadata_device=made[0].devno, cache_device=made[1].devno,
                                         origin_device=made[2].devno)
            # The old table is live again if the kernel refuses the new one.
            reload(ctl, info.devno, Table.single(live.size, params), readonly=info.read_only)
        except BaseException:
            undo(ctl, made)
            raise
        return cls(ctl, name)

    @classmethod
    def setup(cls, ctl: Control, name: str, *, origin: Sequence[Segment] | Sequence[Target] | Table | str,
              metadata: Sequence[Segment], cache: Sequence[Segment], block_size: int = 64,
              io_mode: str = "writethrough", policy: str = "smq",
              policy_args: dict[str, str] | None = None, readonly: bool = False) -> tuple[CacheStack, Ensured]:
        """The cache with this layout, ``origin`` being the table the
        device had before the cache (a ``Table``, its text, targets, or
        segments for a linear one), ``readonly`` whether the device was:
        devices that exist and match are adopted, missing ones made
        (``ensure_stack``), so a script can run it after ``teardown`` or a
        restart.  The metadata is never zeroed: it holds this cache's,
        whose dirty blocks are still the device's, or zeroes.  Refused with
        ``StackConflictError``, naming each difference, when a device of
        the stack's names is not what this layout makes (a device running
        without a cache: ``create`` puts one in front of it)."""
        check_id(name)
        if not isinstance(readonly, bool):
            raise ValidationError(f"readonly is True or False, not {readonly!r}")
        if isinstance(origin, (Table, str)) or (origin and all(isinstance(t, Target) for t in origin)):
            orig_table = as_table(origin)  # type: ignore[arg-type]  # targets, checked just above
        else:
            orig_table = linear(origin, f"{name} origin")  # type: ignore[arg-type]  # segments
        meta_table, cache_table = linear(metadata, f"{name} metadata"), linear(cache, f"{name} cache")
        params = _stand_in(block_size, io_mode, policy, policy_args)
        meta, data, orig = f"{name}_cmeta", f"{name}_cdata", f"{name}_corig"

        def top(devnos: Mapping[str, DevNo]) -> Table:
            return Table.single(orig_table.size, dataclasses.replace(
                params, metadata_device=devnos[meta], cache_device=devnos[data], origin_device=devnos[orig]))
        children = (DeviceSpec(meta, meta_table), DeviceSpec(data, cache_table),
                    DeviceSpec(orig, orig_table, readonly=readonly))
        spec = DeviceSpec(name, top, readonly=readonly, children=children)
        done = ensure_stack(ctl, spec)
        return cls(ctl, name), done

    def teardown(self, *, retry: float = 5.0) -> list[str]:
        """Remove the cached device and its origin, metadata and cache
        devices, top-down, without writing dirty blocks back: they stay in
        the cache, recorded in its metadata, and ``setup`` with the same
        layout brings the device back as it was.  Returns the names
        removed; refused before any removal while the device is in use
        from outside the stack (``DeviceBusyError``)."""
        children = tuple(DeviceSpec(f"{self.name}{suffix}", "") for suffix in ("_cmeta", "_cdata", "_corig"))
        return teardown_stack(self.ctl, DeviceSpec(self.name, "", children=children), retry=retry)

    def status(self) -> CacheStatus:
        """The cache's typed status: hits, misses, dirty blocks, mode."""
        return status_of(self.ctl, self.name, CacheStatus)

    def _swap_policy(self, params: Cache) -> None:
        reload(self.ctl, self.name, Table.single(self.size, params),
               readonly=self.ctl.info(self.name).read_only)
        self.params = params

    def _to_cleaner(self) -> None:
        self._swap_policy(dataclasses.replace(self.params, policy="cleaner", policy_args=()))

    def flush(self, *, timeout: float | None = None) -> CacheStatus:
        """Write every dirty block back to the origin: the ``cleaner``
        policy is loaded (the device runs on meanwhile) until none is
        dirty, then the policy before it.  ``TimeoutError`` after
        ``timeout`` seconds, with the cleaner still loaded: call again."""
        before = self.params if self.params.policy != "cleaner" else None
        if before is not None:
            self._to_cleaner()
        st = self._wait_clean(timeout)
        if before is not None:
            self._swap_policy(before)
        return st

    def _wait_clean(self, timeout: float | None) -> CacheStatus:
        def clean(st: CacheStatus) -> bool:
            if st.failed or st.error or st.dirty is None:
                raise OSError(errno.EIO, f"{self.name}: the cache has failed")
            return st.dirty == 0
        return wait_until(self.status, clean, timeout,
                          lambda st: f"{self.name}: {st.dirty} blocks still dirty after {timeout} s")

    def uncache(self, *, timeout: float | None = None, retry: float = 5.0) -> None:
        """Flush, then give the device its origin's table back and remove
        the origin, metadata and cache devices.  The device keeps its name
        and number throughout; the swap happens only once the device,
        suspended, has no dirty block (a write between the flush and the
        suspend sends it back to flushing)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.params.policy != "cleaner":
            self._to_cleaner()
        origin = self.ctl.table(self.params.origin_device)
        assert origin is not None
        readonly = self.ctl.info(self.params.origin_device).read_only
        info = self.ctl.info(self.name)
        old = {info.devno: (self.ctl.table(self.name), info.read_only)}
        while True:
            self._wait_clean(None if deadline is None else max(0.0, deadline - time.monotonic()))
            self.ctl.load(self.name, origin, readonly=readonly)
            try:
                self.ctl.suspend(self.name)
                clean = self.status().dirty == 0  # nothing is written while suspended
                if clean:
                    self.ctl.resume(self.name)
                    break
            except DMError as exc:
                left = put_back(self.ctl, list(old), old)
                if left:
                    raise RollbackError(exc, left) from exc
                raise
            except BaseException:
                put_back(self.ctl, list(old), old)
                raise
            self.ctl.clear(self.name)
            self.ctl.resume(self.name)
        for devno in (self.params.origin_device, self.params.cache_device, self.params.metadata_device):
            remove(self.ctl, devno, retry=retry)
