# SPDX-License-Identifier: LGPL-2.1-or-later
"""Node owner/mode and read-ahead: the checks made before anything happens,
and how pydmsetup reads -U, -G, -M and --readahead.

What the kernel and sysfs do with them is proven in the root tier
(tests/root/test_node_owner_and_read_ahead.py).
"""

from __future__ import annotations

import os

import pytest

from pydevmapper import cparse, readahead
from pydevmapper.cli import options
from pydevmapper.cli.session import Session
from pydevmapper.control import Control
from pydevmapper.errors import ValidationError
from pydevmapper.nodes import NodeDir
from pydevmapper.types import DevNo


@pytest.mark.parametrize("kwargs", [
    dict(node_uid=-1), dict(node_uid=1 << 32), dict(node_uid=0xFFFFFFFF), dict(node_uid="0"),
    dict(node_gid=-1), dict(node_gid=True), dict(node_mode=0o10000), dict(node_mode=-1),
    dict(node_mode=0.5),
])
def test_bad_node_owner_or_mode_raises_before_the_control_node_is_opened(kwargs, tmp_path):
    # The path does not exist: opening it would raise another error.
    with pytest.raises(ValidationError):
        Control(path=str(tmp_path / "missing"), **kwargs)


def test_node_dir_keeps_owner_and_mode():
    nodes = NodeDir("/dev", uid=1000, gid=1001, mode=0o640)
    assert (nodes.uid, nodes.gid, nodes.mode) == (1000, 1001, 0o640)


@pytest.mark.parametrize("text, value", [
    ("10", 10), ("  +10", 10), ("-3x", -3), ("x", 0), ("", 0), ("+", 0), ("99999999999", 1215752191),
    ("9" * 30, -1), ("-" + "9" * 30, 0),
])
def test_atoi_is_glibcs(text, value):
    assert cparse.atoi(text) == value


@pytest.mark.parametrize("text, expected", [
    ("0640", (0o640, "", False)), (" 17", (0o17, "", False)), ("-1", (-1, "", False)),
    ("8", (0, "8", False)), ("0x10", (0, "x10", False)), ("7" * 30, ((1 << 63) - 1, "", True)),
])
def test_strtol_base_8(text, expected):
    assert cparse.strtol(text, 8) == expected


@pytest.mark.parametrize("given, minimum", [
    (["+8"], True), ([" +8"], True), (["8"], False), (["+8", "16"], True), (["auto"], False),
    (["+auto"], True), (["16", "none"], False),
])
def test_read_ahead_minimum_is_sticky_as_in_dmsetup(given, minimum):
    assert options.read_ahead_minimum(given) is minimum


def _session(argv, command):
    from pydevmapper.cli.commands import COMMANDS
    from pydevmapper.cli.session import Plan

    parsed = options.parse("dmsetup", argv)
    s = Session("dmsetup", parsed)
    s.begin(Plan(command, COMMANDS[command], None, False, None))
    return s


@pytest.mark.parametrize("argv, wanted", [
    (["--readahead", "256"], (256, False)), (["--readahead", "+256"], (256, True)),
    (["--readahead", "none"], (0, False)), (["--readahead", "NONE"], (0, False)),
    (["--readahead", "auto"], None), (["--readahead", "-1"], None), (["--readahead", "x"], (0, False)),
    ([], None),
])
def test_read_ahead_request(argv, wanted):
    assert _session(argv, "resume").read_ahead_request() == wanted


def test_node_owner_goes_to_create_only():
    argv = ["-U", "1000", "-G", "-5", "-M", "0640"]
    assert _session(argv, "create")._node_owner() == {
        "node_uid": 1000, "node_gid": (1 << 32) - 5, "node_mode": 0o640}
    for command in ("resume", "mknodes", "rename"):
        assert _session(argv, command)._node_owner() == {}


def test_node_owner_minus_one_leaves_the_creators_id():
    # chown((uid_t)-1) changes nothing: the node stays root's, as it was made.
    assert _session(["-U", "-1", "-G", "4294967295"], "create")._node_owner() == {
        "node_uid": 0, "node_gid": 0}


@pytest.mark.parametrize("mode", ["10000", "-1", "-0640"])
def test_modes_mknod_would_refuse_are_refused_when_read(mode):
    # dmsetup takes them and fails at mknod; pydmsetup says so up front.
    with pytest.raises(options.UsageError, match=f"Invalid argument for --mode: {mode}"):
        options.parse("dmsetup", ["-M", mode, "create", "x"])


def test_read_ahead_rounds_up_to_whole_kib(tmp_path, monkeypatch):
    sysfs = tmp_path / "read_ahead_kb"
    sysfs.write_text("128\n")
    monkeypatch.setattr(readahead, "sysfs_path", lambda devno: str(sysfs))
    assert readahead.read(DevNo(253, 0)) == 256
    assert readahead.write(DevNo(253, 0), 7) == 8
    assert sysfs.read_text() == "4"
    # minimum: never lowers it
    assert readahead.write(DevNo(253, 0), 2, minimum=True) == 8
    assert sysfs.read_text() == "4"
    assert readahead.write(DevNo(253, 0), 100, minimum=True) == 100


def test_read_ahead_of_a_missing_device_is_device_not_found(tmp_path, monkeypatch):
    from pydevmapper.errors import DeviceNotFoundError

    monkeypatch.setattr(readahead, "sysfs_path", lambda devno: os.fspath(tmp_path / "none"))
    with pytest.raises(DeviceNotFoundError) as info:
        readahead.read(DevNo(253, 9), "vol")
    assert (info.value.command, info.value.device) == ("read-ahead", "vol")
