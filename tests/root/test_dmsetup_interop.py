# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the API creates, dmsetup reads identically, and the other way round.

dmsetup is only a witness here (tests may run it; the library never does).
It always runs with --noudevsync: with udevd stopped it would otherwise wait
forever on its cookie.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import pydevmapper as dm
from tests.root.helpers import dm_block_node, forked_main, gone

pytestmark = pytest.mark.dm_root

FIELDS = "name,uuid,major,minor,open,events,attr,segments"


@pytest.fixture(scope="module")
def dmsetup():
    path = shutil.which("dmsetup")
    if path is None:
        pytest.fail("dmsetup is missing (Debian: dmsetup)")

    def run(*args: str) -> str:
        return subprocess.run([path, "--noudevsync", *args], check=True,
                              capture_output=True, text=True).stdout
    return run


def dmsetup_view(dmsetup, name: str) -> dict:
    line = dmsetup("info", "-c", "--noheadings", "--separator", "|", "-o", FIELDS, name)
    values = line.rstrip("\n").split("|")
    view = dict(zip(FIELDS.split(","), values))
    view["table"] = dmsetup("table", name)
    view["status"] = dmsetup("status", name)
    view["deps"] = dmsetup("deps", "-o", "devno", name)
    return view


def api_view(ctl: dm.Control, name: str) -> dict:
    info = ctl.info(name)
    # dmsetup's attr column: live, inactive, suspended, read-only/writable.
    attr = ("L" if info.live_table else "-") + ("I" if info.inactive_table else "-") \
        + ("s" if info.suspended else "-") + ("r" if info.read_only else "w")
    table = ctl.table(name)
    status = ctl.status(name)
    deps = ctl.deps(name)
    return {
        "name": info.name, "uuid": info.uuid, "major": str(info.major),
        "minor": str(info.minor), "open": str(info.open_count),
        "events": str(info.event_nr), "attr": attr, "segments": str(info.target_count),
        # dmsetup prints "<start> <length> <type> <params>", with the space
        # before empty params; deps as " (major, minor)" pairs.
        "table": "".join(f"{t.start} {t.length} {t.type} {t.params}\n" for t in table),
        "status": "".join(f"{s.start} {s.length} {s.type} {s.status}\n" for s in status),
        "deps": f"{len(deps)} dependencies\t:" + "".join(f" ({d.major}, {d.minor})" for d in deps) + "\n",
    }


def assert_same_view(dmsetup, ctl, name):
    ours, theirs = api_view(ctl, name), dmsetup_view(dmsetup, name)
    assert ours == theirs


def test_api_creates_dmsetup_reads(dm_control, dmsetup, dm_loop_device, dm_name):
    table = dm.Table([dm.Target(0, 1024, "linear", f"{dm_loop_device.devno_str} 0"),
                      dm.Target(1024, 1024, "zero")])
    with dm_control.create_device(dm_name, table, uuid=f"PYDMT-interop-{dm_name}") as dev:
        fd = os.open(dm_block_node(dev.devno), os.O_RDONLY)
        try:
            assert_same_view(dmsetup, dm_control, dm_name)
        finally:
            os.close(fd)
        dev.suspend()
        assert_same_view(dmsetup, dm_control, dm_name)
        dev.resume()


def test_dmsetup_creates_api_reads(dm_control, dmsetup, dm_loop_device, dm_name):
    dmsetup("create", dm_name, "-u", f"PYDMT-interop-{dm_name}",
            "--table", f"0 2048 linear {dm_loop_device.devno_str} 0")
    try:
        dmsetup("load", dm_name, "--table", "0 4096 error")  # an inactive table too
        assert_same_view(dmsetup, dm_control, dm_name)
        assert dm_control.table(dm_name, inactive=True) == dm.Table.parse("0 4096 error")
        listed = {d.name: d for d in dm_control.list_devices()}
        assert listed[dm_name].uuid == f"PYDMT-interop-{dm_name}"
    finally:
        dmsetup("remove", "--retry", dm_name)
    assert not dm_control.exists(dm_name)


def test_a_backslash_in_parameters_reaches_the_target_as_dmsetup_sends_it(
        dm_control, dmsetup, dm_make_loop, dm_name, tmp_path):
    # The kernel reads a backslash in parameters as an escape; libdevmapper
    # doubles each one, so a\b in a table names the path a\b, not ab.  Two symlinks
    # tell which path the kernel opened.  (cryptsetup's keyring-test sends
    # key descriptions with backslashes and expects dmsetup's refusals.)
    first, second = dm_make_loop(1), dm_make_loop(1)
    (tmp_path / "a\\b").symlink_to(first.path)
    (tmp_path / "ab").symlink_to(second.path)
    line = f"0 1024 linear {tmp_path}/a\\b 0"
    names = [dm_name, dm_name + "-dmsetup", dm_name + "-pydmsetup"]
    try:
        dm_control.create_device(names[0], line)
        dmsetup("create", names[1], "--table", line)
        assert forked_main(["--noudevsync", "create", names[2], "--table", line])[0] == 0
        for name in names:
            assert dm_control.deps(name) == [first.devno], name
    finally:
        for name in names:
            gone(dm_control, name)
