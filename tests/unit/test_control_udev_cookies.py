# SPDX-License-Identifier: LGPL-2.1-or-later
"""What resume, rename and remove put in ``event_nr`` for udev, over the fake
descriptor, with real SysV semaphores standing in for libdevmapper's.

libdevmapper's encoding: udev flags in the upper 16 bits, the cookie's base
in the lower 16 (0: flags only, nobody waits).  ``udev.complete`` plays the
part of ``dmsetup udevcomplete`` run by the rules.
"""

from __future__ import annotations

import errno

import pytest
from fake_kernel import device_reply, fail

from pydevmapper import udev
from pydevmapper.control import Control
from pydevmapper.errors import DeviceBusyError
from pydevmapper.flags import DMFlag

PRIMARY = udev.PRIMARY_SOURCE
NO_RULES = udev.DISABLE_DM_RULES | udev.DISABLE_SUBSYSTEM_RULES


@pytest.fixture(autouse=True)
def no_leak():
    before = {c.cookie for c in udev.list_cookies()}
    yield
    assert {c.cookie for c in udev.list_cookies()} <= before, "a test leaked a cookie"


@pytest.fixture
def open_ctl(tmp_path):
    made = []

    def open_ctl(**kwargs) -> Control:
        path = tmp_path / "control"
        path.write_bytes(b"")
        made.append(Control(path=str(path), **kwargs))
        return made[-1]

    yield open_ctl
    for c in made:
        c.close()


@pytest.fixture
def tx():
    t = udev.Transaction.create()
    yield t
    try:
        udev.remove_cookie(t.key)
    except FileNotFoundError:
        pass  # the test released it


def uevent(udev_answers: bool = False):
    """A reply that says a uevent went out; ``udev_answers``: udev completes it."""
    reply = device_reply()

    def handler(call, hdr, buf):
        reply(call, hdr, buf)
        hdr.flags |= DMFlag.UEVENT_GENERATED
        if udev_answers:
            udev.complete(call.event_nr)
    return handler


# The calls that make a uevent: call -> (its ioctl, the call).
COMMANDS = {
    "resume": ("DM_DEV_SUSPEND", lambda ctl: ctl.resume("vol")),
    "rename": ("DM_DEV_RENAME", lambda ctl: ctl.rename("vol", "new")),
    "set_uuid": ("DM_DEV_RENAME", lambda ctl: ctl.set_uuid("vol", "PYDMT-new-uuid")),
    "remove": ("DM_DEV_REMOVE", lambda ctl: ctl.remove("vol")),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_sync_flags_only_keep_udev_off(kernel, open_ctl, command):
    ioctl, call = COMMANDS[command]
    call(open_ctl())  # a fake node never syncs unless asked
    assert kernel.of(ioctl)[-1].event_nr == (PRIMARY | NO_RULES) << 16


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_own_cookie_is_waited_for_and_removed(kernel, open_ctl, command):
    ioctl, call = COMMANDS[command]
    kernel.handlers[ioctl] = uevent(udev_answers=True)
    call(open_ctl(udev_sync=True))
    sent = kernel.of(ioctl)[-1].event_nr
    assert sent >> 16 == PRIMARY and sent & 0xFFFF
    assert udev.COOKIE_MAGIC << 16 | sent & 0xFFFF not in {c.cookie for c in udev.list_cookies()}


def test_own_cookie_with_rules_off(kernel, open_ctl):
    kernel.handlers["DM_DEV_SUSPEND"] = uevent(udev_answers=True)
    open_ctl(udev_sync=True, udev_rules=False).resume("vol")
    assert kernel.of("DM_DEV_SUSPEND")[-1].event_nr >> 16 == PRIMARY | NO_RULES


def test_rules_off_without_sync_is_the_same_flags(kernel, open_ctl):
    open_ctl(udev_sync=False, udev_rules=False).resume("vol")
    assert kernel.of("DM_DEV_SUSPEND")[-1].event_nr == (PRIMARY | NO_RULES) << 16


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_transaction_is_joined_not_waited_for(kernel, open_ctl, tx, command):
    ioctl, call = COMMANDS[command]
    kernel.handlers[ioctl] = uevent()  # udev has not got to it yet
    call(open_ctl(udev_sync=True, udev_transaction=tx))
    sent = kernel.of(ioctl)[-1].event_nr
    # In udev's /dev the nodes are udev's alone: libdm's "no library fallback".
    assert sent == (PRIMARY | udev.DISABLE_LIBRARY_FALLBACK) << 16 | tx.base
    assert tx.pending() == 2  # the creator's reference and our uevent
    udev.complete(sent)  # the rules' udevcomplete
    tx.release(timeout=5)  # returns at once: only the creator's reference was left
    assert tx.key not in {c.cookie for c in udev.list_cookies()}


def test_transaction_joined_by_several_commands(kernel, open_ctl, tx):
    kernel.handlers["DM_DEV_SUSPEND"] = uevent()
    ctl = open_ctl(udev_sync=True, udev_transaction=tx)
    ctl.resume("a")
    ctl.resume("b")
    assert tx.pending() == 3
    assert len({c.event_nr for c in kernel.of("DM_DEV_SUSPEND")}) == 1


def test_transaction_outside_udevs_directory_keeps_the_fallback(kernel, open_ctl, tx, tmp_path):
    kernel.handlers["DM_DEV_SUSPEND"] = uevent()
    open_ctl(udev_sync=True, udev_transaction=tx, dev_dir=str(tmp_path)).resume("vol")
    assert kernel.of("DM_DEV_SUSPEND")[-1].event_nr == PRIMARY << 16 | tx.base


def test_transaction_with_rules_off(kernel, open_ctl, tx):
    kernel.handlers["DM_DEV_SUSPEND"] = uevent()
    open_ctl(udev_sync=True, udev_transaction=tx, udev_rules=False).resume("vol")
    assert kernel.of("DM_DEV_SUSPEND")[-1].event_nr == (PRIMARY | NO_RULES) << 16 | tx.base


def test_transaction_count_given_back_without_uevent(kernel, open_ctl, tx):
    open_ctl(udev_sync=True, udev_transaction=tx).resume("vol")  # no UEVENT_GENERATED
    assert tx.pending() == 1


def test_transaction_count_given_back_on_failure(kernel, open_ctl, tx):
    kernel.handlers["DM_DEV_REMOVE"] = fail(errno.EBUSY)
    with pytest.raises(DeviceBusyError):
        open_ctl(udev_sync=True, udev_transaction=tx).remove("vol")
    assert tx.pending() == 1


def test_transaction_ignored_without_sync(kernel, open_ctl, tx):
    kernel.handlers["DM_DEV_SUSPEND"] = uevent()
    open_ctl(udev_sync=False, udev_transaction=tx).resume("vol")
    assert kernel.of("DM_DEV_SUSPEND")[-1].event_nr == (PRIMARY | NO_RULES) << 16
    assert tx.pending() == 1


def test_missing_transaction_sends_nothing(kernel, open_ctl, tx):
    gone = udev.Transaction(tx.key)
    udev.remove_cookie(tx.key)
    with pytest.raises(udev.UdevCookieError) as info:
        open_ctl(udev_sync=True, udev_transaction=gone).resume("vol")
    assert info.value.errno == errno.ENOENT and info.value.semid is None
    assert info.value.cookie == tx.key and info.value.command == "DM_DEV_SUSPEND"
    assert kernel.of("DM_DEV_SUSPEND") == []


def test_key_without_the_magic_sends_nothing(kernel, open_ctl, tx):
    flagged = udev.Transaction(PRIMARY << 16 | tx.base)  # a value, not a key
    with pytest.raises(udev.UdevCookieError) as info:
        open_ctl(udev_sync=True, udev_transaction=flagged).resume("vol")
    assert info.value.errno == errno.EINVAL
    assert kernel.of("DM_DEV_SUSPEND") == []
    assert tx.pending() == 1


def test_transaction_context_releases(kernel, open_ctl):
    kernel.handlers["DM_DEV_SUSPEND"] = uevent(udev_answers=True)
    with udev.Transaction.create() as t:
        open_ctl(udev_sync=True, udev_transaction=t).resume("vol")
        assert t.pending() == 1
    assert t.key not in {c.cookie for c in udev.list_cookies()}


def test_transaction_rejects_zero():
    with pytest.raises(ValueError):
        udev.Transaction(0)


def test_create_device_checks_the_transaction_first(kernel, open_ctl, tx):
    gone = udev.Transaction(tx.key)
    udev.remove_cookie(tx.key)
    with pytest.raises(udev.UdevCookieError):
        open_ctl(udev_sync=True, udev_transaction=gone).create_device("vol", "0 8 zero")
    assert kernel.calls == []  # nothing made that the clean-up could not remove
