# SPDX-License-Identifier: LGPL-2.1-or-later
"""The reliability tier, process side: every call refused without
CAP_SYS_ADMIN says so, and many calls, failing ones included, leak neither
descriptors nor memory."""

from __future__ import annotations

import os
import pickle

import pytest

import pydevmapper as dm
from tests.root.helpers import NOBODY, record_cases

pytestmark = pytest.mark.dm_root


def _in_child_as_nobody(action):
    """action() in a forked child that dropped to nobody; its return value
    (pickled through a pipe) or the exception it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = action()
        except BaseException as exc:  # noqa: BLE001 - handed to the parent
            result, code = exc, 1
        finally:
            try:
                with os.fdopen(write_end, "wb") as out:
                    pickle.dump(result, out)
            finally:
                os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = pickle.load(pipe)
    os.waitpid(pid, 0)
    if isinstance(result, BaseException):
        raise result
    return result


def test_every_call_without_cap_sys_admin_is_a_permission_error(dm_control, dm_make_device, dm_prefix):
    """The control node was opened as root; the kernel still refuses each
    command of a process without CAP_SYS_ADMIN, and the error says what is
    needed."""
    dev = dm_make_device("0 64 zero", name=f"{dm_prefix}live")
    name = dev.name
    operations = {
        "list_devices": lambda c: c.list_devices(), "targets": lambda c: c.targets(),
        "target_version": lambda c: c.target_version("zero"),
        "create": lambda c: c.create(f"{dm_prefix}new"),
        "create_device": lambda c: c.create_device(f"{dm_prefix}new", "0 8 zero"),
        "remove": lambda c: c.remove(name), "remove_all": lambda c: c.remove_all(),
        "rename": lambda c: c.rename(name, f"{dm_prefix}other"),
        "set_uuid": lambda c: c.set_uuid(name, "PYDMT-x"),
        "suspend": lambda c: c.suspend(name), "resume": lambda c: c.resume(name),
        "info": lambda c: c.info(name), "wait": lambda c: c.wait(name, event_nr=0),
        "load": lambda c: c.load(name, "0 8 zero"), "clear": lambda c: c.clear(name),
        "deps": lambda c: c.deps(name), "table": lambda c: c.table(name),
        "status": lambda c: c.status(name), "message": lambda c: c.message(name, 0, "x"),
        "set_geometry": lambda c: c.set_geometry(name, 1, 1, 1, 0),
        "reload": lambda c: c.reload(name, "0 8 zero"), "wipe_table": lambda c: c.wipe_table(name),
        "arm_poll": lambda c: c.arm_poll(),
        "set_read_ahead": lambda c: c.set_read_ahead(dev.devno, 256),
    }
    if dm_control.version() >= (4, 45, 0):
        operations["ima_measurement"] = lambda c: c.ima_measurement(name)
    before = (dev.info(), dev.table())

    def action():
        outcomes = {}
        for what, op in operations.items():
            try:
                op(shared)
            except dm.DMPermissionError as exc:
                outcomes[what] = "CAP_SYS_ADMIN" in str(exc) and exc.command is not None
            except BaseException as exc:  # noqa: BLE001 - reported by name
                outcomes[what] = f"{type(exc).__name__}: {exc}"
            else:
                outcomes[what] = "accepted"
        return outcomes

    shared = dm.Control(udev_sync=False)  # opened as root, used as nobody
    try:
        outcomes = _in_child_as_nobody(action)
    finally:
        shared.close()
    wrong = {k: v for k, v in outcomes.items() if v is not True}
    record_cases("without CAP_SYS_ADMIN", len(operations), len(operations) - len(wrong))
    assert not wrong, wrong
    assert (dev.info(), dev.table()) == before
    assert not dm_control.exists(f"{dm_prefix}new") and not dm_control.exists(f"{dm_prefix}other")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_no_descriptor_or_memory_leaks_over_many_calls(dm_control, dm_make_device, dm_prefix):
    dev = dm_make_device("0 64 zero", name=f"{dm_prefix}leak")

    def calls(n):
        for _ in range(n // 5):
            dm_control.info(dev.devno)
            dm_control.table(dev.devno)
            dm_control.status(dev.devno)
            for bad in ("pydmt-no-such-device", "x" * 200):
                try:
                    dm_control.info(bad)
                except (dm.DeviceNotFoundError, dm.ValidationError):
                    pass

    calls(1000)  # warm: caches, the buffer's size hints, lazy imports
    fds, rss = _fds(), _rss_kib()
    for _ in range(20):  # lifecycles: cookies, nodes and Controls of their own
        with dm.Control() as ctl:
            ctl.create_device(f"{dm_prefix}cycle", "0 8 zero")
            ctl.remove(f"{dm_prefix}cycle", retry=30.0)
    calls(1000)
    assert _fds() == fds
    calls(10_000)
    grown = _rss_kib() - rss
    record_cases("leaks (descriptors over 1,000 calls, memory over 10,000)", 2,
                 int(_fds() == fds) + int(grown < 2048))
    assert _fds() == fds
    assert grown < 2048, f"RSS grew by {grown} KiB over 10,000 calls"
