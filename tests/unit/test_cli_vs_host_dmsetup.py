# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup against the host's dmsetup where no kernel is needed.

Option-parsing errors, usage and field help, splitname, udevflags and the
cookie checks are pure user space: both tools must print the same bytes
and exit alike.  Skips when dmsetup is not installed.
"""

from __future__ import annotations

import os
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
    ["udevcookies", "x"], ["udevcomplete_all", "-y", "x"], ["udevcomplete_all", "-y", "1", "2"],
    ["udevreleasecookie"], ["udevreleasecookie", "abc"], ["udevreleasecookie", "0"],
    ["--udevcookie", "abc", "udevreleasecookie"], ["udevcreatecookie", "x"],
    ["udevflags", "0x0d4d0001 "], ["udevflags", "08"], ["udevflags", "0x"],
    # switch values dmsetup checks as getopt hands them over, first bad one first
    ["-M", "abc", "ls"], ["-M", "0", "ls"], ["-M", "0x10", "ls"], ["--mode=8", "ls"],
    ["-M", "99999999999999999999999", "ls"], ["-M", "40000000000", "ls"], ["-M", " 0640", "ls"],
    ["-M", "", "ls"], ["--count", "-1", "ls"], ["--count", "x", "ls"], ["--interval", "0", "ls"],
    ["--interval", "x", "ls"], ["--manglename", "x", "-M", "abc", "ls"],
    ["-M", "abc", "--manglename", "x", "ls"], ["-M", "abc", "--bogus", "ls"],
    ["--bogus", "-M", "abc", "ls"], ["--readahead", "-5", "ls"], ["--readahead", "-1", "ls"],
    ["--readahead", "4294967294", "ls"], ["--readahead", "+-3", "ls"], ["--readahead", "NONE", "ls"],
    ["-U", "abc", "-G", "-5", "ls"],
    # --count/--interval: a report again, headed, after each tick; other output again at once
    ["splitname", "vg-lv", "--count", "3", "--interval", "1"],
    ["splitname", "vg-lv", "--count", "2", "--noheadings"], ["splitname", "--rows", "vg-lv", "--count", "2"],
    ["splitname", "vg-lv", "--count", "1"], ["splitname", "a-b", "-S", "vg_name=x", "--count", "2"],
    ["splitname", "a-b", "-S", "vg_name=a", "--count", "2", "-o", "vg_name,selected"],
    ["splitname", "a-b", "-o", "help", "--count", "2"], ["udevflags", "0x10", "--count", "2"],
    ["splitname", "a-b", "--count", "2", "--interval", "1", "-o", "lv_name", "--nameprefixes"],
]


# -S is parsed before the kernel is asked anything, and splitname reports
# without one, so the selection grammar and its messages compare here.
SELECTIONS = [
    "vg_name=a", "vg_name!=a", "vg_name=a,lv_name=b", "vg_name=a#lv_name=x", "vg_name=a||lv_name=x",
    "vg_name=a&&lv_name=b", "( vg_name = a ) && ( lv_name = \"b\" )", "!( vg_name = a ) # lv_layer=c",
    "vg_name=a && (lv_name=x || lv_layer=c)", "!(vg_name=x)", "!(!(vg_name=a))", "(((vg_name=a)))",
    "VG_NAME=a", "vgname=a", "vg_name='a b'", "vg_name=a\t,lv_name=b", "vg_name==a", "vg_name=", "subsystem=\"\"",
    "vg_name=~\"^a$\"", "vg_name=~a|x", "vg_name=~[a-c]", "vg_name=~{a}", "vg_name=~(a)", "vg_name=~\"[^b]\"",
    "vg_name=~\"a+\"", "vg_name=~\"a?b?c?\"", "lv_name=~b$", "vg_name=~\"\\d\"", "vg_name=~\"a{2}\"",
    "vg_name=~\")\"", "vg_name!~a", "selected=1", "selected>0", "selected=0", "all", "ALL", "", "?", "help",
    # failures
    "foo=1", "vg-name=a", "splitname_vg_name=a", "help=1", " ", "vg_name", "vg_name<a", "vg_name since a",
    "vg_name=a b", "vg_name=a)", "vg_name=a and lv_name=b", "vg_name=a,", "vg_name=a||", "(vg_name=a", "()", "!",
    "!(", "!vg_name=x", "vg_name=\"x", "vg_name=~", "vg_name=~ ", "vg_name=~(a", "vg_name=~\"a(\"", "vg_name=~*",
    "vg_name=~\"\"", "vg_name=~\"a||\"", "vg_name=~\"[a-\"", "major=~x", "major=k", "major=-1", "major=\"1\"",
    "major=1k", "major=1%", "major=99999999999999999999", "major=1", "major=1 && minor=2", "region_start=1%",
    "a_b_c_d_e_f_g_h_i_j_k_l_m_n_o_p_q_r_s_t_u_v_w_x_y_z_a_b_c_d_e_f=1", "name=[a,b",
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_selection_same_bytes_as_dmsetup(selection):
    args = ["splitname", "a-b-c", "-o", "vg_name,lv_name,selected", "-S", selection]
    assert _run(PY + args) == _run(["dmsetup"] + args)


@pytest.mark.parametrize("selection", ["name<3", "segments=2k", "bogus=1", "major=~1", "name=~\"(\""])
def test_bad_selection_fails_before_the_kernel(selection):
    args = ["info", "-c", "-S", selection]
    assert _run(PY + args) == _run(["dmsetup"] + args)


def _run(cmd, stdin=b"", env=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=30, env=env)
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
    from pydevmapper.cli.keys import hide_keys as _hide_keys

    assert _hide_keys("crypt", "aes-xts-plain64 abcd 0 7:0 0") == "aes-xts-plain64 0000 0 7:0 0"
    assert _hide_keys("crypt", "aes :32:logon:k 0 7:0 0") == "aes :32:logon:k 0 7:0 0"
    assert (_hide_keys("integrity", "7:0 0 32 J 1 internal_hash:hmac(sha256):beef")
            == "7:0 0 32 J 1 internal_hash:hmac(sha256):0000")


# -- udev cookies: real SysV semaphores on the host, each removed again ---------

def _cookie_keys():
    from pydevmapper import udev

    return {c.cookie for c in udev.list_cookies()}


@pytest.fixture
def cookies():
    """Cookies made for a test; whatever is left of them goes, pass or fail."""
    from pydevmapper import udev

    made = []

    def make(n=1):
        for _ in range(n):
            made.append(udev.COOKIE_MAGIC << 16 | udev.create_cookie(0) & 0xFFFF)
        return made[-n:]

    before = _cookie_keys()
    try:
        yield make
    finally:
        for key in set(made) | (_cookie_keys() - before):
            try:
                udev.remove_cookie(key)
            except OSError:
                pass
    assert not (_cookie_keys() - before), "a test leaked a cookie semaphore"


def _same(args, stdin=b"", env=None):
    dm = _run(["dmsetup"] + args, stdin, env)
    py = _run(PY + args, stdin, env)
    assert py == dm
    return dm


def test_udevcookies_lists_cookies_like_dmsetup(cookies):
    keys = cookies(2)
    rc, out, err = _same(["udevcookies"])
    assert rc == 0 and out.startswith(b"Cookie       Semid      Value")
    for key in keys:
        assert f"0x{key:<10x} ".encode() in out


def test_udevcomplete_all_prompt_and_age(cookies):
    keys = cookies(1)
    _same(["udevcomplete_all"], stdin=b"n\n")          # declined: nothing destroyed
    _same(["udevcomplete_all", "3"], stdin=b"")         # EOF is "no"
    # Fresh cookies are younger than any age: both tools skip them.
    rc, out, _ = _same(["udevcomplete_all", "-y", "10000000"])
    assert rc == 0 and b"destroyed. " in out
    assert set(keys) <= _cookie_keys()


def test_udevcomplete_all_removes_old_enough_cookies(cookies):
    """Age 0 destroys every cookie: run on our own only via the API's listing."""
    from pydevmapper.cli import udev_cookies

    assert udev_cookies.complete_all_summary(2, 1) == (
        "2 semaphores with keys prefixed by 3405 (0xd4d) destroyed. 1 skipped.\n")
    assert udev_cookies.complete_all_warning(5).endswith(
        "older than 5 minutes with keys that have a prefix 3405 (0xd4d).")


def test_udevcreatecookie_like_dmsetup(cookies):
    before = _cookie_keys()
    try:
        dm = _run(["dmsetup", "udevcreatecookie"])
        py = _run(PY + ["udevcreatecookie"])
    finally:
        cookies(0)  # the fixture removes whatever appeared
    assert py[0] == dm[0] == 0 and py[2] == dm[2]
    if dm[1]:  # udev sync works here: each printed its new cookie's key
        import re
        for out in (dm[1], py[1]):
            assert re.fullmatch(rb"0x0D4D[0-9A-F]{4}\n", out)
        assert int(py[1], 16) in _cookie_keys() - before
    else:  # no udevd (or no kernel driver): cookie 0, nothing printed
        assert py[1] == b""


def test_udevreleasecookie_like_dmsetup(cookies):
    import os

    key, = cookies(1)
    for args, env in ((["udevreleasecookie", hex(key)], None),
                      (["udevreleasecookie", "0x12345"], None),
                      (["--udevcookie", hex(key), "udevreleasecookie"], None),
                      (["udevreleasecookie"], dict(os.environ, DM_UDEV_COOKIE=hex(key))),
                      (["udevreleasecookie"], dict(os.environ, DM_UDEV_COOKIE="junk")),
                      (["--noudevsync", "udevreleasecookie", hex(key)], None)):
        if key not in _cookie_keys():
            key, = cookies(1)
            args = [hex(key) if a.startswith("0x0d4d") or a.startswith("0xd4d") else a
                    for a in args]
        dm = _run(["dmsetup"] + args, env=env)
        if key not in _cookie_keys():  # dmsetup released it (udev sync works here)
            key, = cookies(1)
            args = [hex(key) if a.startswith("0xd4d") else a for a in args]
            if env and "DM_UDEV_COOKIE" in env and env["DM_UDEV_COOKIE"] != "junk":
                env = dict(env, DM_UDEV_COOKIE=hex(key))
        py = _run(PY + args, env=env)
        assert py == dm, args


def test_udevcomplete_on_a_cookie(cookies):
    key, = cookies(1)
    _same(["udevcomplete", hex(0x00400000 | key & 0xFFFF)])
    _same(["udevcomplete", "0x0d4d0000"])


def test_cookie_and_age_parsing():
    from pydevmapper.cli.udev_cookies import parse_age, parse_cookie

    assert parse_cookie("0x0d4d0001") == 0x0D4D0001
    assert parse_cookie("010") == 8 and parse_cookie(" 7") == 7
    for bad in ("0", "-1", "08", "0x", "1 ", "0x1_0", "4294967296", "\u0663", ""):
        assert parse_cookie(bad) is None, bad
    assert parse_age("5") == 5 and parse_age(" 12x") == 12 and parse_age("x") is None


def test_a_missing_control_node_is_made_before_the_open(tmp_path):
    """libdevmapper makes ``$DM_DEV_DIR/mapper/control`` (10:236) when it is
    missing, then opens it; without root, its mknod fails and says so."""
    seen = []
    for tool, cmd in (("py", PY), ("dm", ["dmsetup"])):
        dev_dir = tmp_path / tool
        dev_dir.mkdir()
        code, out, err = _run([*cmd, "ls"], env={**os.environ, "DM_DEV_DIR": str(dev_dir)})
        made = os.path.exists(dev_dir / "mapper" / "control")
        seen.append((code, out, err.replace(bytes(dev_dir), b"DIR"), made))
    assert seen[0] == seen[1]
    assert seen[0][3] == (os.geteuid() == 0)
