# SPDX-License-Identifier: LGPL-2.1-or-later
"""-S evaluation on report rows, without dmsetup (the byte comparisons are in
test_cli_vs_host_dmsetup.py and, on a kernel, tests/root/test_cli_vs_dmsetup.py)."""

from __future__ import annotations

import pytest

from pydevmapper.cli import report, selection

ROWS = [
    {"name": "vg-lv", "uuid": "LVM-abc", "major": 253, "minor": 0, "open": 2, "segments": 1, "attr": "L--w"},
    {"name": "zero1", "uuid": "", "major": 253, "minor": 7, "open": 0, "segments": 2, "attr": "L-sw"},
    {"name": "crypt", "uuid": "CRYPT-LUKS2-x", "major": 253, "minor": 12, "open": -1, "segments": 1,
     "attr": "LI-r"},
]


def _kept(text):
    errors = []
    sel = selection.parse(text, "", errors.append)
    assert not errors
    return [r["name"] for r in ROWS if sel(r)]


@pytest.mark.parametrize("text, names", [
    ("minor>=7", ["zero1", "crypt"]),
    ("minor>7 || segments=2", ["zero1", "crypt"]),
    ("minor<7, open=2", ["vg-lv"]),
    ("open>100", ["crypt"]),  # -1 (--noopencount) is a uint64 to libdm
    ("minor=7.9", ["zero1"]),  # strtoull stops at the dot
    ("uuid=''", ["zero1"]),
    ("uuid=~^LVM-", ["vg-lv"]),
    ("name=~\"[0-9]$\"", ["zero1"]),
    ("name=~[0-9]", []),  # [ ] only quote: the expression is the text "0-9"
    ("name=~\"^.....$\"", ["vg-lv", "zero1", "crypt"]),
    ("name=~\"r.p\"", ["crypt"]),
    ("name=~\"\\\\d\"", []),  # libdm has no \d: it is a literal 'd'
    ("attr=~\"s|r\"", ["zero1", "crypt"]),
    ("!(segments=1)", ["zero1"]),
    ("!(!(segments=1))", ["zero1"]),  # libdm sets the same NOT flag twice
    ("(name=vg-lv # name=crypt) && attr!~I", ["vg-lv"]),
    ("selected=1", ["vg-lv", "zero1", "crypt"]),
])
def test_rows_kept(text, names):
    assert _kept(text) == names


@pytest.mark.parametrize("text, last_line", [
    ("name<3", "Use 'help' for selection to get more help.\n"),
    ("major=~1", "dm_report: incompatible comparison type for selection field major\n"),
    ("minor=1k", "Use 'help' for selection to get more help.\n"),
    ("name=~\"a||\"", "dm_report: failed to create regex matcher for selection field name\n"),
])
def test_bad_selections_raise_after_printing(text, last_line):
    printed = []
    with pytest.raises(report.ReportError):
        selection.parse(text, "", printed.append)
    assert printed and printed[-1].endswith(last_line)


def test_help_reports_nothing():
    printed = []
    sel = selection.parse("help", "", printed.append)
    assert sel.help_only and not sel(ROWS[0])
    assert printed[0].endswith("       }  - List subset end\n \n")
