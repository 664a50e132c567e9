# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stack operations on a stack LVM made: a volume group on a loop device
with a linear volume and its (old-style) snapshot, and a thin pool with two
thin volumes.  Tearing down one stack removes exactly its mapped devices,
whatever LVM named them; the others keep running, and LVM still agrees
with what is left (it reactivates what was removed, with its data, and
deactivates the rest)."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

import pydevmapper as dm
from pydevmapper import udev
from pydevmapper.stacks import DeviceSpec
from pydevmapper.testing.sweep import remove_devices
from tests.root.helpers import dm_block_node
from tests.root.target_helpers import direct_read, write

pytestmark = pytest.mark.dm_root


def _lvm_command(loop, *args: str) -> list[str]:
    """An LVM command that sees only the test's loop device.  Without udevd,
    LVM (through libdm) makes its /dev entries itself."""
    extra = [] if udev.sync_available() else ["--config", "activation { udev_sync = 0 udev_rules = 0 }"]
    return ["lvm", args[0], "--devices", loop.path, *extra, *args[1:]]


_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}


def _lvm(loop, *args: str) -> str:
    done = subprocess.run(_lvm_command(loop, *args), env=_ENV, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, f"lvm {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    return done.stdout


def _ours(ctl, vg):
    return {d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(f"{vg}-")}


@pytest.fixture
def volume_group(dm_control, dm_make_loop):
    """A volume group of one 64 MiB loop device (1 MiB extents); removed
    afterwards with whatever mapped devices of it are left."""
    loop = dm_make_loop(64)
    vg = f"pydmt_{secrets.token_hex(3)}"
    _lvm(loop, "pvcreate", "-q", loop.path)
    _lvm(loop, "vgcreate", "-q", "-s", "1m", vg, loop.path)
    try:
        yield vg, loop
    finally:
        for args in (["vgremove", "-q", "-ff", vg], ["pvremove", "-q", "-ff", loop.path]):
            subprocess.run(_lvm_command(loop, *args), env=_ENV, capture_output=True, timeout=300, check=False)
        if udev.sync_available():
            # LVM's writes make udev probe the loop device (and pvscan it):
            # let that end, so the loop device is not open as it detaches.
            subprocess.run(["udevadm", "settle", "--timeout=120"], check=False, timeout=180)
        left = sorted(_ours(dm_control, vg))
        remove_devices(dm_control, left)
        assert left == [], f"left behind: {left}"


def test_an_lvm_made_stack_is_torn_down_exactly_and_lvm_agrees(dm_control, volume_group):
    ctl = dm_control
    vg, loop = volume_group
    for args in (["-L", "8m", "-n", "lin", vg],
                 ["--type", "thin-pool", "-L", "16m", "-n", "pool", vg],
                 ["-V", "16m", "-T", f"{vg}/pool", "-n", "thin1"],
                 ["-V", "16m", "-T", f"{vg}/pool", "-n", "thin2"],
                 ["-s", "-L", "4m", "-n", "snap", f"{vg}/lin"]):
        _lvm(loop, "lvcreate", "-q", "-y", *args)

    def d(lv):
        return f"{vg}-{lv}"
    write(ctl.device(d("thin1")), 0, b"\x5a" * 65536)
    write(ctl.device(d("lin")), 0, b"\xa5" * 65536)
    everything = _ours(ctl, vg)
    pool_stack = {d("pool-tpool"), d("pool_tmeta"), d("pool_tdata")} | ({d("pool")} & everything)
    snap_stack = {d("snap"), d("snap-cow")}
    assert {d("thin1"), d("thin2"), d("lin"), d("lin-real")} | pool_stack | snap_stack == everything

    # One thin volume: only it goes; the pool beneath is held by the other.
    assert dm.remove_stack(ctl, d("thin1")) == [d("thin1")]
    assert _ours(ctl, vg) == everything - {d("thin1")}
    # The pool declared as a stack is in use by volumes it does not declare:
    # refused, nothing removed.
    pool = DeviceSpec(d("pool-tpool"), "", children=(DeviceSpec(d("pool_tmeta"), ""),
                                                     DeviceSpec(d("pool_tdata"), "")))
    with pytest.raises(dm.DeviceBusyError, match=d("thin2")):
        dm.teardown_stack(ctl, pool)
    assert _ours(ctl, vg) == everything - {d("thin1")}
    # The last volume, then the pool declared with its metadata and data
    # (under LVM's read-only pool device, when it made one): top first.
    assert dm.remove_stack(ctl, d("thin2")) == [d("thin2")]
    if d("pool") in everything:
        pool = DeviceSpec(d("pool"), "", children=(pool,))
    removed = dm.teardown_stack(ctl, pool)
    assert removed[0] == pool.name and set(removed) == pool_stack
    # The snapshot and its COW device; the origin and its -real stay, with its data.
    assert dm.remove_stack(ctl, d("snap")) == [d("snap"), d("snap-cow")]
    assert _ours(ctl, vg) == {d("lin"), d("lin-real")}
    assert direct_read(dm_block_node(ctl.info(d("lin")).devno), 0, 65536) == b"\xa5" * 65536

    # LVM brings back what was removed (its pool metadata closed cleanly:
    # thin_check runs at the pool's activation) and deactivates the rest.
    _lvm(loop, "lvchange", "-q", "-ay", f"{vg}/thin1")
    assert direct_read(dm_block_node(ctl.info(d("thin1")).devno), 0, 65536) == b"\x5a" * 65536
    _lvm(loop, "vgchange", "-q", "-an", vg)
    assert _ours(ctl, vg) == set()
