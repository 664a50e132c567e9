# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup's requests, seen by the fake kernel: what reaches the kernel
for each switch (``$DM_DEV_DIR`` points pydmsetup at the fake control node)."""

from __future__ import annotations

import os

import pytest
from fake_kernel import device_reply

from pydevmapper.cli import main
from pydevmapper.flags import DMFlag


@pytest.fixture
def dmsetup(kernel, tmp_path, monkeypatch, capsys):
    (tmp_path / "mapper").mkdir()
    (tmp_path / "mapper" / "control").write_bytes(b"")
    monkeypatch.setenv("DM_DEV_DIR", str(tmp_path))
    # The fake kernel's file stands where pydmsetup would make the control node.
    monkeypatch.setattr("pydevmapper.nodes.ensure_control_node", lambda dev_dir: False)
    monkeypatch.delenv("DM_UDEV_COOKIE", raising=False)
    for command in ("DM_DEV_CREATE", "DM_TABLE_LOAD", "DM_DEV_SUSPEND", "DM_DEV_STATUS"):
        kernel.handlers[command] = device_reply("x", 253, 9)

    def run(*argv):
        code = main(["--noudevsync", *argv], prog="dmsetup")
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


@pytest.mark.parametrize("table", [["--notable"], ["--table", "0 8 zero"]])
def test_create_sends_the_device_number_asked_for(kernel, dmsetup, table):
    assert dmsetup("create", "x", "-j", "253", "-m", "9", *table)[0] == 0
    [create] = kernel.of("DM_DEV_CREATE")
    assert create.flags & DMFlag.PERSISTENT_DEV
    assert create.dev == os.makedev(253, 9)


def test_concise_minor_reaches_the_create(kernel, dmsetup):
    assert dmsetup("create", "--concise", "x,,9,rw,0 8 zero")[0] == 0
    [create] = kernel.of("DM_DEV_CREATE")
    assert create.flags & DMFlag.PERSISTENT_DEV
    assert os.minor(create.dev) == 9


def test_a_bad_concise_table_line_is_dmsetups_error_not_a_traceback(kernel, dmsetup):
    assert dmsetup("create", "--concise", "x,,,rw,0 abc zero") == (
        1, "", "Invalid format on line 1 of table .\nCommand failed.\n")
    assert kernel.of("DM_DEV_CREATE") == []


def test_concise_devices_before_a_bad_entry_are_created(kernel, dmsetup):
    code, out, err = dmsetup("create", "--concise", "x,,,rw,0 8 zero;y,,,xx,0 8 zero")
    assert code == 1
    assert err == "Invalid flags parameter 'xx' must be 'ro' or 'rw' or empty.\nCommand failed.\n"
    assert len(kernel.of("DM_DEV_CREATE")) == 1


@pytest.mark.parametrize("arg, event_nr", [("-1", 0xFFFFFFFF), ("4294967297", 1), ("7", 7)])
def test_wait_takes_its_event_number_as_dmsetup_does(kernel, dmsetup, arg, event_nr):
    """dmsetup sends (uint32_t) atoi(): -1 waits for any event at all."""
    kernel.handlers["DM_DEV_WAIT"] = device_reply("x", 253, 9)
    assert dmsetup("wait", "--", "x", arg)[0] == 0
    [wait] = kernel.of("DM_DEV_WAIT")
    assert wait.event_nr == event_nr


def test_wipe_table_of_a_missing_device_fails_as_dmsetups_does(kernel, dmsetup):
    """dmsetup's table ioctl fails, and the reload it sends anyway fails too."""
    from fake_kernel import fail

    kernel.handlers["DM_TABLE_STATUS"] = fail(6)
    assert dmsetup("wipe_table", "gone") == (1, "", (
        "device-mapper: table ioctl on gone  failed: No such device or address\n"
        "device-mapper: reload ioctl on gone  failed: No such device or address\n"
        "Command failed.\n"))


def test_measure_on_a_kernel_without_ima_says_what_libdm_says(kernel, dmsetup):
    # Interface 4.43 (Linux 5.10): libdm refuses while building the ioctl,
    # the device unlooked-up; the real kernel's case is in the root tier.
    kernel.version = (4, 43, 0)
    assert dmsetup("measure", "x") == (1, "", (
        "WARNING: IMA measurement unsupported by kernel.  Aborting operation.\n"
        "Couldn't create ioctl argument.\nCommand failed.\n"))
    assert "DM_TABLE_STATUS" not in kernel.commands()
