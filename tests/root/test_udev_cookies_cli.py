# SPDX-License-Identifier: LGPL-2.1-or-later
"""udev transactions (``--udevcookie``, ``$DM_UDEV_COOKIE``) and
``--noudevrules``, through pydmsetup and the API, against the real kernel.

A transaction is proved without timing: udevd is held stopped
(``helpers.udev_paused``), so a command that joined the cookie must have
returned with the semaphore raised (a command that waited would still be
blocked) and no /dev/mapper entry yet; once udevd runs again,
``udevreleasecookie`` returns and the entry is there.  Output is compared
with Debian's dmsetup byte for byte, in both boots (without udevd both tools
ignore the cookie).
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from pydevmapper import udev
from pydevmapper.control import Control
from tests.root.helpers import dmsetup_installed, forked_main, gone, udev_paused  # noqa: F401 (fixture)

pytestmark = [pytest.mark.dm_root, pytest.mark.udev]

SYNC = udev.sync_available()
needs_sync = pytest.mark.skipif(not SYNC, reason="needs udevd with 95-dm-notify.rules (udev boot)")
needs_dmsetup = pytest.mark.usefixtures("dmsetup_installed")
ZERO = "0 2048 zero"


def py(args, env=None):
    """pydmsetup in a forked child, with ``env`` added to its environment."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        return forked_main(args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dm(args, env=None):
    p = subprocess.run(["dmsetup", *args], capture_output=True, timeout=120,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def pending(key: int) -> int:
    return next(c.value for c in udev.list_cookies() if c.cookie == key)


@pytest.fixture(autouse=True)
def no_cookie_left():
    before = {c.cookie for c in udev.list_cookies()}
    yield
    left = {c.cookie for c in udev.list_cookies()} - before
    for key in left:
        udev.remove_cookie(key)
    assert not left, "a udev cookie semaphore leaked"


def created_cookie() -> int:
    rc, out, err = py(["udevcreatecookie"])
    assert (rc, err) == (0, b"") and out.startswith(b"0x0D4D"), (rc, out, err)
    return int(out, 16)


def node(name: str) -> str:
    return f"/dev/mapper/{name}"


# -- joining a transaction: no wait, udev's entries once released ----------------

@needs_sync
@pytest.mark.parametrize("via", ["option", "env"])
def test_create_and_remove_join_the_cookie_and_release_waits(dm_control, dm_name, via):
    def joined(key, args):
        if via == "option":
            return py(["--udevcookie", f"{key:#x}", *args])
        return py(args, env={"DM_UDEV_COOKIE": f"0x{key:08X}"})

    try:
        key = created_cookie()
        assert pending(key) == 1  # the creator's reference
        with udev_paused():
            assert joined(key, ["create", dm_name, "--table", ZERO]) == (0, b"", b"")
            assert pending(key) == 2  # raised for the resume's uevent, not waited for
            assert not os.path.lexists(node(dm_name))  # the entry is udev's to make
        assert py(["udevreleasecookie", f"{key:#x}"]) == (0, b"", b"")
        assert key not in {c.cookie for c in udev.list_cookies()}
        st = os.lstat(node(dm_name))
        assert stat.S_ISLNK(st.st_mode)  # udev's symlink to ../dm-N
        assert os.stat(node(dm_name)).st_rdev == os.makedev(*dm_control.info(dm_name).devno)

        key = created_cookie()
        with udev_paused():
            assert joined(key, ["remove", dm_name]) == (0, b"", b"")
            assert pending(key) == 2
            assert not dm_control.exists(dm_name)
        env = {"DM_UDEV_COOKIE": f"{key:#x}"} if via == "env" else None
        args = ["udevreleasecookie"] if via == "env" else ["udevreleasecookie", f"{key:#x}"]
        assert py(args, env=env) == (0, b"", b"")
        assert not os.path.lexists(node(dm_name))
    finally:
        gone(dm_control, dm_name)


@needs_sync
def test_api_transaction_spans_commands(dm_control, dm_name):
    tx = udev.Transaction.create()
    with Control(udev_transaction=tx) as ctl:
        try:
            with udev_paused():
                dev = ctl.create_device(dm_name, ZERO)
                ctl.rename(dev.devno, dm_name + "-b")
                assert tx.pending() == 3  # resume and rename, neither waited for
                assert not os.path.lexists(node(dm_name + "-b"))
            tx.release()
            assert not os.path.lexists(node(dm_name))
            assert os.stat(node(dm_name + "-b")).st_rdev == os.makedev(*dev.devno)
        finally:
            gone(dm_control, dm_name)
            gone(dm_control, dm_name + "-b")


# -- --noudevrules: the library makes the nodes, whatever udev does ---------------

@pytest.mark.parametrize("sync", [[], ["--noudevsync"]], ids=["sync", "nosync"])
def test_noudevrules_node_made_by_the_library(dm_control, dm_name, sync):
    try:
        assert py([*sync, "--noudevrules", "create", dm_name, "--table", ZERO]) == (0, b"", b"")
        st = os.lstat(node(dm_name))
        assert stat.S_ISBLK(st.st_mode)  # our node, not udev's symlink
        assert st.st_rdev == os.makedev(*dm_control.info(dm_name).devno)
        assert py([*sync, "--noudevrules", "rename", dm_name, dm_name + "-b"]) == (0, b"", b"")
        assert not os.path.lexists(node(dm_name))
        assert stat.S_ISBLK(os.lstat(node(dm_name + "-b")).st_mode)
        if sync:
            # Not waited for, udev may still be probing the renamed device and
            # hold it open: the remove would fail with EBUSY, dmsetup's too.
            subprocess.run(["udevadm", "settle", "--timeout=120"], check=False, timeout=180)
        rc, out, err = py([*sync, "--noudevrules", "remove", dm_name + "-b"])
        assert (rc, out, err) == (0, b"", b""), err.decode()
        assert not os.path.lexists(node(dm_name + "-b"))
    finally:
        gone(dm_control, dm_name)
        gone(dm_control, dm_name + "-b")


# -- byte for byte with dmsetup ---------------------------------------------------

def _absent_key() -> int:
    taken = {c.cookie for c in udev.list_cookies()}
    return next(k for k in range(0x0D4D1234, 0x0D4DFFFF) if k not in taken)


def _same(args, env=None, reset=None):
    if reset:
        reset()
    want = dm(args, env)
    if reset:
        reset()
    got = py(args, env)
    assert got[1].decode(errors="replace") == want[1].decode(errors="replace"), args
    assert got[2].decode(errors="replace") == want[2].decode(errors="replace"), args
    assert got[0] == want[0], args
    return want


@needs_dmsetup
@pytest.mark.parametrize("case", ["missing", "prefix", "garbage-option", "garbage-env",
                                  "garbage-both", "missing-env"])
def test_create_with_unusable_cookie_as_dmsetup(dm_control, dm_name, case):
    absent = _absent_key()
    args, env = {
        "missing": (["--udevcookie", f"{absent:#x}"], None),
        "prefix": (["--udevcookie", "0x00401234"], None),
        "garbage-option": (["--udevcookie", "zz"], None),
        "garbage-env": ([], {"DM_UDEV_COOKIE": "zz"}),
        "garbage-both": (["--udevcookie", "0x"], {"DM_UDEV_COOKIE": "-1"}),
        "missing-env": ([], {"DM_UDEV_COOKIE": str(absent)}),
    }[case]
    try:
        rc = _same([*args, "create", dm_name, "--table", ZERO], env,
                   reset=lambda: gone(dm_control, dm_name))[0]
        # Nothing is made when the cookie can't be joined (with udev sync).
        assert dm_control.exists(dm_name) is (rc == 0)
    finally:
        gone(dm_control, dm_name)


@needs_dmsetup
@pytest.mark.parametrize("command", [["remove"], ["resume"], ["rename", "{n}-b"],
                                     ["remove", "--force"]])
def test_device_commands_with_missing_cookie_as_dmsetup(dm_control, dm_name, command):
    absent = _absent_key()
    args = [a.format(n=dm_name) for a in command]

    def reset():
        gone(dm_control, dm_name + "-b")
        if not dm_control.exists(dm_name):
            dm_control.create_device(dm_name, ZERO)

    try:
        _same(["--udevcookie", f"{absent:#x}", args[0], dm_name, *args[1:]], reset=reset)
    finally:
        gone(dm_control, dm_name)
        gone(dm_control, dm_name + "-b")


@needs_dmsetup
def test_force_remove_with_cookie_warns_as_dmsetup(dm_control, dm_name):
    keys = []

    def reset():
        if not dm_control.exists(dm_name):
            dm_control.create_device(dm_name, ZERO)
        if SYNC:
            keys.append(created_cookie())

    def release():
        for key in keys:
            assert py(["udevreleasecookie", f"{key:#x}"]) == (0, b"", b"")

    try:
        # Both runs join their own cookie; dm() reads it from DM_UDEV_COOKIE.
        reset()
        env = {"DM_UDEV_COOKIE": f"{keys[-1]:#x}" if keys else "0x0D4D0001"}
        want = dm(["remove", "--force", dm_name], env)
        reset()
        env = {"DM_UDEV_COOKIE": f"{keys[-1]:#x}" if keys else "0x0D4D0001"}
        got = py(["remove", "--force", dm_name], env)
        assert got == want
        assert want == (0, b"", b"WARNING: Use of cookie and --force is not compatible.\n")
        release()
        assert not dm_control.exists(dm_name)
    finally:
        gone(dm_control, dm_name)


@needs_dmsetup
def test_release_named_by_env_as_dmsetup():
    if not SYNC:
        _same(["udevreleasecookie"], {"DM_UDEV_COOKIE": "0x0D4D0001"})  # no udev: no-op
        return
    for tool in (dm, py):
        key = created_cookie()
        assert tool(["udevreleasecookie"], {"DM_UDEV_COOKIE": f"0x{key:08X}"}) == (0, b"", b"")
        assert key not in {c.cookie for c in udev.list_cookies()}
    _same(["udevreleasecookie"], {"DM_UDEV_COOKIE": "0x00401234"})
    _same(["udevreleasecookie"], {"DM_UDEV_COOKIE": f"{_absent_key():#x}"})
