# SPDX-License-Identifier: LGPL-2.1-or-later
"""LIST_DEVICES, LIST_VERSIONS, GET_TARGET_VERSION, DEV_WAIT and ARM_POLL."""

from __future__ import annotations

import select
import threading

import pytest

import pydevmapper as dm
from tests.root.helpers import sysfs_dm_devices

pytestmark = pytest.mark.dm_root


def test_listing_many_devices_matches_the_kernel(dm_control, dm_prefix):
    names = [f"{dm_prefix}many-{i:04d}" for i in range(500)]
    made = []
    try:
        # With a table, so the kernel registers each disk in sysfs (a
        # table-less device has no gendisk yet).
        for i, name in enumerate(names):
            uuid = f"PYDMT-many-{i}" if i % 2 else None
            made.append(dm_control.create_device(name, "0 8 zero", uuid=uuid).devno)
        listed = {d.name: d for d in dm_control.list_devices()}
        kernel = sysfs_dm_devices()
        assert set(listed) == set(kernel)
        for name, (uuid, major, minor) in kernel.items():
            entry = listed[name]
            assert (entry.uuid, entry.major, entry.minor) == (uuid, major, minor)
            assert entry.event_nr == dm_control.info(name).event_nr
        # A second listing reuses the size that worked: same answer.
        assert {d.name for d in dm_control.list_devices()} == set(kernel)
        if dm_control.version() >= (4, 45, 0):
            prefixed = dm_control.list_devices(name_prefix=f"{dm_prefix}many-00")
            assert sorted(d.name for d in prefixed) == names[:100]
        else:  # 5.10: uuids came per device above; the kernel cannot filter
            with pytest.raises(dm.UnsupportedError, match=r"needs device-mapper interface 4\.45\.0"):
                dm_control.list_devices(name_prefix=f"{dm_prefix}many-00")
    finally:
        for devno in made:
            dm_control.remove(devno, retry=30.0)


def test_listing_without_uuids(dm_control, dm_make_device):
    dev = dm_make_device("0 8 zero", uuid="PYDMT-nouuid-check")
    entry = next(d for d in dm_control.list_devices(uuids=False) if d.name == dev.name)
    assert entry.uuid is None


def test_target_versions(dm_control, dm_make_device):
    dm_make_device("0 8 zero")
    targets = {t.name: t.version for t in dm_control.targets()}
    assert {"linear", "striped", "error", "zero"} <= set(targets)
    assert dm_control.target_version("linear") == dm.TargetVersion("linear", targets["linear"])
    with pytest.raises(dm.DMError):
        dm_control.target_version("no-such-target")


def test_wait_returns_at_once_for_a_stale_event_number(dm_make_device):
    dev = dm_make_device("0 8 zero")
    current = dev.info().event_nr
    # Any other number than the current one is "already happened".
    assert dev.wait(current + 1).event_nr == current


def test_arm_poll_wakes_on_a_global_event(dm_control, dm_name):
    dm_control.arm_poll()
    poller = select.poll()
    poller.register(dm_control.fileno(), select.POLLIN)
    assert poller.poll(0) == []
    with dm_control.create_device(dm_name, "0 8 zero"):
        assert poller.poll(5000)  # create raised a global event
    dm_control.arm_poll()
    assert poller.poll(0) == []


def test_control_is_shared_between_threads(dm_control, dm_make_device):
    dev = dm_make_device("0 8 zero")
    errors = []

    def worker():
        try:
            for _ in range(50):
                assert dm_control.info(dev.devno).name == dev.name
                dm_control.list_devices()
        except Exception as exc:  # noqa: BLE001 # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.fixture
def basic_dev(dm_basic_target, dm_loop_device, dm_make_device):
    return dm_make_device(dm.Table.single(1024, "basic_target", f"{dm_loop_device.devno_str} 0"))


@pytest.mark.dm_needs_basic_target
def test_wait_wakes_on_a_target_event(basic_dev, dm_control):
    before = basic_dev.info().event_nr
    woke = []
    # No race: an event raised before the wait starts makes event_nr differ
    # from `before`, and the wait returns at once.
    waiter = threading.Thread(target=lambda: woke.append(dm_control.wait(basic_dev.devno, before)))
    waiter.start()
    basic_dev.message("event")
    waiter.join(30)
    assert not waiter.is_alive()
    assert woke[0].event_nr == before + 1


@pytest.mark.dm_needs_basic_target
def test_arm_poll_wakes_on_a_target_event(basic_dev, dm_control):
    dm_control.arm_poll()
    poller = select.poll()
    poller.register(dm_control.fileno(), select.POLLIN)
    assert poller.poll(0) == []
    basic_dev.message("event")
    assert poller.poll(5000)
