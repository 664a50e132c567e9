# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup's udev switches reach the API as dmsetup's reach libdevmapper."""

from __future__ import annotations

import pytest

from pydevmapper.cli import options
from pydevmapper.cli.session import Failed, Session


class FakeControl:
    made = []

    def __init__(self, path=None, *, udev_sync=None, dev_dir=None, udev_timeout=30.0,
                 udev_transaction=None, udev_rules=True, on_udev_timeout=None):
        self.udev_sync_arg = udev_sync
        self.udev_timeout = udev_timeout
        self.on_udev_timeout = on_udev_timeout
        self.udev_transaction = udev_transaction
        self.udev_rules = udev_rules
        FakeControl.made.append(self)

    def version(self):
        return (4, 47, 0)

    def close(self):
        pass


@pytest.fixture
def fake_control(monkeypatch):
    import pydevmapper.control

    FakeControl.made = []
    monkeypatch.setattr(pydevmapper.control, "Control", FakeControl)
    monkeypatch.delenv("DM_DISABLE_UDEV", raising=False)
    monkeypatch.delenv("DM_UDEV_COOKIE", raising=False)
    return FakeControl


def session(*argv):
    parsed = options.parse("dmsetup", list(argv))
    return Session("dmsetup", parsed)


@pytest.mark.parametrize("argv, wanted", [
    (["create", "x"], None),                       # auto: cookies when udevd runs
    (["--noudevsync", "create", "x"], False),
    (["--noudevs", "remove", "x"], False),         # getopt abbreviation
    (["--verifyudev", "create", "x"], None),       # the API always verifies the node
])
def test_noudevsync_reaches_control(fake_control, argv, wanted):
    s = session(*argv)
    s.control
    assert fake_control.made[-1].udev_sync_arg is wanted


def test_dm_disable_udev_env(fake_control, monkeypatch):
    monkeypatch.setenv("DM_DISABLE_UDEV", "1")
    s = session("create", "x")
    s.control
    assert fake_control.made[-1].udev_sync_arg is False
    assert s.cookies_supported() is False


def test_cookies_supported_follows_udev_and_noudevsync(fake_control, monkeypatch):
    from pydevmapper import udev

    monkeypatch.setattr(udev, "udev_running", lambda *a: True)
    assert session("udevcookies").cookies_supported() is True
    assert session("--noudevsync", "udevcookies").cookies_supported() is False
    monkeypatch.setattr(udev, "udev_running", lambda *a: False)
    assert session("udevcookies").cookies_supported() is False


def test_udev_waits_last_as_long_as_udevd_gives_an_event(fake_control, monkeypatch):
    """dmsetup waits for udev without bound; pydmsetup bounds its waits where
    udevd kills an event's worker (180 s), not at the API's 30 s default
    that an emulated guest's udev can outlast."""
    from pydevmapper import udev
    from pydevmapper.cli import udev_commands

    session("create", "x").control
    assert fake_control.made[-1].udev_timeout == 180.0
    released = []
    monkeypatch.setattr(udev, "udev_running", lambda *a: True)
    monkeypatch.setattr(udev, "release_cookie", lambda key, timeout=30.0: released.append((key, timeout)))
    udev_commands.udevreleasecookie(session("udevreleasecookie", "0x0D4D1234"), ["0x0D4D1234"], False)
    assert released == [(0x0D4D1234, 180.0)]


def test_udev_timeout_is_a_warning_not_a_failed_ioctl(fake_control, capsys):
    from pydevmapper.udev import UdevTimeoutError

    s = session("resume", "vol")
    s.control.on_udev_timeout(UdevTimeoutError("DM_DEV_SUSPEND", "vol", 0x00400001, 30.0))
    err = capsys.readouterr().err
    assert err.startswith("dmsetup: warning: resume on vol: udev never answered cookie")
    assert "ioctl" not in err


def test_real_failures_still_fail(capsys):
    from pydevmapper.errors import DMError

    def resume(device):
        raise DMError(6, "DM_DEV_SUSPEND", device)

    with pytest.raises(Failed):
        session("resume", "vol").call("resume", "vol", lambda: resume("vol"))
    assert capsys.readouterr().err == (
        "device-mapper: resume ioctl on vol  failed: No such device or address\n")


@pytest.mark.parametrize("argv, env, key, errors", [
    (["create", "x"], None, None, ""),
    (["--udevcookie", "0x0D4D1234", "create", "x"], None, 0x0D4D1234, ""),
    (["--udevcookie=223154740", "resume", "x"], None, 0x0D4D1234, ""),     # strtoul base 0
    (["remove", "x"], "0x0D4D1234", 0x0D4D1234, ""),
    (["--udevcookie", "0x0D4D0001", "remove", "x"], "0x0D4D1234", 0x0D4D0001, ""),
    (["rename", "x", "y"], "", None, ""),                                   # empty: unset
    (["--udevcookie", "zz", "create", "x"], "0x0D4D1234", 0x0D4D1234,       # libdm falls
     "Incorrect cookie value.\n"),                                         # back to the env
    (["--udevcookie", "zz", "create", "x"], "0", None,
     "Incorrect cookie value.\nIncorrect cookie value.\n"),
    (["--noudevsync", "create", "x"], "0x0D4D1234", 0x0D4D1234, ""),       # the API ignores it
])
def test_udev_cookie_reaches_control(fake_control, monkeypatch, capsys, argv, env, key, errors):
    if env is not None:
        monkeypatch.setenv("DM_UDEV_COOKIE", env)
    s = session(*argv)
    s.control
    s.control  # parsed and complained about once
    tx = fake_control.made[-1].udev_transaction
    assert (tx.key if tx is not None else None) == key
    assert capsys.readouterr().err == errors


def test_noudevrules_reaches_control(fake_control):
    session("create", "x").control
    assert fake_control.made[-1].udev_rules is True
    session("--noudevrules", "create", "x").control
    assert fake_control.made[-1].udev_rules is False


@pytest.mark.parametrize("cookie, semid, err, wanted", [
    (0x0D4D1234, None, 2,
     "Could not find notification semaphore identified by cookie value 223154740 (0xd4d1234)\n"),
    (0x00401234, None, 22,
     "Could not continue to access notification semaphore identified by cookie value "
     "4198964 (0x401234). Incorrect cookie prefix.\n"),
    (0x0D4D1234, 7, 34,
     "semid 7: semop failed for cookie 0xd4d1234: Numerical result out of range\n"
     "Could not set notification semaphore identified by cookie value 223154740 (0xd4d1234)\n"),
])
def test_unjoinable_cookie_worded_as_libdm(capsys, cookie, semid, err, wanted):
    from pydevmapper.udev import UdevCookieError

    def resume(device):
        raise UdevCookieError(err, "DM_DEV_SUSPEND", device, cookie, semid, "x")

    with pytest.raises(Failed):
        session("resume", "vol").call("resume", "vol", lambda: resume("vol"))
    assert capsys.readouterr().err == wanted
