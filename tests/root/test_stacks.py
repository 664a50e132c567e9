# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stack operations against the real kernel: a thin pool on linear metadata
and data devices with two volumes, and a chain of three linear devices.
The order of the commands is checked without a kernel in
tests/unit/test_stacks.py; here the kernel's own rules decide (a device
is busy while a table uses it or a program holds it open; a table longer
than the device under it is refused at resume)."""

from __future__ import annotations

import os

import pytest

import pydevmapper as dm
from pydevmapper import targets as t
from tests.root.helpers import dm_block_node
from tests.root.target_helpers import MIB, read, write

pytestmark = pytest.mark.dm_root


def _ours(ctl, prefix):
    return sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(prefix))


def _state(ctl, names):
    """Each device's live table, inactive table flag and suspension."""
    return {n: (str(ctl.table(n)), ctl.info(n).inactive_table, ctl.info(n).suspended) for n in names}


@pytest.fixture
def thin_stack(dm_make_loop, dm_make_device, dm_name):
    """<name>-meta and <name>-data (linear over loop devices), <name>-pool
    on them, <name>-vol1 and <name>-vol2 on the pool."""
    meta_loop, data_loop = dm_make_loop(4), dm_make_loop(32)
    meta = dm_make_device(dm.Table.single(4 * MIB, t.Linear(meta_loop.devno, 0)), f"{dm_name}-meta")
    data = dm_make_device(dm.Table.single(32 * MIB, t.Linear(data_loop.devno, 0)), f"{dm_name}-data")
    pool = dm_make_device(dm.Table.single(32 * MIB, t.ThinPool(meta.devno, data.devno, 128, 16)),
                          f"{dm_name}-pool")
    vols = []
    for n in (1, 2):
        pool.message(t.ThinPool.create_thin(n))
        vols.append(dm_make_device(dm.Table.single(16 * MIB, t.Thin(pool.devno, n)),
                                   f"{dm_name}-vol{n}"))
    return meta, data, pool, vols


@pytest.fixture
def chain(dm_make_loop, dm_make_device, dm_name):
    """<name>-low (linear over the first 16 MiB of a loop device),
    <name>-mid on it, <name>-top on that."""
    loop = dm_make_loop(32)
    low = dm_make_device(dm.Table.single(16 * MIB, t.Linear(loop.devno, 0)), f"{dm_name}-low")
    mid = dm_make_device(dm.Table.single(16 * MIB, t.Linear(low.devno, 0)), f"{dm_name}-mid")
    top = dm_make_device(dm.Table.single(16 * MIB, t.Linear(mid.devno, 0)), f"{dm_name}-top")
    return loop, low, mid, top


def test_thin_stack_members_and_removal(dm_control, dm_name, thin_stack):
    meta, data, pool, (vol1, vol2) = thin_stack
    name = {d.devno: d.name for d in (meta, data, pool, vol1, vol2)}  # read while they exist
    ctl = dm_control
    # The pool first; under it the kernel's order of its table's devices.
    members = dm.stack_members(ctl, pool.name)
    assert members[0] == pool.devno and sorted(members[1:]) == sorted([meta.devno, data.devno])
    assert dm.stack_members(ctl, vol1.name) == [vol1.devno]  # the pool is shared
    before = _ours(ctl, dm_name)
    with pytest.raises(dm.DeviceBusyError, match=f"used by {name[vol1.devno]}, {name[vol2.devno]}"):
        dm.remove_stack(ctl, pool.name)
    assert _ours(ctl, dm_name) == before
    write(vol2, 0, b"\x5a" * 65536)
    assert dm.remove_stack(ctl, name[vol1.devno]) == [name[vol1.devno]]
    assert read(dm_block_node(vol2.devno), 0, 65536) == b"\x5a" * 65536
    # vol2 is now the pool's only user: its stack is the whole of it.
    assert dm.remove_stack(ctl, name[vol2.devno]) == [name[d] for d in [vol2.devno, *members]]
    assert _ours(ctl, dm_name) == []


def test_suspend_and_resume_a_stack_in_order(dm_control, chain):
    _, low, mid, top = chain
    ctl = dm_control
    write(top, 0, b"\x11" * 4096)
    states = dm.suspend_stack(ctl, top.name)
    assert [s.name for s in states] == [top.name, mid.name, low.name]
    assert all(ctl.info(d.name).suspended for d in (low, mid, top))
    states = dm.resume_stack(ctl, top.name)
    assert [s.name for s in states] == [low.name, mid.name, top.name]
    assert not any(ctl.info(d.name).suspended for d in (low, mid, top))
    assert read(dm_block_node(top.devno), 0, 4096) == b"\x11" * 4096


def test_remove_stack_leaves_a_lower_device_a_program_holds(dm_control, dm_name, chain):
    low, mid, top = (d.name for d in chain[1:])
    ctl = dm_control
    fd = os.open(dm_block_node(chain[2].devno), os.O_RDONLY)
    try:
        assert dm.remove_stack(ctl, top, retry=10.0) == [top]
        assert _ours(ctl, dm_name) == sorted([low, mid])
    finally:
        os.close(fd)
    assert dm.remove_stack(ctl, mid, retry=30.0) == [mid, low]
    assert _ours(ctl, dm_name) == []


def test_remove_stack_of_an_open_device_removes_nothing(dm_control, dm_name, chain):
    _, low, mid, top = chain
    fd = os.open(dm_block_node(top.devno), os.O_RDONLY)
    try:
        with pytest.raises(dm.DeviceBusyError):
            dm.remove_stack(dm_control, top.name, retry=0.5)
    finally:
        os.close(fd)
    assert _ours(dm_control, dm_name) == sorted([low.name, mid.name, top.name])


def test_reload_stack_swaps_every_table(dm_control, chain):
    loop, low, mid, top = chain
    ctl = dm_control
    fd = os.open(loop.path, os.O_WRONLY)
    try:
        os.pwrite(fd, b"\x22" * 4096, 16 * MIB * 512)  # what low will map next
        os.fsync(fd)
    finally:
        os.close(fd)
    new = {low.name: dm.Table.single(16 * MIB, t.Linear(loop.devno, 16 * MIB)),
           mid.name: dm.Table.single(8 * MIB, t.Linear(low.devno, 0)),
           top.name: dm.Table.single(8 * MIB, t.Linear(mid.devno, 0))}
    states = dm.reload_stack(ctl, new)
    assert [s.name for s in states] == [low.name, mid.name, top.name]
    assert {n: str(ctl.table(n)) for n in new} == {n: str(tb) for n, tb in new.items()}
    assert not any(ctl.info(n).suspended or ctl.info(n).inactive_table for n in new)
    assert read(dm_block_node(top.devno), 0, 4096) == b"\x22" * 4096


def test_reload_stack_refused_at_resume_puts_the_old_tables_back(dm_control, chain):
    loop, low, mid, top = chain
    ctl = dm_control
    write(top, 0, b"\x33" * 4096)
    names = [low.name, mid.name, top.name]
    before = _state(ctl, names)
    # low's new table goes live first; mid's is longer than low and the
    # kernel refuses it at resume: low must get its old table back.
    new = {low.name: dm.Table.single(16 * MIB, t.Linear(loop.devno, 16 * MIB)),
           mid.name: dm.Table.single(32 * MIB, t.Linear(low.devno, 0)),
           top.name: dm.Table.single(16 * MIB, t.Linear(mid.devno, 0))}
    with pytest.raises(dm.DMError) as raised:
        dm.reload_stack(ctl, new)
    assert raised.value.command == "DM_DEV_SUSPEND" and raised.value.device == str(mid.devno)
    assert _state(ctl, names) == before
    assert read(dm_block_node(top.devno), 0, 4096) == b"\x33" * 4096


@pytest.mark.parametrize("how", ["reload", "reload_stack"])
def test_a_table_refused_after_the_swap_is_swapped_back(dm_control, dm_name, thin_stack, how):
    """A pool shorter than its metadata records loads and is swapped in;
    only then does the pool's resume hook refuse it, and the kernel leaves
    the new table live on a suspended device.  The old one must be live
    again and the volumes answer with their data."""
    meta, data, pool, (vol1, vol2) = thin_stack
    ctl = dm_control
    write(vol1, 0, b"\x44" * 65536)
    names = [meta.name, data.name, pool.name, vol1.name, vol2.name]
    before = _state(ctl, names)
    short = dm.Table.single(16 * MIB, t.ThinPool(meta.devno, data.devno, 128, 16))
    with pytest.raises(dm.DMError) as raised:
        if how == "reload":
            pool.reload(short)
        else:
            dm.reload_stack(ctl, {pool.name: short,
                                  vol2.name: dm.Table.single(8 * MIB, t.Thin(pool.devno, 2))})
    assert type(raised.value) is dm.DMError  # put back: not a RollbackError
    assert raised.value.command == "DM_DEV_SUSPEND" and "too small" in (raised.value.kernel_message or "")
    assert _state(ctl, names) == before
    assert read(dm_block_node(vol1.devno), 0, 65536) == b"\x44" * 65536


def test_reload_stack_with_a_bad_table_changes_nothing(dm_control, chain):
    _, low, mid, top = chain
    names = [low.name, mid.name, top.name]
    before = _state(dm_control, names)
    with pytest.raises(dm.InvalidTableError):
        dm.reload_stack(dm_control, {top.name: "0 8 zero", mid.name: "0 8 no-such-target"})
    assert _state(dm_control, names) == before


def _declared(name, meta_loop, data_loop, data_offset=0):
    """A thin volume on a pool on linear meta and data devices, as plain data."""
    return {"name": f"{name}-vol", "table": f"0 {8 * MIB} thin {{{name}-pool}} 1", "children": [
        {"name": f"{name}-pool", "table": f"0 {16 * MIB} thin-pool {{{name}-meta}} {{{name}-data}} 128 0",
         "messages": ["create_thin 1"], "children": [
             {"name": f"{name}-meta", "table": f"0 {4 * MIB} linear {meta_loop.devno_str} 0"},
             {"name": f"{name}-data", "table": f"0 {16 * MIB} linear {data_loop.devno_str} {data_offset}"}]}]}


@pytest.fixture
def declared(dm_control, dm_make_loop, dm_name):
    from pydevmapper.testing.sweep import leftover_devices, remove_devices

    meta_loop, data_loop = dm_make_loop(4), dm_make_loop(32)
    yield lambda offset=0: _declared(dm_name, meta_loop, data_loop, offset)
    assert remove_devices(dm_control, leftover_devices(dm_control, dm_name)) == []


def test_ensure_is_idempotent_and_completes_an_interrupted_stack(dm_control, dm_name, declared):
    ctl = dm_control
    done = dm.ensure_stack(ctl, declared())
    names = [f"{dm_name}-{n}" for n in ("meta", "data", "pool", "vol")]
    assert done.created == names
    vol = ctl.device(f"{dm_name}-vol")
    write(vol, 0, b"\x44" * 65536)
    again = dm.ensure_stack(ctl, declared())
    assert (again.created, again.completed, again.adopted) == ([], [], names)
    assert again.devices == done.devices
    # A crash half-way through making it again: the volume created but not
    # loaded, the pool left suspended.
    ctl.remove(f"{dm_name}-vol", retry=30.0)
    ctl.suspend(f"{dm_name}-pool")
    ctl.create(f"{dm_name}-vol")
    fixed = dm.ensure_stack(ctl, declared())
    assert (fixed.created, fixed.completed, fixed.adopted) == ([], names[2:], names[:2])
    assert read(dm_block_node(fixed.devices[f"{dm_name}-vol"]), 0, 65536) == b"\x44" * 65536


def test_ensure_gives_a_pool_cut_short_before_its_table_its_table_and_messages(dm_control, dm_name,
                                                                               declared):
    ctl = dm_control
    spec = declared()
    pool = spec["children"][0]
    for child in pool["children"]:
        dm.ensure_stack(ctl, child)
    ctl.create(pool["name"])
    done = dm.ensure_stack(ctl, spec)
    # The volume's table loads only if create_thin 1 reached the pool.
    assert (done.created, done.completed) == ([f"{dm_name}-vol"], [f"{dm_name}-pool"])
    assert ctl.status(f"{dm_name}-vol")[0].type == "thin"


def test_ensure_refuses_a_conflicting_stack_before_changing_anything(dm_control, dm_name, declared):
    ctl = dm_control
    dm.ensure_stack(ctl, declared())
    before = {n: str(ctl.table(n)) for n in _ours(ctl, dm_name)}
    with pytest.raises(dm.StackConflictError) as raised:
        dm.ensure_stack(ctl, declared(offset=MIB))
    [difference] = raised.value.differences
    assert difference.startswith(f"{dm_name}-data: target 0 is `0 {16 * MIB} linear")
    assert {n: str(ctl.table(n)) for n in _ours(ctl, dm_name)} == before


def test_teardown_removes_exactly_the_declared_stack(dm_control, dm_name, declared, dm_make_device):
    ctl = dm_control
    done = dm.ensure_stack(ctl, declared())
    pool = done.devices[f"{dm_name}-pool"]
    ctl.message(pool, 0, "create_thin 2")
    other = dm_make_device(dm.Table.single(8 * MIB, t.Thin(pool, 2)), f"{dm_name}-other")
    with pytest.raises(dm.DeviceBusyError, match=f"used by {dm_name}-other"):
        dm.teardown_stack(ctl, declared())
    assert len(_ours(ctl, dm_name)) == 5
    ctl.remove(other.devno, retry=30.0)
    fd = os.open(dm_block_node(done.devices[f"{dm_name}-data"]), os.O_RDONLY)
    try:
        with pytest.raises(dm.DeviceBusyError, match=f"{dm_name}-data.*open 1 time"):
            dm.teardown_stack(ctl, declared(), retry=0.5)
    finally:
        os.close(fd)
    assert len(_ours(ctl, dm_name)) == 4
    removed = dm.teardown_stack(ctl, declared())
    assert removed[:2] == [f"{dm_name}-vol", f"{dm_name}-pool"]
    assert sorted(removed[2:]) == [f"{dm_name}-data", f"{dm_name}-meta"]
    assert _ours(ctl, dm_name) == []
