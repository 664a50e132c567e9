# SPDX-License-Identifier: LGPL-2.1-or-later
"""The benchmark's contenders do what they are timed for, on the real kernel.

A contender that silently did less (a wrong request, the wrong device, a
lifecycle that leaves its device behind) would make the ratio table lie.
Each in-process contender runs every operation here; the two floors are
checked against the api's view of the same device.
"""

from __future__ import annotations

import os

import pytest

import pydevmapper as dm
from pydevmapper import records, udev
from pydevmapper.testing import kernel
from tests.bench import contenders as cn

pytestmark = [pytest.mark.dm_root, pytest.mark.dm_needs_basic_target]

SINGLE = ("version", "info", "table", "status", "message", "list_10")


@pytest.fixture
def spec(dm_basic_target, dm_loop_device, dm_make_device, dm_prefix):
    linear = dm_make_device(f"0 2048 linear {dm_loop_device.devno_str} 0")
    basic = dm_make_device(f"0 2048 basic_target {dm_loop_device.devno_str} 0")
    lifecycle = f"{dm_prefix}bench-lc"
    yield cn.Spec(linear.name, basic.name, "stats", lifecycle,
                  f"0 2048 linear {dm_loop_device.devno_str} 0")
    with dm.Control(udev_sync=False) as ctl:
        if ctl.exists(lifecycle):  # a failed lifecycle's leftover
            ctl.remove(lifecycle, retry=30.0)


@pytest.fixture
def pyfloor():
    floor = cn.PyFloor()
    yield floor
    floor.close()


@pytest.fixture
def c_floor():
    floor = cn.CFloor()
    if not floor.path.exists():
        reason = f"{floor.path} is not built (make -C csrc floor)"
        if kernel.require_kernel():
            pytest.fail(reason)
        pytest.skip(reason)
    return floor


@pytest.fixture
def libdm():
    try:
        return cn.LibDm()
    except cn.Unavailable as exc:
        pytest.fail(f"libdevmapper is part of the benchmark's set-up: {exc}")


@pytest.fixture
def api():
    a = cn.Api()
    yield a
    a.close()


def lifecycle_ops():
    return ["lifecycle_nosync", "lifecycle_udev"] if udev.sync_available() else ["lifecycle_nosync"]


@pytest.mark.parametrize("name", ["api", "pyfloor", "libdm"])
def test_every_operation_runs_and_a_lifecycle_leaves_nothing(name, spec, pyfloor, libdm, api,
                                                              dm_control):
    c = {"api": api, "pyfloor": pyfloor, "libdm": libdm}[name]
    for op in SINGLE:
        fn = c.op(op, spec)
        fn()
        fn()
    for op in lifecycle_ops():
        fn = c.op(op, spec)
        fn()
        fn()
        assert not dm_control.exists(spec.lifecycle_name)
        assert not os.path.lexists(dm_control.node_path(spec.lifecycle_name))


@pytest.mark.udev
@pytest.mark.skipif(not udev.sync_available(),
                    reason="needs udevd with 95-dm-notify.rules (udev boot)")
def test_pyfloor_waits_for_udev_and_leaves_no_cookie(spec, dm_control):
    """The udev floor waits for udev as the api does, or it would time less
    than the work: the node is udev's by the time the resume returns."""
    floor = cn.PyFloor()
    try:
        floor.op("lifecycle_udev", spec)  # makes the cookie
        ck = floor._cookie
        event_nr = udev.PRIMARY_SOURCE << udev.FLAGS_SHIFT | ck.base
        create, load, resume, remove = floor._lifecycle_calls(spec, event_nr)
        create()
        try:
            load()
            ck.around(resume)
            assert udev._getval(ck.semid) == 0  # udev completed it
            assert os.path.exists(dm_control.node_path(spec.lifecycle_name))
            assert ck.base in {c.cookie & 0xFFFF for c in udev.list_cookies()}
        finally:
            cn._busy_retry(lambda: ck.around(remove))
        assert not os.path.lexists(dm_control.node_path(spec.lifecycle_name))
    finally:
        floor.close()
    assert ck.base not in {c.cookie & 0xFFFF for c in udev.list_cookies()}


def test_pyfloor_asks_about_the_same_device_as_the_api(spec, pyfloor, dm_control):
    info = dm_control.info(spec.linear)
    reply = pyfloor.op("info", spec)()
    fields = records.HEADER.unpack_from(reply)
    # version x3, data_size, data_start, target_count, open_count, flags, event_nr, dev, name, uuid
    assert fields[9] == os.makedev(info.major, info.minor)
    assert fields[10].rstrip(b"\0").decode() == spec.linear
    assert fields[5] == info.target_count == 1
    # The table reply carries the one linear target.
    reply = pyfloor.op("table", spec)()
    assert records.HEADER.unpack_from(reply)[5] == 1
    assert spec.lifecycle_table.split(None, 3)[3].encode() in bytes(reply)


def test_floors_send_the_reply_buffer_the_api_settled_on(spec, pyfloor, c_floor):
    spec.reply_size["table"] = 1024
    reply = pyfloor.op("table", spec)()
    assert len(reply) == 1024
    assert spec.lifecycle_table.split(None, 3)[3].encode() in bytes(reply)
    # Below the reply's size the C floor grows its buffer as the api does.
    spec.reply_size["table"] = 320
    assert len(c_floor.measure("table", spec, 2, warmup=0)) == 2


def test_pyfloor_lists_every_device(spec, pyfloor, dm_control):
    reply = pyfloor.op("list_10", spec)()
    data_start = records.HEADER.unpack_from(reply)[4]
    listed = {d.name for d in records.decode_name_list(bytes(reply[data_start:]), True)}
    assert {d.name for d in dm_control.list_devices(uuids=False)} <= listed


def test_c_floor_runs_every_operation(spec, c_floor):
    for op in (*SINGLE, "lifecycle_nosync"):
        times = c_floor.measure(op, spec, 3, warmup=1)
        assert len(times) == 3 and all(t > 0 for t in times)
    with dm.Control(udev_sync=False) as ctl:
        assert not ctl.exists(spec.lifecycle_name)
