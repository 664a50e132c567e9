"""pydmsetup against the host's dmsetup where no kernel is needed.

Option-parsing errors, usage and field help, splitname, udevflags and the
cookie checks are pure user space: both tools must print the same bytes
and exit alike.  Skips when dmsetup is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("dmsetup") is None, reason="needs dmsetup")

PY = [sys.executable, "-c",
      "import sys; from pydevmapper.cli import main; sys.exit(main(prog='dmsetup'))"]

CASES = [
    [], ["--help"], ["-h", "-c"], ["help", "-c"], ["bogus"], ["--bogus"], ["-Z"], ["--tab"],
    ["--no"], ["--readonly=1"], ["-o"], ["--verbose"], ["--uuid"], ["-j", "1", "info"],
    ["--table", "x", "-n", "create", "a"], ["--addnodeonresume", "--addnodeoncreate", "ls"],
    ["--manglename", "foo", "ls"], ["create"], ["remove_all", "x"], ["setgeometry", "a", "b"],
    ["wait", "a", "b", "c"], ["message", "a"], ["splitname"], ["udevflags", "0x10", "0x20"],
    ["splitname", "vg-lv"], ["splitname", "a--b-c--d-e-f"], ["splitname", "x-", "--noheadings"],
    ["splitname", "--nameprefixes", "--noheadings", "--rows", "vg-lv"],
    ["splitname", "a-b", "LVM", "-o", "subsystem,vg_name", "--separator", "|"],
    ["splitname", "a-b", "-o", "bogus"], ["splitname", "a-b", "-o", "help"],
    ["splitname", "a-b", "-c", "-O", "vg_name"], ["splitname", "a-b-c", "--rows"],
    ["splitname", "a-b-c", "--rows", "--noheadings"],
    ["splitname", "a-b-c", "-o", "vg_name,vg_name,lv_name", "--rows", "--separator=,"],
    ["splitname", "a-b-c", "-S", "vg_name=a"], ["splitname", "a-b-c", "-S", "vg_name=b"],
    ["splitname", "a-b-c", "-o", "vg_name", "--nameprefixes", "--unquoted"],
    ["splitname", "a-b", "-o", "splitname_all"], ["splitname", "x", "-o", "lv_name,+vg"],
    ["splitname", "--", "-a-b"], ["--manglename=hex", "splitname", "x"],
    ["udevflags", "0x0d4dffff"], ["udevflags", "0xffff0001"], ["udevflags", "0"],
    ["udevflags", "abc"], ["udevflags", "077777777777"], ["udevflags", "0x1ffffffff"],
    ["udevcomplete", "0x00200000"], ["udevcomplete", "abc"],
]


def _run(cmd):
    p = subprocess.run(cmd, capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a) or "no-args")
def test_same_bytes_as_dmsetup(args):
    assert _run(PY + args) == _run(["dmsetup"] + args)


def test_version_option_prints_library_line_and_exits_zero():
    rc, out, _ = _run(PY + ["--version"])
    assert rc == 0 and out.startswith(b"Library version:   ")


def test_abbreviations_resolve_like_getopt():
    from pydevmapper.cli import options

    assert options.parse("dmsetup", ["--nohead", "ls"]).counts == {"noheadings": 1}
    with pytest.raises(options.UsageError, match="ambiguous"):
        options.parse("dmsetup", ["--no"])
    assert options.parse("dmsetup", ["info", "-cvo", "name"]).values == {"options": "name"}


def test_crypt_and_integrity_keys_hidden():
    from pydevmapper.cli.commands import _hide_keys

    assert _hide_keys("crypt", "aes-xts-plain64 abcd 0 7:0 0") == "aes-xts-plain64 0000 0 7:0 0"
    assert _hide_keys("crypt", "aes :32:logon:k 0 7:0 0") == "aes :32:logon:k 0 7:0 0"
    assert (_hide_keys("integrity", "7:0 0 32 J 1 internal_hash:hmac(sha256):beef")
            == "7:0 0 32 J 1 internal_hash:hmac(sha256):0000")
