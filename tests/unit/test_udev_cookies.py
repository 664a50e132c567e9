# SPDX-License-Identifier: LGPL-2.1-or-later
"""udev cookies against real SysV semaphores (no kernel device-mapper needed).

``udev.complete`` plays the part of ``dmsetup udevcomplete`` from the rules.
"""

from __future__ import annotations

import signal
import threading

import pytest

from pydevmapper import udev
from pydevmapper.errors import DMError


def cookie_keys():
    return {c.cookie for c in udev.list_cookies()}


@pytest.fixture(autouse=True)
def no_leak():
    before = cookie_keys()
    yield
    assert cookie_keys() <= before, "a test leaked a cookie semaphore"


def test_cookie_value_layout():
    with udev.cookie(udev.PRIMARY_SOURCE) as ck:
        assert ck.key >> 16 == udev.COOKIE_MAGIC
        assert ck.value == udev.PRIMARY_SOURCE << 16 | ck.base
        assert ck.base != 0
        assert ck.pending() == 1
        assert ck.key in cookie_keys()
    assert ck.key not in cookie_keys()


def test_wait_returns_once_completed_with_flags_in_the_value():
    with udev.cookie() as ck:
        # The rules pass the value with flags, not the key.
        done = threading.Thread(target=udev.complete, args=(ck.value,))
        done.start()
        ck.wait(30, "DM_DEV_SUSPEND", "x")
        done.join()
        assert ck.pending() == 0


def test_flags_only_cookie_notifies_nobody():
    udev.complete(udev.PRIMARY_SOURCE << 16)  # no error, nothing to release


def test_timeout_raises_typed_error_and_leaves_nothing():
    with pytest.raises(udev.UdevTimeoutError) as info:
        with udev.cookie() as ck:
            ck.wait(0.05, "DM_DEV_REMOVE", "vol")
    err = info.value
    assert isinstance(err, DMError)
    assert err.command == "DM_DEV_REMOVE" and err.device == "vol"
    assert "udev never answered" in str(err)
    assert err.cookie == ck.value


def test_keyboard_interrupt_while_waiting_leaves_nothing():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with udev.cookie() as ck:
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                ck.wait(30, "DM_DEV_SUSPEND", "x")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert ck.semid is None


def test_uevent_not_generated_drops_the_count():
    with udev.cookie() as ck:
        ck.uevent_not_generated()
        assert ck.pending() == 0
        ck.wait(0.01, "DM_DEV_SUSPEND", "x")  # nothing left to wait for


def test_complete_all_removes_cookies():
    with udev.cookie() as ck:
        assert ck.key in udev.complete_all()
        ck.wait(1, "DM_DEV_SUSPEND", "x")  # removed under us: returns (EIDRM)


def test_decode_flags():
    assert udev.decode_flags(0x00410D4D) == 0x41


def test_udev_running_is_false_for_a_missing_socket(tmp_path):
    assert udev.udev_running(str(tmp_path / "control")) is False


def test_udev_running_sees_a_listener_even_with_its_queue_full(tmp_path):
    import socket

    path = str(tmp_path / "control")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(path)
        # Bound but not listening: a socket file left by a stopped udevd.
        assert udev.udev_running(path) is False
        listener.listen(0)  # as udevd listens; it accepts between events
        assert [udev.udev_running(path) for _ in range(4)] == [True] * 4
    # Closed: the file stays, nobody listens.
    assert udev.udev_running(path) is False


def test_persistent_cookie_libdm_counting():
    value = udev.create_cookie(udev.PRIMARY_SOURCE)
    try:
        udev.add_to_cookie(value)  # one command sent with it
        udev.add_to_cookie(value)  # and another
        udev.complete(value)
        udev.complete(value)
    except BaseException:
        udev.remove_cookie(value)
        raise
    udev.release_cookie(value, timeout=5)  # only the creator's reference was left


def test_release_cookie_times_out_and_still_removes():
    value = udev.create_cookie()
    udev.add_to_cookie(value)  # a uevent nobody will complete
    with pytest.raises(udev.UdevTimeoutError):
        udev.release_cookie(value, timeout=0.05)


class InterruptAfter:
    """The binding, but a KeyboardInterrupt is raised as ``name`` returns:
    where a signal that arrived during the call surfaces in Python."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def __getattr__(self, attr):
        real = getattr(REAL_LIB, attr)
        if attr != self.name:
            return real

        def interrupted(*args):
            self.calls += 1
            real(*args)
            raise KeyboardInterrupt
        return interrupted


REAL_LIB = udev.lib


def test_an_interrupt_as_the_semaphore_is_made_leaves_nothing(monkeypatch):
    # The no_leak fixture checks that the semaphore made is removed.
    monkeypatch.setattr(udev, "lib", InterruptAfter("pydm_cookie_create"))
    with pytest.raises(KeyboardInterrupt):
        with udev.cookie():
            pytest.fail("the block must not run")
    assert udev.lib.calls == 1


def test_an_interrupt_as_the_semaphore_is_removed_removes_it_once(monkeypatch):
    ck = udev.cookie()
    ck.__enter__()
    key = ck.key
    assert key in cookie_keys()
    monkeypatch.setattr(udev, "lib", InterruptAfter("pydm_cookie_remove"))
    with pytest.raises(KeyboardInterrupt):
        ck.__exit__(None, None, None)
    # The first call removed it; the second, in destroy's finally, found nothing.
    assert udev.lib.calls == 2
    assert ck.semid is None and key not in cookie_keys()
