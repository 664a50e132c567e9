# SPDX-License-Identifier: LGPL-2.1-or-later
"""ls --tree without a kernel: the dependency graph from a fake control and
the drawing, against output dmsetup 1.02.185 printed for the same devices.

The devices: base (254:0) linear over loop0 (7:0); stripe (254:1) striped
over loop0 and loop1 (the kernel lists its deps as 7:1, 7:0); z (254:2) zero.
"""

from __future__ import annotations

from typing import Dict, List

import pytest

from pydevmapper.cli import tree
from pydevmapper.deptree import DevNo, dependency_graph
from pydevmapper.errors import DeviceNotFoundError
from pydevmapper.flags import DMFlag
from pydevmapper.types import DeviceInfo, ListedDevice


class FakeControl:
    def __init__(self, devices: Dict[str, tuple], deps: Dict[DevNo, List[DevNo]]) -> None:
        self.devices = devices  # name -> (devno, uuid, flags, open_count)
        self.dep_map = deps

    def list_devices(self, uuids: bool = True) -> List[ListedDevice]:
        return [ListedDevice(n, d[0].major, d[0].minor, None, None) for n, d in self.devices.items()]

    def info(self, devno: DevNo) -> DeviceInfo:
        for name, (d, uuid, flags, opened) in self.devices.items():
            if d == devno:
                return DeviceInfo(name, uuid, d.major, d.minor, opened, 0, 1, flags)
        raise DeviceNotFoundError(6, "DM_DEV_STATUS", str(devno), None)

    def deps(self, devno: DevNo) -> List[DevNo]:
        return self.dep_map.get(devno, [])


LIVE = DMFlag.ACTIVE_PRESENT
BASE, STRIPE, Z = DevNo(254, 0), DevNo(254, 1), DevNo(254, 2)
LOOP0, LOOP1, LOOP2 = DevNo(7, 0), DevNo(7, 1), DevNo(7, 2)


@pytest.fixture
def flat():
    return dependency_graph(FakeControl(
        {"base": (BASE, "", LIVE, 0), "stripe": (STRIPE, "", LIVE, 0), "z": (Z, "", LIVE, 0)},
        {BASE: [LOOP0], STRIPE: [LOOP1, LOOP0]}))


def _draw(graph, options: str = "", utf8: bool = False, width: int = 80) -> str:
    opts = tree.parse_options(options, utf8)
    names = {(7, 0): "loop0", (7, 1): "loop1", (7, 2): "loop2",
             (254, 0): "dm-0", (254, 1): "dm-1", (254, 2): "dm-2", (254, 3): "dm-3"}
    return tree.render(graph, opts, width, lambda ma, mi: names.get((ma, mi))).decode()


def test_graph_orders_follow_libdm(flat):
    assert flat.top == [BASE, STRIPE, Z]
    assert flat.bottom == [LOOP0, LOOP1, Z]
    assert flat[LOOP0].used_by == [BASE, STRIPE]
    assert flat.children(Z) == [] and flat.children(Z, inverted=True) == []
    assert flat[LOOP0].name == "" and flat[LOOP0].info is None


@pytest.mark.parametrize("options,expected", [
    ("ascii", "base (254:0)\n `- (7:0)\nstripe (254:1)\n |- (7:1)\n `- (7:0)\nz (254:2)\n"),
    ("ascii,inverted", " (7:0)\n |-base (254:0)\n `-stripe (254:1)\n (7:1)\n `-stripe (254:1)\nz (254:2)\n"),
    ("ascii,compact", "base (254:0)--- (7:0)\nstripe (254:1)-+- (7:1)\n               `- (7:0)\nz (254:2)\n"),
    ("ascii,compact,inverted",
     " (7:0)-+-base (254:0)\n       `-stripe (254:1)\n (7:1)---stripe (254:1)\nz (254:2)\n"),
    ("ascii,nodevice", "base\nstripe\nz\n"),
    ("ascii,nodevice,inverted", " |-base\n `-stripe\n `-stripe\nz\n"),
    ("ascii,blkdevname", "base <dm-0> (254:0)\n `- <loop0> (7:0)\nstripe <dm-1> (254:1)\n"
                         " |- <loop1> (7:1)\n `- <loop0> (7:0)\nz <dm-2> (254:2)\n"),
    ("ascii,blkdevname,nodevice", "base <dm-0>\n `- <loop0>\nstripe <dm-1>\n |- <loop1>\n"
                                  " `- <loop0>\nz <dm-2>\n"),
    ("ascii,active,rw,open,uuid", "base (254:0) [ACTIVE, RW, 0, ]\n `- (7:0)\n"
                                  "stripe (254:1) [ACTIVE, RW, 0, ]\n |- (7:1)\n `- (7:0)\n"
                                  "z (254:2) [ACTIVE, RW, 0, ]\n"),
    (",ascii", "base (254:0)\n `- (7:0)\nstripe (254:1)\n |- (7:1)\n `- (7:0)\nz (254:2)\n"),
    ("utf", "base (254:0)\n \u2514\u2500 (7:0)\nstripe (254:1)\n \u251c\u2500 (7:1)\n"
            " \u2514\u2500 (7:0)\nz (254:2)\n"),
])
def test_drawings_match_dmsetup(flat, options, expected):
    assert _draw(flat, options) == expected


def test_default_symbols_follow_the_locale(flat):
    assert _draw(flat, "", utf8=True) == _draw(flat, "utf")
    assert _draw(flat, "", utf8=False) == _draw(flat, "ascii")


def test_vt100_bytes(flat):
    opts = tree.parse_options("vt100", False)
    out = tree.render(flat, opts, 80, lambda ma, mi: None)
    assert out.startswith(b"base (254:0)\n \033(0\017mq\033(B (7:0)\nstripe (254:1)\n \033(0\017tq\033(B (7:1)\n")


def test_bad_options_name_the_rest_of_the_string():
    with pytest.raises(tree.BadOption, match=r"^bogus,ascii$"):
        tree.parse_options("bogus,ascii", False)
    assert tree.parse_options("a,c,i", False) == tree.TreeOptions(
        tree.ASCII, active=True, compact=True, inverted=True)
    assert tree.abbreviated_words("de,b,,", ("devno", "blkdevname", "devname")) == [
        "devno", "blkdevname", "devno"]


def test_stacked_and_compact_widths():
    graph = dependency_graph(FakeControl(
        {"base": (BASE, "", LIVE, 1), "mid": (STRIPE, "MID-1", LIVE | DMFlag.READONLY, 2),
         "top": (Z, "", LIVE | DMFlag.SUSPEND, 0), "other": (DevNo(254, 3), "", LIVE, 0)},
        {BASE: [LOOP0], STRIPE: [LOOP2, BASE], Z: [STRIPE], DevNo(254, 3): [STRIPE]}))
    assert graph.top == [Z, DevNo(254, 3)]
    assert _draw(graph, "ascii") == (
        "top (254:2)\n `-mid (254:1)\n    |- (7:2)\n    `-base (254:0)\n       `- (7:0)\n"
        "other (254:3)\n `-mid (254:1)\n    |- (7:2)\n    `-base (254:0)\n       `- (7:0)\n")
    # dmsetup counts a level's compact symbol twice below the second level
    assert _draw(graph, "ascii,compact") == (
        "top (254:2)---mid (254:1)-+- (7:2)\n"
        "                             `-base (254:0)--- (7:0)\n"
        "other (254:3)---mid (254:1)-+- (7:2)\n"
        "                               `-base (254:0)--- (7:0)\n")
    assert _draw(graph, "ascii,inverted") == (
        " (7:0)\n `-base (254:0)\n    `-mid (254:1)\n       |-top (254:2)\n       `-other (254:3)\n"
        " (7:2)\n `-mid (254:1)\n    |-top (254:2)\n    `-other (254:3)\n")
    assert _draw(graph, "ascii,active,rw,open,uuid,nodevice").splitlines()[:2] == [
        "top [SUSPENDED, RW, 0, ]", " `-mid [ACTIVE, RO, 2, MID-1]"]


def test_truncation_at_the_width():
    """Columns count from 1 and the cut is at the 80th: 79 shown, then "...",
    unless the line ends at exactly 80."""
    def one(name: str, options: str = "ascii") -> str:
        return _draw(dependency_graph(FakeControl({name: (BASE, "", LIVE, 0)}, {})), options)

    assert one("n" * 90) == "n" * 79 + "...\n"
    assert one("n" * 90, "ascii,notrunc") == "n" * 90 + " (254:0)\n"
    assert one("n" * 72) == "n" * 72 + " (254:0)\n"        # 80 columns: whole
    assert one("n" * 73) == "n" * 73 + " (254:0"[:6] + "...\n"  # 81: cut
    assert one("n" * 78 + "\u00e9\u00e9") == "n" * 78 + "\u00e9...\n"  # a UTF-8 character at the cut
