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


def test_a_signal_handled_while_blocking_leaves_the_mask_as_it_was(monkeypatch):
    # A SIGINT that came just before the mask was set is raised as
    # KeyboardInterrupt when the blocking call returns: it must not leave
    # this thread's signals blocked.
    real = udev.lib
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())

    class InterruptedAsTheBlockReturns:
        def __getattr__(self, name):
            return getattr(real, name)

        def pthread_sigmask(self, how, new, old):
            err = real.pthread_sigmask(how, new, old)
            if how == real.SIG_BLOCK and new != udev.ffi.NULL:
                raise KeyboardInterrupt
            return err

    monkeypatch.setattr(udev, "lib", InterruptedAsTheBlockReturns())
    with pytest.raises(KeyboardInterrupt):
        with udev.cookie():
            pass
    monkeypatch.undo()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == before


def test_signals_are_held_off_while_a_cookie_is_made_but_faults_are_not():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    with udev._SignalsDeferred():
        held = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    assert signal.SIGINT in held and signal.SIGTERM in held and signal.SIGUSR1 in held
    assert not held & {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == before
