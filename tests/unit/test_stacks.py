# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stack operations without a kernel: the order of the commands sent and
what is put back when one fails, against a small model of device-mapper's
rules (a device is busy while open; a table opens the devices it names; a
suspended device's users are blocked).  The kernel's side is proven in
tests/root/test_stacks.py."""

from __future__ import annotations

import errno
import logging
from typing import Any, Dict, List, Optional, Tuple

import pytest

import pydevmapper as dm
from pydevmapper import operations
from pydevmapper.errors import DeviceBusyError, DeviceNotFoundError, DMError, InvalidTableError, RollbackError
from pydevmapper.flags import DMFlag
from pydevmapper.tables import Table
from pydevmapper.testing.sweep import remove_devices
from pydevmapper.types import DeviceInfo, DevNo, ListedDevice


def _deps(table: Optional[Table]) -> List[DevNo]:
    found: List[DevNo] = []
    for target in table or []:
        for word in target.params.split():
            if ":" in word:
                major, minor = word.split(":")
                if DevNo(int(major), int(minor)) not in found:
                    found.append(DevNo(int(major), int(minor)))
    return found


class FakeDM:
    """Mapped devices as the kernel keeps them, and every command sent."""

    def __init__(self) -> None:
        self.devices: Dict[DevNo, dict] = {}
        self.calls: List[Tuple[str, str]] = []
        self.fail: Dict[Tuple[str, str], Any] = {}
        self.outside_opens: Dict[str, int] = {}
        #: resumes that swap the new table in, then fail (as a target's
        #: preresume hook refusing, after the kernel swapped tables)
        self.fail_after_swap: Dict[str, DMError] = {}

    def add(self, name: str, table: str, *, suspended: bool = False) -> DevNo:
        devno = DevNo(253, max([d.minor for d in self.devices] + [-1]) + 1)
        self.devices[devno] = {"name": name, "live": Table.parse(table), "inactive": None,
                               "suspended": suspended, "ro": False, "inactive_ro": False}
        return devno

    def _find(self, device) -> Tuple[DevNo, dict]:
        for devno, dev in self.devices.items():
            if device == devno or device == dev["name"]:
                return devno, dev
        raise DeviceNotFoundError(errno.ENXIO, "DM_DEV_STATUS", str(device), None)

    def _opens(self, devno: DevNo) -> int:
        # One open per mapped device that uses it, shared by its two tables.
        count = self.outside_opens.get(self.devices[devno]["name"], 0)
        for dev in self.devices.values():
            count += devno in _deps(dev["live"]) + _deps(dev["inactive"])
        return count

    def _step(self, command: str, device) -> Tuple[DevNo, dict]:
        devno, dev = self._find(device)
        self.calls.append((command, dev["name"]))
        planned = self.fail.get((command, dev["name"]))
        if isinstance(planned, list):  # the n-th such command fails: [None, error]
            error = planned.pop(0)
            if not planned:
                del self.fail[command, dev["name"]]
            if error is not None:
                raise error
        elif planned is not None:  # the next one fails
            raise self.fail.pop((command, dev["name"]))
        return devno, dev

    # -- what the stack operations call -------------------------------------
    def list_devices(self, uuids: bool = True) -> List[ListedDevice]:
        return [ListedDevice(d["name"], n.major, n.minor, None, None) for n, d in self.devices.items()]

    def info(self, device, inactive: bool = False) -> DeviceInfo:
        devno, dev = self._find(device)
        flags = DMFlag(0)
        if dev["live"] is not None:
            flags |= DMFlag.ACTIVE_PRESENT
        if dev["inactive"] is not None:
            flags |= DMFlag.INACTIVE_PRESENT
        if dev["suspended"]:
            flags |= DMFlag.SUSPEND
        if dev["inactive_ro" if inactive else "ro"]:
            flags |= DMFlag.READONLY
        return DeviceInfo(dev["name"], dev.get("uuid", ""), devno.major, devno.minor, self._opens(devno), 0, 1,
                          flags)

    def deps(self, device, inactive: bool = False) -> List[DevNo]:
        _, dev = self._find(device)
        return _deps(dev["inactive" if inactive else "live"])

    def table(self, device, inactive: bool = False) -> Optional[Table]:
        return self._find(device)[1]["inactive" if inactive else "live"]

    # -- what ensure_stack adds ----------------------------------------------
    class channel:
        @staticmethod
        def kmsg_cursor():
            return None

    def check_create(self, name: str) -> None:
        pass

    def create(self, name: str, uuid=None, devno=None, node=False, cursor=None) -> DeviceInfo:
        self.calls.append(("create", name))
        if ("create", name) in self.fail:
            raise self.fail.pop(("create", name))
        new = DevNo(253, max([d.minor for d in self.devices] + [-1]) + 1)
        self.devices[new] = {"name": name, "live": None, "inactive": None, "suspended": False,
                             "uuid": uuid or "", "ro": False, "inactive_ro": False}
        return self.info(new)

    def message(self, device, sector: int, message: str) -> None:
        self._step(f"message {message}", device)

    def _drop_inactive(self, dev: dict) -> None:
        # A thin volume's inactive table dropped while its pool is
        # suspended leaves the volume unable to resume (the pool resumes
        # only the volumes' tables it still knows).
        for dep in _deps(dev["inactive"]):
            assert dep not in self.devices or not self.devices[dep]["suspended"], \
                f"{dev['name']}'s inactive table dropped over a suspended device"

    def load(self, device, table, readonly: bool = False, cursor=None) -> DeviceInfo:
        _, dev = self._step("load", device)
        self._drop_inactive(dev)
        dev["inactive"], dev["inactive_ro"] = table, readonly
        return self.info(device)

    def clear(self, device) -> DeviceInfo:
        _, dev = self._step("clear", device)
        self._drop_inactive(dev)
        dev["inactive"] = None
        return self.info(device)

    def suspend(self, device, noflush: bool = False, nolockfs: bool = False) -> DeviceInfo:
        devno, dev = self._step("suspend", device)
        # The order the stack needs: a device is suspended only once every
        # device using it is.
        for other in self.devices.values():
            assert not (devno in _deps(other["live"]) and not other["suspended"]), \
                f"{dev['name']} suspended under running {other['name']}"
        dev["suspended"] = True
        return self.info(device)

    def resume(self, device, noflush: bool = False, nolockfs: bool = False, cursor=None) -> DeviceInfo:
        devno, dev = self._step("resume", device)
        table = dev["inactive"] or dev["live"]
        for dep in _deps(table):
            assert dep not in self.devices or not self.devices[dep]["suspended"], \
                f"{dev['name']} resumed onto a suspended device"
        if dev["inactive"] is not None:
            dev["live"], dev["inactive"] = dev["inactive"], None
            dev["ro"] = dev["inactive_ro"]
            dev["suspended"] = True  # a running device is suspended for the swap
        if dev["name"] in self.fail_after_swap:  # once
            raise self.fail_after_swap.pop(dev["name"])
        dev["suspended"] = False
        return self.info(device)

    def remove(self, device, deferred: bool = False, retry: float = 0.0) -> None:
        devno, dev = self._step("remove", device)
        if self._opens(devno):
            raise DeviceBusyError(errno.EBUSY, "DM_DEV_REMOVE", dev["name"], None)
        del self.devices[devno]

    def names(self) -> List[str]:
        return sorted(d["name"] for d in self.devices.values())

    def state(self) -> Dict[str, tuple]:
        return {d["name"]: (str(d["live"]), d["inactive"], d["suspended"], d["ro"])
                for d in self.devices.values()}


LOOP = "7:0"


@pytest.fixture
def thin() -> FakeDM:
    """A thin volume on a pool on its metadata and data devices (over a
    loop device), a second volume on the same pool, and an unrelated zero."""
    k = FakeDM()
    meta = k.add("meta", f"0 8 linear {LOOP} 0")
    data = k.add("data", f"0 64 linear {LOOP} 8")
    pool = k.add("pool", f"0 64 thin-pool {meta} {data} 128 0")
    k.add("vol", f"0 64 thin {pool} 1")
    k.add("vol2", f"0 64 thin {pool} 2")
    k.add("other", "0 8 zero")
    return k


@pytest.fixture
def chain() -> FakeDM:
    """top on mid on low (on a loop device), nothing else."""
    k = FakeDM()
    low = k.add("low", f"0 64 linear {LOOP} 0")
    mid = k.add("mid", f"0 64 linear {low} 0")
    k.add("top", f"0 64 linear {mid} 0")
    return k


def names(k: FakeDM, devnos) -> List[str]:
    return [k.devices[d]["name"] for d in devnos]


def test_members_stop_at_a_shared_device(thin):
    assert names(thin, dm.stack_members(thin, "pool")) == ["pool", "meta", "data"]
    # The pool is shared by two volumes: neither one's stack holds it.
    assert names(thin, dm.stack_members(thin, "vol")) == ["vol"]
    assert names(thin, dm.stack_members(thin, "other")) == ["other"]


def test_members_are_ordered_top_down_when_a_device_is_reached_twice():
    k = FakeDM()
    low = k.add("low", f"0 8 linear {LOOP} 0")
    mid = k.add("mid", f"0 8 linear {low} 0")
    # top uses low directly and through mid: low comes after mid.
    k.add("top", f"0 8 linear {low} 0\n8 8 linear {mid} 0")
    assert names(k, dm.stack_members(k, "top")) == ["top", "mid", "low"]


def test_suspend_top_down_and_resume_bottom_up(chain):
    states = dm.suspend_stack(chain, "top")
    assert chain.calls == [("suspend", "top"), ("suspend", "mid"), ("suspend", "low")]
    assert [s.name for s in states] == ["top", "mid", "low"] and all(s.suspended for s in states)
    chain.calls.clear()
    states = dm.resume_stack(chain, "top")
    assert chain.calls == [("resume", "low"), ("resume", "mid"), ("resume", "top")]
    assert not any(s.suspended for s in states)


def test_suspend_leaves_an_already_suspended_member_and_resume_skips_running_ones(chain):
    chain.devices[DevNo(253, 2)]["suspended"] = True  # top
    dm.suspend_stack(chain, "top")
    assert chain.calls == [("suspend", "mid"), ("suspend", "low")]
    chain.calls.clear()
    chain.devices[DevNo(253, 0)]["suspended"] = False  # low
    dm.resume_stack(chain, "top")
    assert chain.calls == [("resume", "mid"), ("resume", "top")]


def test_a_failed_suspend_resumes_what_it_suspended(chain):
    chain.fail["suspend", "low"] = DMError(errno.EIO, "DM_DEV_SUSPEND", "low", None)
    before = chain.state()
    with pytest.raises(DMError):
        dm.suspend_stack(chain, "top")
    assert chain.calls[-2:] == [("resume", "mid"), ("resume", "top")]
    assert chain.state() == before


def test_remove_stack_removes_top_down_and_keeps_what_is_shared(thin):
    assert dm.remove_stack(thin, "vol") == ["vol"]
    # Now only vol2 uses the pool: the pool is part of vol2's stack.
    assert dm.remove_stack(thin, "vol2") == ["vol2", "pool", "meta", "data"]
    assert thin.names() == ["other"]


def test_remove_stack_refuses_a_device_in_use_before_removing_anything(thin):
    with pytest.raises(DeviceBusyError, match="used by vol, vol2"):
        dm.remove_stack(thin, "pool")
    assert ("remove", "pool") not in thin.calls and len(thin.names()) == 6


def test_remove_stack_leaves_a_lower_device_held_from_outside(chain, caplog):
    chain.outside_opens["mid"] = 1  # say, mounted
    with caplog.at_level(logging.WARNING, logger="pydevmapper.stacks"):
        assert dm.remove_stack(chain, "top") == ["top"]
    assert chain.names() == ["low", "mid"]
    assert ("remove", "mid") not in chain.calls
    assert "mid stays: open 1 time(s) from outside the stack" in caplog.text


def test_remove_stack_counts_an_inactive_table_in_the_stack_as_its_own(chain):
    low = DevNo(253, 0)
    chain.devices[DevNo(253, 2)]["inactive"] = Table.parse(f"0 8 linear {low} 0")
    assert dm.remove_stack(chain, "top") == ["top", "mid", "low"]
    assert chain.names() == []


def test_remove_stack_of_an_open_top_changes_nothing(chain):
    chain.outside_opens["top"] = 1
    with pytest.raises(DeviceBusyError):
        dm.remove_stack(chain, "top", retry=0.0)
    assert chain.names() == ["low", "mid", "top"]


def test_remove_stack_of_a_missing_device_is_typed(chain):
    with pytest.raises(DeviceNotFoundError):
        dm.remove_stack(chain, "nope")


def _new(k: FakeDM, name: str, table: str) -> Tuple[str, Table]:
    return name, Table.parse(table)


def test_reload_stack_loads_all_then_suspends_down_and_resumes_up(chain):
    low, mid = DevNo(253, 0), DevNo(253, 1)
    tables = dict([_new(chain, "mid", f"0 32 linear {low} 0"),
                   _new(chain, "top", f"0 32 linear {mid} 0"),
                   _new(chain, "low", f"0 64 linear {LOOP} 64")])
    states = dm.reload_stack(chain, tables)
    assert chain.calls == [("load", "mid"), ("load", "top"), ("load", "low"),
                           ("suspend", "top"), ("suspend", "mid"), ("suspend", "low"),
                           ("resume", "low"), ("resume", "mid"), ("resume", "top")]
    assert [s.name for s in states] == ["low", "mid", "top"]
    assert str(chain.devices[low]["live"]).strip() == f"0 64 linear {LOOP} 64"


def test_reload_stack_checks_every_table_before_sending_anything(chain):
    with pytest.raises(dm.TableSyntaxError):
        dm.reload_stack(chain, {"top": "0 8 zero", "mid": "0 x linear"})
    with pytest.raises(DeviceNotFoundError):
        dm.reload_stack(chain, {"top": "0 8 zero", "gone": "0 8 zero"})
    with pytest.raises(dm.ValidationError):
        dm.reload_stack(chain, {"top": "0 8 zero", DevNo(253, 2): "0 8 zero"})
    assert chain.calls == []


def test_a_refused_load_clears_the_tables_already_loaded(chain):
    chain.fail["load", "low"] = InvalidTableError(errno.EINVAL, "DM_TABLE_LOAD", "low", None)
    before = chain.state()
    with pytest.raises(InvalidTableError):
        dm.reload_stack(chain, {"top": "0 8 zero", "mid": "0 8 zero", "low": "0 8 zero"})
    assert chain.calls[-2:] == [("clear", "top"), ("clear", "mid")]
    assert chain.state() == before


def test_a_failed_suspend_clears_and_resumes(chain):
    chain.fail["suspend", "mid"] = DMError(errno.EINTR, "DM_DEV_SUSPEND", "mid", None)
    before = chain.state()
    with pytest.raises(DMError):
        dm.reload_stack(chain, {"top": "0 8 zero", "mid": "0 8 zero"})
    assert chain.state() == before


def test_a_failed_resume_puts_every_old_table_back_live(chain):
    # low resumes with its new table, then mid's new table is refused at
    # resume (as the kernel refuses a target past its device's end).
    chain.fail["resume", "mid"] = DMError(errno.EINVAL, "DM_DEV_SUSPEND", "mid", None)
    before = chain.state()
    with pytest.raises(DMError):
        dm.reload_stack(chain, {"top": "0 8 zero", "mid": "0 8 zero", "low": "0 16 zero"})
    # The refused table stays inactive in this model (the kernel drops
    # it); the roll-back clears it either way.
    assert chain.state() == before
    assert ("load", "low") in chain.calls[chain.calls.index(("resume", "mid")):]


def test_the_sweep_removes_a_stack_in_one_round(thin):
    assert remove_devices(thin, ["vol", "vol2", "pool", "meta", "data"]) == []
    assert thin.names() == ["other"]
    assert [c for c in thin.calls if c[0] == "remove"] == [
        ("remove", n) for n in ("vol", "vol2", "pool", "meta", "data")]


def thin_spec(data_offset: int = 8) -> dict:
    """A thin volume on a pool on meta and data devices, as plain data."""
    return {"name": "vol", "table": "0 64 thin {pool} 1", "children": [
        {"name": "pool", "table": "0 64 thin-pool {meta} {data} 128 0", "messages": ["create_thin 1"],
         "children": [{"name": "meta", "table": f"0 8 linear {LOOP} 0"},
                      {"name": "data", "table": f"0 64 linear {LOOP} {data_offset}"}]}]}


def test_ensure_creates_bottom_up_then_adopts_everything():
    k = FakeDM()
    done = dm.ensure_stack(k, thin_spec())
    assert done.created == ["meta", "data", "pool", "vol"] and done.adopted == []
    assert [c for c in k.calls if c[0] == "create" or c[0].startswith("message")] == [
        ("create", "meta"), ("create", "data"), ("create", "pool"), ("message create_thin 1", "pool"),
        ("create", "vol")]
    assert str(k.devices[done.devices["vol"]]["live"]).strip() == f"0 64 thin {done.devices['pool']} 1"
    k.calls.clear()
    again = dm.ensure_stack(k, thin_spec())
    assert again.adopted == ["meta", "data", "pool", "vol"] and again.created == again.completed == []
    assert [c for c in k.calls if c[0] != "info"] == []


def test_ensure_completes_a_half_made_stack():
    k = FakeDM()
    dm.ensure_stack(k, thin_spec())
    k.remove("vol")
    k.devices[dm.DevNo(253, 2)]["suspended"] = True  # pool, left suspended
    k.create("vol")  # created, never loaded
    done = dm.ensure_stack(k, thin_spec())
    assert (done.created, done.completed, done.adopted) == ([], ["pool", "vol"], ["meta", "data"])
    assert not any(d["suspended"] for d in k.devices.values())


def test_ensure_refuses_a_conflict_naming_every_difference_and_changes_nothing():
    k = FakeDM()
    dm.ensure_stack(k, thin_spec())
    before, k.calls[:] = k.state(), []
    with pytest.raises(dm.StackConflictError) as raised:
        dm.ensure_stack(k, thin_spec(data_offset=16))
    assert raised.value.differences == [
        f"data: target 0 is `0 64 linear {LOOP} 8`, declared `0 64 linear {LOOP} 16`"]
    assert k.state() == before and [c for c in k.calls if c[0] != "info"] == []
    k.remove("vol"), k.remove("pool")
    with pytest.raises(dm.StackConflictError, match="pool: exists, but meta under it does not"):
        k.add("pool", "0 8 zero")
        k.remove("meta")
        dm.ensure_stack(k, thin_spec())


def test_a_failed_ensure_removes_what_it_created():
    k = FakeDM()
    k.add("meta", f"0 8 linear {LOOP} 0")
    k.fail["create", "vol"] = DMError(errno.ENOMEM, "DM_DEV_CREATE", "vol", None)
    with pytest.raises(DMError):
        dm.ensure_stack(k, thin_spec())
    assert k.names() == ["meta"]


def test_ensure_checks_the_declaration_before_anything():
    k = FakeDM()
    with pytest.raises(dm.ValidationError, match="names a device twice"):
        dm.ensure_stack(k, {"name": "a", "table": "0 8 zero", "children": [{"name": "a", "table": "0 8 zero"}]})
    with pytest.raises(dm.ValidationError, match="needs 'name' and 'table'"):
        dm.ensure_stack(k, {"name": "a", "tabel": "0 8 zero"})
    with pytest.raises(dm.ValidationError, match=r"names \{nope\}"):
        dm.ensure_stack(k, {"name": "a", "table": "0 8 linear {nope} 0"})
    assert k.calls == []


def test_teardown_removes_exactly_the_declared_devices():
    k = FakeDM()
    dm.ensure_stack(k, thin_spec())
    k.add("other", f"0 8 linear {LOOP} 64")
    assert dm.teardown_stack(k, thin_spec()) == ["vol", "pool", "data", "meta"]
    assert k.names() == ["other"]


def test_teardown_refuses_when_an_undeclared_device_uses_the_stack():
    k = FakeDM()
    done = dm.ensure_stack(k, thin_spec())
    k.add("vol2", f"0 64 thin {done.devices['pool']} 2")
    with pytest.raises(DeviceBusyError, match="used by vol2, which the stack does not declare"):
        dm.teardown_stack(k, thin_spec())
    assert len(k.names()) == 5


def _preresume_refusal(name: str) -> DMError:
    return DMError(errno.EINVAL, "DM_DEV_SUSPEND", name, "pool target too small")


def test_a_resume_refused_after_the_swap_puts_the_old_tables_back(chain):
    # The kernel swaps mid's new table in, then a target's preresume hook
    # refuses: the new table is live and mid suspended; low runs its new one.
    chain.fail_after_swap["mid"] = _preresume_refusal("mid")
    before = chain.state()
    with pytest.raises(DMError) as raised:
        dm.reload_stack(chain, {"top": "0 8 zero", "mid": "0 8 zero", "low": "0 16 zero"})
    assert type(raised.value) is DMError and raised.value.kernel_message == "pool target too small"
    assert chain.state() == before
    after = chain.calls[chain.calls.index(("resume", "mid")) + 1:]
    assert ("load", "mid") in after and ("load", "low") in after and ("load", "top") not in after


def test_a_single_reload_refused_after_the_swap_puts_the_old_table_back(chain):
    chain.fail_after_swap["top"] = _preresume_refusal("top")
    before = chain.state()
    with pytest.raises(DMError):
        operations.reload(chain, "top", "0 8 zero", readonly=True)
    assert chain.state() == before


@pytest.mark.parametrize("reload", [lambda k: dm.reload_stack(k, {"top": "0 8 zero"}),
                                    lambda k: operations.reload(k, "top", "0 8 zero")])
def test_what_cannot_be_put_back_is_a_rollback_error(chain, reload):
    chain.fail_after_swap["top"] = _preresume_refusal("top")
    chain.fail["load", "top"] = [None, DMError(errno.ENOMEM, "DM_TABLE_LOAD", "top", None)]
    with pytest.raises(RollbackError) as raised:
        reload(chain)
    err = raised.value
    assert isinstance(err, DMError) and err.errno == errno.EINVAL and err.command == "DM_DEV_SUSPEND"
    assert err.__cause__ is not None and err.left == ["top: another table is live, it is suspended"]
    assert "not put back: top: another table is live, it is suspended" in str(err)


def test_reload_stack_loads_read_only_and_puts_the_old_flag_back(chain):
    dm.reload_stack(chain, {"top": "0 8 zero"}, readonly=True)
    assert chain.info("top").read_only
    chain.fail_after_swap["top"] = _preresume_refusal("top")
    with pytest.raises(DMError):
        dm.reload_stack(chain, {"top": "0 16 zero"})
    assert chain.info("top").read_only and str(chain.table("top")).strip() == "0 8 zero"


def test_reload_stack_refuses_a_device_without_a_live_table(chain):
    chain.create("bare")
    chain.calls.clear()
    with pytest.raises(dm.ValidationError, match="bare has none"):
        dm.reload_stack(chain, {"top": "0 8 zero", "bare": "0 8 zero"})
    assert chain.calls == []


def test_a_failed_suspend_keeps_a_waiting_table_inactive(chain):
    chain.load("top", Table.parse("0 8 error"))
    chain.fail["suspend", "low"] = DMError(errno.EIO, "DM_DEV_SUSPEND", "low", None)
    before = chain.state()
    with pytest.raises(DMError):
        dm.suspend_stack(chain, "top")
    assert chain.state() == before
    assert str(chain.table("top", inactive=True)).strip() == "0 8 error"


def test_resume_stack_passes_noflush_and_nolockfs(chain, monkeypatch):
    dm.suspend_stack(chain, "top")
    seen = []
    resume = chain.resume
    monkeypatch.setattr(chain, "resume", lambda d, **kw: seen.append(kw) or resume(d, **kw))
    dm.resume_stack(chain, "top", noflush=True, nolockfs=True)
    assert seen == [{"noflush": True, "nolockfs": True}] * 3


def test_a_graph_without_the_device_is_a_typed_error(chain):
    graph = dm.dependency_graph(chain)
    chain.add("late", "0 8 zero")
    with pytest.raises(DeviceNotFoundError, match="not in the dependency graph"):
        dm.stack_members(chain, "late", graph=graph)


def test_ensure_sends_the_messages_to_a_device_it_completes():
    k = FakeDM()
    spec = thin_spec()
    dm.ensure_stack(k, spec["children"][0]["children"][0])  # meta
    dm.ensure_stack(k, spec["children"][0]["children"][1])  # data
    k.create("pool")  # cut short before its table
    k.calls.clear()
    done = dm.ensure_stack(k, spec)
    assert done.completed == ["pool"] and done.created == ["vol"]
    assert ("message create_thin 1", "pool") in k.calls


def test_ensure_refuses_a_different_table_waiting_inactive_or_another_mode():
    k = FakeDM()
    done = dm.ensure_stack(k, thin_spec())
    k.load("data", Table.parse(f"0 64 linear {LOOP} 32"))
    k.devices[done.devices["meta"]]["ro"] = True
    before = k.state()
    with pytest.raises(dm.StackConflictError) as raised:
        dm.ensure_stack(k, thin_spec())
    assert raised.value.differences == [
        "meta: is read-only, declared read-write",
        f"data: inactive table: target 0 is `0 64 linear {LOOP} 32`, declared `0 64 linear {LOOP} 8`"]
    assert k.state() == before


def test_ensure_resumes_the_declared_table_waiting_inactive():
    k = FakeDM()
    done = dm.ensure_stack(k, thin_spec())
    k.load("data", Table.parse(f"0 64 linear {LOOP} 8"))
    again = dm.ensure_stack(k, thin_spec())
    assert again.completed == ["data"] and k.table("data", inactive=True) is None
    assert done.devices == again.devices


def test_ensure_completes_with_the_declared_table_already_waiting():
    k = FakeDM()
    spec = thin_spec()
    dm.ensure_stack(k, spec["children"][0]["children"][0])  # meta
    k.create("data")
    k.load("data", Table.parse(f"0 64 linear {LOOP} 8"))  # cut short before its resume
    k.calls.clear()
    assert dm.ensure_stack(k, spec).completed == ["data"]
    assert ("load", "data") not in k.calls and ("resume", "data") in k.calls


def test_teardown_refuses_another_uuid_and_a_holder_from_outside():
    k = FakeDM()
    dm.ensure_stack(k, thin_spec())
    spec = thin_spec()
    spec["children"][0]["uuid"] = "CRYPT-other"
    with pytest.raises(dm.StackConflictError, match="pool: uuid is '', declared 'CRYPT-other'"):
        dm.teardown_stack(k, spec)
    k.outside_opens["data"] = 1
    with pytest.raises(DeviceBusyError, match="open 1 time"):
        dm.teardown_stack(k, thin_spec(), retry=0.0)
    assert len(k.names()) == 4 and not [c for c in k.calls if c[0] == "remove"]


def test_teardown_counts_a_device_used_by_both_tables_of_its_user_once():
    k = FakeDM()
    done = dm.ensure_stack(k, thin_spec())
    pool = k.devices[done.devices["pool"]]
    pool["inactive"] = pool["live"]  # the same devices, opened once
    # and one used by an inactive table alone, opened by it
    k.devices[done.devices["vol"]]["inactive"] = Table.parse(f"0 64 linear {done.devices['data']} 0")
    assert dm.teardown_stack(k, thin_spec(), retry=0.0) == ["vol", "pool", "data", "meta"]


@pytest.mark.parametrize("data, complaint", [
    ({"name": 5, "table": "0 8 zero"}, "name is a string"),
    ({"name": "a", "table": 8}, "a: table is text"),
    ({"name": "a", "table": "0 8 zero", "uuid": 1}, "a: uuid is a string"),
    ({"name": "a", "table": "0 8 zero", "readonly": "yes"}, "a: readonly is true or false"),
    ({"name": "a", "table": "0 8 zero", "children": {"name": "b"}}, "a: children is a list"),
    ({"name": "a", "table": "0 8 zero", "messages": "create_thin 1"}, "a: messages is a list"),
    ({"name": "a", "table": "0 8 zero", "messages": [1]}, "a: messages are strings"),
    ({"name": "a", "table": "0 8 zero", "children": ["b"]}, "is a mapping or a DeviceSpec"),
])
def test_a_declaration_of_the_wrong_type_is_refused(data, complaint):
    with pytest.raises(dm.ValidationError, match=complaint):
        dm.DeviceSpec.from_data(data)


def test_the_put_back_resumes_nothing_above_a_device_that_stays_suspended(chain):
    # Resuming a device onto a suspended one may wait for ever (a thin
    # volume on its pool): the model asserts it never happens.
    chain.fail_after_swap["mid"] = _preresume_refusal("mid")
    chain.fail["resume", "mid"] = [None, _preresume_refusal("mid")]
    with pytest.raises(RollbackError) as raised:
        dm.reload_stack(chain, {"top": "0 8 zero", "mid": "0 8 zero", "low": "0 16 zero"})
    assert raised.value.left == ["top: it is suspended, a table waits inactive",
                                 "mid: another table is live, it is suspended, a table waits inactive"]
    assert not chain.info("low").suspended and str(chain.table("low")).strip() == f"0 64 linear {LOOP} 0"


def test_a_volume_s_new_table_is_dropped_only_once_its_pool_runs_again(thin):
    # As the kernel's thin-pool: the pool refuses its new table at resume;
    # the volume's new table, waiting above it, must not be dropped while
    # the pool is suspended.
    pool = DevNo(253, 2)
    thin.fail_after_swap["pool"] = _preresume_refusal("pool")
    before = thin.state()
    with pytest.raises(DMError):
        dm.reload_stack(thin, {"pool": "0 32 thin-pool 253:0 253:1 128 0", "vol": f"0 64 thin {pool} 1",
                               "vol2": f"0 32 thin {pool} 2"})
    assert thin.state() == before


def test_a_refusal_names_the_users_in_name_order() -> None:
    # The graph lists holders in the kernel's order (creation order on some
    # kernels, not on others); the message is the same on every kernel.
    k = FakeDM()
    pool = k.add("pool", "0 8 zero")
    k.add("zz", f"0 8 linear {pool} 0")
    k.add("aa", f"0 8 linear {pool} 0")
    with pytest.raises(DeviceBusyError, match="used by aa, zz: remove those first"):
        dm.remove_stack(k, "pool")
