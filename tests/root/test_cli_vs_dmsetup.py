# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup against Debian's dmsetup on the same kernel state, byte for byte.

Each case runs both tools with the same arguments (always --noudevsync:
the guest may have no udevd to answer a cookie) and compares stdout, stderr
and exit status.  Commands that change state run each tool on its own copy
of the starting state, rebuilt between the two runs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.root.helpers import DISK_AT_CREATE, NOBODY, dmsetup_installed, forked_main, gone  # noqa: F401 (fixture)

pytestmark = [pytest.mark.dm_root,
              pytest.mark.usefixtures("dmsetup_installed")]

PY = [sys.executable, "-c",
      "import sys; from pydevmapper.cli import main; sys.exit(main(prog='dmsetup'))"]



def _run(tool, args, stdin=b"", unprivileged=False):
    if tool == "py":
        return forked_main(["--noudevsync", *args], stdin, unprivileged)
    ids = dict(user=NOBODY, group=NOBODY, extra_groups=[]) if unprivileged else {}
    p = subprocess.run(["dmsetup", "--noudevsync", *args], input=stdin,
                       capture_output=True, timeout=60, **ids)
    return p.returncode, p.stdout, p.stderr


def same(args, stdin=b"", reset=None, unprivileged=False):
    """Run both tools; ``reset`` rebuilds the starting state before each run."""
    if reset:
        reset()
    dm = _run("dm", args, stdin, unprivileged)
    if reset:
        reset()
    py = _run("py", args, stdin, unprivileged)
    assert py[1].decode(errors="replace") == dm[1].decode(errors="replace"), args
    assert py[2].decode(errors="replace") == dm[2].decode(errors="replace"), args
    assert py[0] == dm[0], args
    return dm


@pytest.fixture
def zero_dev(dm_make_device):
    return dm_make_device("0 2048 zero", uuid="PYDMT-zero-uuid")


@pytest.fixture
def linear_dev(dm_make_device, dm_loop_device):
    return dm_make_device(f"0 4096 linear {dm_loop_device.path} 0\n4096 4096 zero")


READ_CASES = [
    ["info", "{z}"], ["info", "-c", "{z}"], ["info", "-C", "{z}", "{l}"],
    ["info", "-c", "-o", "name,uuid,suspended,tables_loaded,readonly,devno,blkdevname", "{z}"],
    ["info", "-c", "--noheadings", "{z}", "{l}"], ["info", "-c", "--separator", "|", "{l}"],
    ["info", "-j", "{zmaj}", "-m", "{zmin}", "-c", "--nameprefixes", "--noheadings", "--rows",
     "-o", "name,uuid,suspended"],
    ["info", "-c", "-o", "name,device_count,devnos_used", "{l}"],
    ["info", "-c", "-O", "-minor", "-o", "name,minor", "{z}", "{l}"],
    ["info", "-c", "--rows", "{z}"], ["info", "-c", "--unquoted", "--nameprefixes", "{z}"],
    ["info", "-u", "PYDMT-zero-uuid"], ["info", "nonexistent-pydmt"],
    ["info", "-c", "nonexistent-pydmt"],
    ["deps", "{l}"], ["deps", "-o", "blkdevname", "{l}"], ["deps", "-o", "devname", "{l}"],
    ["deps", "{z}", "{l}"], ["deps", "nonexistent-pydmt"],
    ["table", "{z}"], ["table", "{l}"], ["table", "{z}", "{l}"], ["table", "--target", "zero", "{l}"],
    ["table", "--concise", "{z}", "{l}"], ["table", "-v", "{z}"], ["table", "-u", "PYDMT-zero-uuid"],
    ["table", "--inactive", "{z}"], ["table", "nonexistent-pydmt"],
    ["status", "{z}"], ["status", "{l}"], ["status", "-v", "{z}", "{l}"],
    ["status", "nonexistent-pydmt"], ["status", "--target", "linear", "{l}"],
    ["measure", "{z}"], ["measure", "{l}"], ["measure", "-v", "{z}", "{l}"], ["measure", "--inactive", "{l}"],
    ["measure", "--target", "linear", "{l}"], ["measure", "nonexistent-pydmt"],
    ["targets"], ["target-version", "zero", "linear"], ["target-version", "nosuchtarget"],
    ["mangle", "{z}"], ["mknodes", "{z}"], ["wait", "{z}", "5"],
    # --count/--interval: a report again after each tick, other output again at once
    ["info", "-c", "--count", "2", "--interval", "1", "{z}", "{l}"],
    ["info", "-c", "--count", "2", "-S", "name={z}", "-o", "name,events"],
    ["info", "--count", "2", "{z}"], ["status", "--count", "2", "{z}", "{l}"],
    ["table", "--concise", "--count", "2", "{z}", "{l}"], ["info", "-c", "--count", "3", "nonexistent-pydmt"],
]


@pytest.mark.parametrize("case", READ_CASES, ids=lambda c: "_".join(c)[:60])
def test_read_commands(case, zero_dev, linear_dev):
    z, l = zero_dev.name, linear_dev.name
    args = [a.format(z=z, l=l, zmaj=zero_dev.devno.major, zmin=zero_dev.devno.minor) for a in case]
    same(args)


# -S on the same devices: comparisons on each field type, logical operators,
# regular expressions, fields outside -o (deps), -S on other commands, and
# the failures libdm reports while parsing or creating the selection.
SELECT_CASES = [
    ["info", "-c", "-S", "name={z}"], ["info", "-c", "-S", "name!={z}", "{z}", "{l}"],
    ["info", "-c", "-S", "name='{l}' || name=\"{z}\""], ["info", "-c", "-S", "segments>1"],
    ["info", "-c", "-S", "segments<=1 && uuid=~zero"], ["info", "-c", "-S", "segments>=2 # uuid=~^PYDMT"],
    ["info", "-c", "-S", "!(segments=1)"], ["info", "-c", "-S", "!(!(segments=1))"],
    ["info", "-c", "-S", "(name={z} || name={l}), open=0"], ["info", "-c", "-S", "minor={zmin}"],
    ["info", "-c", "-S", "major>=1 && minor<1000000 && events<5", "-o", "name,major,events"],
    ["info", "-c", "-S", "attr=L--w", "{z}"], ["info", "-c", "-S", "suspended=Active,readonly!=Read-only", "{l}"],
    ["info", "-c", "-S", "uuid=PYDMT-zero-uuid"], ["info", "-c", "-S", "uuid=''", "{z}", "{l}"],
    ["info", "-c", "-S", "name=~\"^{z}$\""], ["info", "-c", "-S", "name!~[0-9]$", "{z}"],
    ["info", "-c", "-S", "uuid=~(zero|none)"], ["info", "-c", "-S", "devno=~{zmaj}:"],
    ["info", "-c", "-S", "device_count>0", "-o", "name,device_count"],
    ["info", "-c", "-S", "devnos_used=~^7: && blkdevs_used=~loop", "-o", "name"],
    ["info", "-c", "-S", "read_ahead>=0", "-o", "name,read_ahead", "{z}"],
    ["info", "-c", "-S", "segments=2", "-o", "name,selected", "{z}", "{l}"],
    ["info", "-c", "-S", "all", "{z}"], ["info", "-c", "-S", "", "{z}"],
    ["info", "-c", "--noheadings", "-S", "open=0", "-o", "name", "-O", "-name", "{z}", "{l}"],
    ["info", "-c", "-S", "help", "{z}"], ["info", "-S", "segments=2"],
    ["table", "-S", "name={z}"], ["status", "-S", "segments=2"], ["deps", "-S", "name={l}"],
    ["table", "-S", "name=nonexistent-pydmt"],
    # failures
    ["info", "-c", "-S", "segments>x"], ["info", "-c", "-S", "name<1"], ["info", "-c", "-S", "bogus=1"],
    ["info", "-c", "-S", "segments=2k"], ["info", "-c", "-S", "segments=1%"], ["info", "-c", "-S", "name=~\"(\""],
    ["info", "-c", "-S", "major=~1"], ["info", "-c", "-S", "name={z} and"], ["info", "-c", "-S", "(name={z}"],
    ["info", "-c", "-S", "!name={z}"], ["info", "-c", "-S", "events=99999999999999999999"],
    ["table", "-S", "bogus=1"], ["status", "-S", "name"],
]


@pytest.mark.parametrize("case", SELECT_CASES, ids=lambda c: "_".join(c)[:60])
def test_select(case, zero_dev, linear_dev):
    z, l = zero_dev.name, linear_dev.name
    args = [a.format(z=z, l=l, zmaj=zero_dev.devno.major, zmin=zero_dev.devno.minor) for a in case]
    same(args)


def test_version_differs_only_in_library_line():
    dm = _run("dm", ["version"])
    py = _run("py", ["version"])
    assert py[0] == dm[0] == 0
    assert py[1].splitlines()[1:] == dm[1].splitlines()[1:]
    assert py[2] == dm[2]


def test_ls_forms(zero_dev, linear_dev):
    # Other devices may exist in the guest; both tools see the same list.
    for args in (["ls"], ["ls", "-o", "devname"], ["ls", "-o", "blkdevname"],
                 ["ls", "--target", "zero"], ["info", "-c", "-S", "name=" + zero_dev.name]):
        same(args)


def test_create_remove_roundtrip(dm_control, dm_name, dm_loop_device):
    reset = lambda: gone(dm_control, dm_name)  # noqa: E731
    same(["create", dm_name, "--table", "0 100 zero"], reset=reset)
    same(["create", dm_name, "-u", "PYDMT-uuid-1", "-r", "--table", "0 100 zero"], reset=reset)
    same(["create", dm_name, "-v", "--table", "0 100 zero"], reset=reset)
    same(["create", dm_name, "-n"], reset=reset)
    same(["create", dm_name], stdin=b"0 100 zero\n# comment\n\n100 100 error\n", reset=reset)
    same(["create", dm_name, "--table", "0 100 nosuchtarget"], reset=reset)
    same(["create", dm_name, "--table", "0 100 linear /dev/nonexistent 0"], reset=reset)
    same(["create", dm_name, "--table", "x y z"], reset=reset)
    # Comments after the parameters, a gap (the kernel's refusal), a bad
    # third line on stdin: one parser, the API's parse_targets, for all.
    same(["create", dm_name, "--table", "0 100 zero # no parameters"], reset=reset)
    same(["create", dm_name], stdin=b"0 100 zero\n200 8 zero\n", reset=reset)
    same(["create", dm_name], stdin=b"0 100 zero\n\n100 +8 zero\n", reset=reset)
    same(["create", dm_name], stdin=b"0 100 zero\n100 5x zero\n", reset=reset)
    same(["create", dm_name], stdin=b"0 -8 zero\n", reset=reset)
    same(["create", dm_name], stdin=b"0 100 zero\n100\n", reset=reset)
    same(["create", "--concise", f"{dm_name},,,ro,0 100 zero,100 8 error"], reset=reset)
    gone(dm_control, dm_name)


def test_create_with_a_device_number(dm_control, dm_name):
    # -j/-m reach DM_DEV_CREATE (with a table, and with --notable, whose
    # create is the whole command); -v prints the number the kernel gave.
    from pydevmapper.cli.device_commands import dm_major

    reset = lambda: gone(dm_control, dm_name)  # noqa: E731
    major = dm_major()
    for minor, extra in ((200, ["--notable"]), (201, ["--table", "0 8 zero"])):
        same(["create", dm_name, "-j", str(major), "-m", str(minor), "-v", *extra], reset=reset)
        assert dm_control.info(dm_name).devno == (major, minor)
    same(["create", "--concise", f"{dm_name},,202,rw,0 8 zero"], reset=reset)
    assert dm_control.info(dm_name).devno == (major, 202)
    gone(dm_control, dm_name)


CONCISE_CASES = [
    "{n},,,rw,0 abc zero", "{n},,,rw,0 8 zero;{n}-b,,,ro,0 8 zero,8 x error",
    "{n},,,rw,0 8 zero;{n}-b,,,rw,0 8 zero;", "{n},,,rw,0 8 zero; {n}-b,,,ro,0 4 zero,4 4 error",
    "{n},uuid,x", "{n},,,xx,0 8 zero", "{n},,,rw,0 8 zero\\", "{n},,,", "{n},,,rw,0 8 zero;{n}-b",
    "{n},,,rw,0 8 zero;;", "{n},,,rw,0 8 zero\\,8 8 error", "{n}, , ,rw,", ";", "",
]


@pytest.mark.parametrize("case", CONCISE_CASES)
def test_create_concise(dm_control, dm_name, case):
    def reset():
        gone(dm_control, dm_name)
        gone(dm_control, dm_name + "-b")

    same(["create", "--concise", case.format(n=dm_name)], reset=reset)
    reset()


def test_failures_on_existing_state(dm_control, dm_name, zero_dev):
    dup = lambda: (gone(dm_control, dm_name))  # noqa: E731
    same(["create", zero_dev.name, "--table", "0 8 zero"])               # duplicate name
    same(["create", dm_name, "-u", "PYDMT-zero-uuid", "--table", "0 8 zero"], reset=dup)
    same(["remove", "nonexistent-pydmt"])
    same(["suspend", "nonexistent-pydmt"])
    same(["resume", "nonexistent-pydmt"])
    same(["rename", "nonexistent-pydmt", "x"])
    same(["wipe_table", "nonexistent-pydmt"])
    same(["wait", "--", zero_dev.name, "-1"])  # (uint32_t) -1: any event will do
    same(["message", zero_dev.name, "0", "hello"])
    same(["message", zero_dev.name, "x", "hello"])
    same(["reload", zero_dev.name, "--table", "0 8 nosuchtarget"])
    gone(dm_control, dm_name)


def test_state_changes(dm_control, dm_name):
    def fresh():
        gone(dm_control, dm_name)
        gone(dm_control, dm_name + "-new")
        dm_control.create_device(dm_name, "0 64 zero")

    for args in (["suspend", dm_name], ["suspend", "--nolockfs", "--noflush", dm_name],
                 ["resume", dm_name], ["suspend", "-v", dm_name],
                 ["load", dm_name, "--table", "0 64 error"],
                 ["reload", "-v", dm_name, "--table", "0 64 error"],
                 ["clear", dm_name], ["wipe_table", dm_name],
                 ["rename", dm_name, dm_name + "-new"],
                 ["rename", "--setuuid", dm_name, "PYDMT-set-uuid"],
                 ["remove", dm_name], ["remove", "-f", dm_name], ["remove", "--retry", dm_name],
                 ["remove", "--deferred", dm_name], ["setgeometry", dm_name, "10", "4", "8", "0"]):
        same(args, reset=fresh)
    gone(dm_control, dm_name)
    gone(dm_control, dm_name + "-new")


def test_suspend_checks_name_the_suspended_devices_below(dm_control, dm_name):
    """--checks: before the suspend, libdm walks the mapped devices below and
    reports each one already suspended, as an internal error that does not
    stop the suspend; one it cannot read fails it.  A stack top -> mid ->
    base with base suspended; mid is found by name, uuid or number."""
    names = [f"{dm_name}-{tag}" for tag in ("top", "mid", "base")]

    def fresh():
        for name in names:
            gone(dm_control, name)
        base = dm_control.create_device(names[2], "0 64 zero")
        mid = dm_control.create_device(names[1], f"0 64 linear {base.devno} 0", uuid="PYDMT-checks-mid")
        dm_control.create_device(names[0], f"0 64 linear {mid.devno} 0")
        dm_control.suspend(names[2])
        return mid.devno

    try:
        mid = fresh()  # the same numbers each time: the kernel hands out the lowest free minor
        for args in (["--checks", "suspend", names[0]], ["--checks", "suspend", names[1]],
                     ["--checks", "-u", "PYDMT-checks-mid", "suspend"],
                     ["--checks", "-j", str(mid.major), "-m", str(mid.minor), "suspend"],
                     ["--checks", "suspend", names[2]], ["--checks", "suspend", "nonexistent-pydmt"],
                     ["--checks", "resume", names[2]]):
            outcomes = []
            for tool in ("dm", "py"):
                fresh()
                outcomes.append((_run(tool, args), [dm_control.info(n).suspended for n in names]))
            assert outcomes[1] == outcomes[0], args
            if args[-1] in names[:2]:
                assert b"Internal error: Attempt to suspend device" in outcomes[0][0][2], args
    finally:
        for name in names:
            gone(dm_control, name)


@pytest.mark.parametrize("args", [
    ["ls"], ["info"], ["info", "{z}"], ["table", "{z}"], ["status"], ["deps", "{z}"],
    ["create", "{new}", "--table", "0 8 zero"], ["remove", "{z}"], ["suspend", "{z}"],
    ["message", "{z}", "0", "hello"], ["targets"], ["mknodes"],
])
def test_not_root(args, dm_control, dm_name, zero_dev):
    # Both open /dev/mapper/control as nobody and fail the same way; the
    # kernel (CAP_SYS_ADMIN) decides, and nothing changes.
    argv = [a.format(z=zero_dev.name, new=dm_name) for a in args]
    same(argv, unprivileged=True)
    assert not dm_control.exists(dm_name)
    assert not dm_control.info(zero_dev.name).suspended


def test_mknodes_restores_a_missing_entry(zero_dev):
    path = f"/dev/mapper/{zero_dev.name}"
    os.unlink(path)
    assert _run("py", ["mknodes"]) == (0, b"", b"")
    assert os.stat(path).st_rdev == os.makedev(*zero_dev.info().devno)


def test_busy_device(dm_control, dm_name):
    def fresh():
        gone(dm_control, dm_name)
        dm_control.create_device(dm_name, "0 64 zero")

    fresh()
    info = dm_control.info(dm_name)
    fd = os.open(f"/dev/block/{info.major}:{info.minor}" if os.path.exists(
        f"/dev/block/{info.major}:{info.minor}") else f"/dev/mapper/{dm_name}", os.O_RDONLY)
    try:
        same(["remove", dm_name])
        same(["info", dm_name])
    finally:
        os.close(fd)
    gone(dm_control, dm_name)


def test_udev_rule_calls(zero_dev):
    same(["info", "-j", str(zero_dev.devno.major), "-m", str(zero_dev.devno.minor), "-c",
          "--nameprefixes", "--noheadings", "--rows", "-o", "name,uuid,suspended"])
    same(["splitname", "--nameprefixes", "--noheadings", "--rows", "vg-lv--x-layer"])
    same(["udevflags", "0x0d4d0042"])
    same(["udevcomplete", "0x00200000"])


# -- --json: parsed, and checked against the API's own answers ------------------

def _json(args):
    import json

    p = subprocess.run(PY + ["--noudevsync", "--json"] + list(args),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, (args, p.stderr)
    assert p.stderr == b"", (args, p.stderr)
    assert p.stdout.endswith(b"\n")
    return json.loads(p.stdout)


def _device_head(info):
    return {"name": info.name, "uuid": info.uuid, "major": info.major, "minor": info.minor}


def test_json_matches_the_api(dm_control, zero_dev, linear_dev, dm_loop_device):
    from pydevmapper.cli.session import read_ahead

    z, l = zero_dev.name, linear_dev.name
    zi, li = dm_control.info(z), dm_control.info(l)

    # ls: every device the kernel lists, ours included, with uuid and event_nr
    listed = {d["name"]: d for d in _json(["ls"])["devices"]}
    for dev in dm_control.list_devices():
        assert listed[dev.name] == {"name": dev.name, "major": dev.major, "minor": dev.minor,
                                    "uuid": dev.uuid, "event_nr": dev.event_nr}
    assert listed[z]["uuid"] == "PYDMT-zero-uuid"

    # info: one object per argument, in order
    doc = _json(["info", z, l])
    assert [d["name"] for d in doc["devices"]] == [z, l]
    for got, info in zip(doc["devices"], (zi, li)):
        assert got == dict(_device_head(info), open_count=info.open_count,
                           event_nr=info.event_nr, target_count=info.target_count,
                           read_ahead=read_ahead(info.major, info.minor),
                           suspended=info.suspended, read_only=info.read_only,
                           live_table=info.live_table, inactive_table=info.inactive_table,
                           deferred_remove=info.deferred_remove)
    assert doc["devices"][1]["target_count"] == 2

    # deps: the linear device uses the loop device
    doc = _json(["deps", l, z])
    assert doc["devices"][0] == dict(_device_head(li), deps=[
        {"major": d.major, "minor": d.minor} for d in dm_control.deps(l)])
    assert {"major": os.major(os.stat(dm_loop_device.path).st_rdev),
            "minor": os.minor(os.stat(dm_loop_device.path).st_rdev)} in doc["devices"][0]["deps"]
    assert doc["devices"][1]["deps"] == []

    # table and status: one entry per target, in table order
    doc = _json(["table", l])
    assert doc["devices"][0] == dict(_device_head(li), targets=[
        {"start": t.start, "length": t.length, "type": t.type, "params": t.params,
         "parsed": t.parsed().to_dict()}
        for t in dm_control.table(l)])
    assert [t["type"] for t in doc["devices"][0]["targets"]] == ["linear", "zero"]
    doc = _json(["status", l])
    assert doc["devices"][0] == dict(_device_head(li), targets=[
        {"start": t.start, "length": t.length, "type": t.type, "params": t.status,
         "parsed": t.parsed().to_dict()}
        for t in dm_control.status(l)])

    # -S keeps its selection under --json: only the selected device's rows
    for command in (["info", "-c"], ["status"], ["table"]):
        doc = _json(["-S", f"name={z}", *command])
        assert [d["name"] for d in doc["devices"]] == [z], command
    assert _json(["-S", f"name={z}", "info", "-c", l]) == {"devices": []}

    # targets and version
    assert _json(["targets"]) == {"targets": [
        {"name": t.name, "version": list(t.version)} for t in dm_control.targets()]}
    doc = _json(["version"])
    assert doc["driver"] == ".".join(map(str, dm_control.version()))
    assert doc["library"].startswith("1.02.185 ")


def test_json_missing_device_fails_cleanly():
    p = subprocess.run(PY + ["--noudevsync", "--json", "info", "nonexistent-pydmt"],
                       capture_output=True, timeout=60)
    assert p.returncode == 1 and p.stderr == b"Device does not exist.\nCommand failed.\n"


# -- udev sync (the udev boot): no --noudevsync, the node is final on return ---

def _udev_running():
    from pydevmapper import udev

    return udev.sync_available()


@pytest.mark.udev
@pytest.mark.skipif(not _udev_running(), reason="needs udevd with 95-dm-notify.rules (udev boot)")
def test_create_and_remove_wait_for_udev(dm_control, dm_name):
    from pydevmapper import udev

    def cookies():
        return {c.cookie for c in udev.list_cookies()}

    before = cookies()
    node = f"/dev/mapper/{dm_name}"
    try:
        p = subprocess.run(PY + ["create", dm_name, "--table", "0 2048 zero"],
                           capture_output=True, timeout=120)
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
        assert os.path.exists(node)  # udev made it before create returned
        info = dm_control.info(dm_name)
        st = os.stat(node)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (info.major, info.minor)
        p = subprocess.run(PY + ["remove", dm_name], capture_output=True, timeout=120)
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
        assert not os.path.lexists(node)  # and removed it before remove returned
        assert not dm_control.exists(dm_name)
    finally:
        gone(dm_control, dm_name)
    assert cookies() <= before  # no cookie semaphore outlives a command


@pytest.mark.udev
def test_udev_cookie_commands_in_guest():
    """udevcookies/udevcreatecookie/udevreleasecookie against dmsetup with a kernel."""
    from pydevmapper import udev

    before = {c.cookie for c in udev.list_cookies()}
    made = []
    try:
        for tool in ("dm", "py"):
            cmd = (["dmsetup"] if tool == "dm" else PY)
            p = subprocess.run(cmd + ["udevcreatecookie"], capture_output=True, timeout=60)
            assert p.returncode == 0 and p.stderr == b"", p.stderr
            if not _udev_running():
                assert p.stdout == b""  # no udev: cookie 0, nothing printed
                continue
            key = int(p.stdout, 16)
            made.append(key)
            assert p.stdout == f"0x{key:08X}\n".encode() and key >> 16 == udev.COOKIE_MAGIC
        same(["udevcookies"])
        if made:  # each tool releases the other's cookie
            dm_key, py_key = made
            assert _run("py", ["udevreleasecookie", hex(dm_key)])[0] == 0  # --noudevsync: no-op
            p = subprocess.run(PY + ["udevreleasecookie", hex(dm_key)], capture_output=True,
                               timeout=60)
            assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
            p = subprocess.run(["dmsetup", "udevreleasecookie", hex(py_key)],
                               capture_output=True, timeout=60)
            assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
            assert not (set(made) & {c.cookie for c in udev.list_cookies()})
    finally:
        for key in made:
            try:
                udev.remove_cookie(key)
            except OSError:
                pass
    assert {c.cookie for c in udev.list_cookies()} <= before


# -- ls --tree, ls --exec and the tree report fields, on a real stack -----------
# top and other use mid; mid uses base and a loop; base and stripe share a loop;
# a read-only zero device, a suspended one, and one whose name outruns 80
# columns.  Built once for the module (under emulation each build is slow);
# these tests only read it.

def test_tree_with_no_devices_reports_none(dm_control):
    """Both tools say "No devices found" (twice for a tree report) on an empty kernel."""
    if dm_control.list_devices():
        pytest.skip("other devices exist in this kernel")
    for args in (["ls", "--tree"], ["info", "-c", "-o", "name,names_using_dev"]):
        same(args)


@pytest.fixture(scope="module")
def stack(dm_control, dm_prefix, tmp_path_factory):
    from pydevmapper import loopdev
    from pydevmapper.errors import DeviceNotFoundError

    loops, made, suspended = [], [], []

    def loop():
        path = tmp_path_factory.mktemp("tree") / "loop.img"
        with open(path, "wb") as f:
            f.truncate(8 << 20)
        loops.append(loopdev.attach(str(path)))
        return loops[-1]

    def device(tag, table, **kwargs):
        made.append(dm_control.create_device(f"{dm_prefix}tree-{tag}"[:127], table, **kwargs))
        return made[-1]

    try:
        l1, l2, l3 = loop(), loop(), loop()
        base = device("base", f"0 8192 linear {l1.path} 0")
        mid = device("mid", f"0 4096 linear {base.devno} 0\n4096 4096 linear {l3.path} 0",
                     uuid="PYDMT-tree-mid")
        top = device("top", f"0 4096 linear {mid.devno} 0")
        other = device("other", f"0 4096 linear {mid.devno} 4096")
        stripe = device("stripe", f"0 8192 striped 2 8 {l1.path} 8192 {l2.path} 0")
        ro = device("ro", "0 64 zero", readonly=True)
        held = device("held", "0 64 zero", uuid="PYDMT-tree-held")
        dm_control.suspend(held.devno)
        suspended.append(held)
        long = device("long-" + "x" * 110, f"0 1024 linear {top.devno} 0")
        yield {"base": base.name, "mid": mid.name, "top": top.name, "other": other.name,
               "stripe": stripe.name, "ro": ro.name, "held": held.name, "long": long.name}
    finally:
        for dev in suspended:
            dm_control.resume(dev.devno)
        for dev in reversed(made):
            try:
                dm_control.remove(dev.devno, retry=30.0)
            except DeviceNotFoundError:
                pass
        for lo in reversed(loops):
            lo.detach()
            os.unlink(lo.backing_file)


TREE_CASES = [
    ["ls", "--tree"], ["ls", "--tree", "-o", "ascii"], ["ls", "--tree", "-o", "utf"],
    ["ls", "--tree", "-o", "vt100"], ["ls", "--tree", "-o", "ascii,inverted"],
    ["ls", "--tree", "-o", "compact"], ["ls", "--tree", "-o", "compact,inverted,ascii"],
    ["ls", "--tree", "-o", "nodevice"], ["ls", "--tree", "-o", "nodevice,inverted"],
    ["ls", "--tree", "-o", "blkdevname"], ["ls", "--tree", "-o", "blkdevname,nodevice,compact"],
    ["ls", "--tree", "-o", "active,rw,open,uuid"], ["ls", "--tree", "-o", "a,r,o,u,i"],
    ["ls", "--tree", "-o", "notrunc"], ["ls", "--tree", "-o", "notrunc,uuid,compact"],
    ["ls", "--tree", "-o", "status,compact"], ["ls", "--tree", "-o", "table"],
    ["ls", "--tree", "-o", ","], ["ls", "--tree", "-o", "ascii,"], ["ls", "--tree", "-o", ""],
    ["ls", "--tree", "-o", "device,vt100,utf"], ["deps", "--tree", "-o", "blkdevname", "{mid}"],
    # failures
    ["ls", "--tree", "-o", "bogus"], ["ls", "--tree", "-o", "ascii,bogus,x,"],
    ["ls", "--tree", "-o", "asciix"], ["info", "--tree", "-o", "name"],
    ["ls", "-o", "devno,bogus,x"], ["deps", "-o", "nope", "{mid}"], ["ls", "--tree", "extra"],
    # the relationship fields
    ["info", "-c", "-o", "name,devs_used,devnos_used,blkdevs_used,device_ref_count,"
     "names_using_dev,devnos_using_dev,device_count", "{base}", "{mid}", "{top}", "{stripe}", "{ro}"],
    ["info", "-c", "-o", "tree_all", "{mid}", "{base}"], ["info", "-c", "-o", "deps_all", "{stripe}"],
    ["info", "-c", "-o", "name,names_using_dev,devnos_using_dev", "-O", "-device_ref_count",
     "{mid}", "{top}", "{base}"],
    ["info", "-c", "-S", "device_ref_count>=2", "-o", "name"],
    ["info", "-c", "--noheadings", "-o", "devs_used", "{mid}"],
    ["info", "-c", "-o", "names_using_dev", "nonexistent-pydmt"],
    ["deps", "{stripe}"], ["deps", "-o", "devname", "{mid}"],
    # statistics fields: no device has stats regions, so no rows
    ["info", "-c", "-o", "read_count"], ["info", "-c", "-o", "all"],
    ["info", "-c", "-o", "name,stats_all,region_all", "{mid}"], ["info", "-c", "-o", "interval_ns", "{ro}"],
    # --exec
    ["ls", "--exec", "echo hi"], ["ls", "--exec", "echo  hi\tthere", "-v"],
    ["ls", "--target", "striped", "--exec", "stat -c %t:%T"], ["ls", "--exec", ""],
    ["ls", "--exec", "/nonexistent/pydmt-cmd"], ["ls", "--exec", "false", "--target", "zero"],
    ["status", "--exec", "echo st", "{ro}", "{mid}"], ["table", "--exec", "echo tb", "{stripe}"],
]


@pytest.mark.parametrize("case", TREE_CASES, ids=lambda c: "_".join(c)[:60])
def test_tree(case, stack):
    same([a.format(**stack) for a in case])


def test_tree_ascii_in_the_c_locale(stack):
    """The default symbols follow the locale (run as a program: the locale is read at start)."""
    for env in ({"LC_ALL": "C"}, {"LC_ALL": "C.UTF-8"}):
        env = dict(os.environ, **env)
        dm = subprocess.run(["dmsetup", "ls", "--tree"], capture_output=True, env=env, timeout=60)
        py = subprocess.run(PY + ["ls", "--tree"], capture_output=True, env=env, timeout=120)
        assert (py.returncode, py.stdout, py.stderr) == (dm.returncode, dm.stdout, dm.stderr)


# -- -U/-G/-M and --readahead: what each tool leaves behind -----------------------

def _node_and_read_ahead(dm_control, name):
    """The mapper entry's (type, mode, uid, gid) and the device's read-ahead."""
    import stat

    from pydevmapper import readahead
    from pydevmapper.errors import DeviceNotFoundError, DMError

    try:
        devno = dm_control.info(name).devno
    except DeviceNotFoundError:
        return None
    try:
        st = os.lstat(f"/dev/mapper/{name}")
        node = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    except FileNotFoundError:
        node = None
    try:
        ahead = readahead.read(devno)
    except DMError:  # no table loaded yet: no disk, no read-ahead
        ahead = None
    return node, ahead


def _same_outcome(dm_control, args, reset, name, stdin=b""):
    """Both tools print the same and leave the same node and read-ahead."""
    outcome = {}
    for tool in ("dm", "py"):
        reset()
        ran = _run(tool, args, stdin)
        outcome[tool] = (ran, _node_and_read_ahead(dm_control, name))
    assert outcome["py"] == outcome["dm"], args
    return outcome["dm"][1]


@pytest.fixture
def library_nodes(monkeypatch):
    # Both tools make the node themselves and tell udev to keep off it:
    # without this, dmsetup --noudevsync leaves udev's rules on, and udev
    # may replace its node with a symlink at any moment.
    monkeypatch.setenv("DM_DISABLE_UDEV", "1")


@pytest.mark.parametrize("switches, expected", [
    (["-U", "1234", "-G", "4321", "-M", "0640"], ((0o060000, 0o640, 1234, 4321), 256)),
    # chown((uid_t)-1) keeps the creator's uid; the group is the default, disk
    (["-U", "-1", "-M", "604"], ((0o060000, 0o604, 0, 6), 256)),
    ([], ((0o060000, 0o660, 0, 6), 256)),
    (["--readahead", "1000"], None), (["--readahead", "7"], None), (["--readahead", "+8"], None),
    (["--readahead", "+4096"], None), (["--readahead", "none"], None),
    (["--readahead", "auto"], None), (["--readahead", "+8", "--readahead", "16"], None),
    # No table: no resume, so no node (unless --addnodeoncreate), and from
    # 5.15 no disk either (before, its read-ahead is the default, untouched).
    (["-n", "--readahead", "1000", "-U", "7"], (None, 256 if DISK_AT_CREATE else None)),
    (["-n", "--addnodeoncreate", "-U", "7"], ((0o060000, 0o660, 7, 6), 256 if DISK_AT_CREATE else None)),
])
def test_create_node_owner_and_read_ahead(dm_control, dm_name, library_nodes, switches, expected):
    table = [] if "-n" in switches else ["--table", "0 64 zero"]
    try:
        got = _same_outcome(dm_control, ["create", dm_name, *switches, *table],
                            lambda: gone(dm_control, dm_name), dm_name)
        assert got is not None
        if expected is not None:
            assert got == expected
    finally:
        gone(dm_control, dm_name)


def test_concise_create_node_owner_and_read_ahead(dm_control, dm_name, library_nodes):
    try:
        got = _same_outcome(dm_control, ["create", "--concise", f"{dm_name},,,rw,0 64 zero",
                                         "--readahead", "512", "-M", "600", "-G", "5"],
                            lambda: gone(dm_control, dm_name), dm_name)
        assert got == ((0o060000, 0o600, 0, 5), 512)
    finally:
        gone(dm_control, dm_name)


def _fresh_suspended(dm_control, dm_name):
    gone(dm_control, dm_name)
    dm_control.create_device(dm_name, "0 64 zero", uuid="PYDMT-ra-uuid")
    dm_control.suspend(dm_name)


@pytest.mark.parametrize("args", [
    ["resume", "{n}", "--readahead", "+4096"], ["resume", "{n}", "--readahead", "64"],
    ["resume", "{n}", "--readahead", "+64"], ["suspend", "{n}", "--readahead", "64"],
    ["resume", "{n}", "-U", "99", "-M", "0666"],
])
def test_resume_read_ahead(dm_control, dm_name, library_nodes, args):
    try:
        _same_outcome(dm_control, [a.format(n=dm_name) for a in args],
                      lambda: _fresh_suspended(dm_control, dm_name), dm_name)
    finally:
        gone(dm_control, dm_name)


def test_resume_by_uuid_leaves_read_ahead(dm_control, dm_name, library_nodes):
    # libdevmapper sets read-ahead only for a device it has a name for (and
    # dmsetup 1.02.185 dies of SIGSEGV on this command line, so no comparison).
    try:
        _fresh_suspended(dm_control, dm_name)
        before = _node_and_read_ahead(dm_control, dm_name)
        assert _run("py", ["resume", "-u", "PYDMT-ra-uuid", "--readahead", "4096"])[0] == 0
        assert not dm_control.info(dm_name).suspended
        assert _node_and_read_ahead(dm_control, dm_name) == before
    finally:
        gone(dm_control, dm_name)


@pytest.mark.parametrize("value", ["1", ""])
@pytest.mark.parametrize("command", ["info", "resume"])
def test_dm_disable_udev_warning(dm_control, dm_name, monkeypatch, value, command):
    # Without --noudevsync: libdevmapper warns (when udevd runs) only once a
    # command asks whether to sync, i.e. one that raises a uevent.
    monkeypatch.setenv("DM_DISABLE_UDEV", value)
    try:
        outcome = {}
        for tool, argv in (("dm", ["dmsetup"]), ("py", PY)):
            _fresh_suspended(dm_control, dm_name)
            p = subprocess.run([*argv, command, dm_name], capture_output=True, timeout=60)
            outcome[tool] = (p.returncode, p.stdout, p.stderr)
        assert outcome["py"] == outcome["dm"]
    finally:
        gone(dm_control, dm_name)


# Replies hold only what the kernel wrote in that call: a target whose
# status writes nothing (unstriped, zero, error) read after one with a long
# line (striped, basic_target) reads empty, through the API and pydmsetup,
# in either order, one device per call or all in one command.

@pytest.fixture
def status_lengths(dm_make_loop, dm_make_device, dm_basic_target, dm_control):
    from pydevmapper import kmod

    unstriped_loaded = kmod.is_loaded("dm_unstriped")
    l1, l2 = dm_make_loop(16), dm_make_loop(16)
    striped = dm_make_device(f"0 16384 striped 2 8 {l1.devno_str} 0 {l2.devno_str} 0")
    devices = [
        striped,
        dm_make_device(f"0 8192 unstriped 2 8 1 {striped.devno} 0"),
        dm_make_device("0 2048 zero"),
        dm_make_device(f"0 1024 linear {l1.devno_str} 0\n1024 1024 zero\n2048 1024 error"),
        dm_make_device("0 1024 error"),
        dm_make_device(f"0 4096 basic_target {l2.devno_str} 2048"),
    ]
    with open(f"/dev/dm-{devices[-1].devno.minor}", "rb") as f:
        f.read(4096)  # basic_target's counters get digits
    yield [d.name for d in devices]
    for dev in reversed(devices):
        dm_control.remove(dev.devno, retry=30.0)
    if not unstriped_loaded and kmod.is_loaded("dm_unstriped"):
        kmod.unload_module("dm_unstriped")


def _dmsetup_lines(command, name):
    out = subprocess.run(["dmsetup", command, name], capture_output=True, check=True,
                         timeout=60).stdout.decode()
    return [tuple(line.split(" ", 3)) for line in out.splitlines()]


@pytest.mark.dm_needs_basic_target
@pytest.mark.parametrize("order", ["long first", "short first"])
def test_short_replies_after_long_ones(status_lengths, dm_control, order):
    names = status_lengths if order == "long first" else status_lengths[::-1]
    for command in ("status", "table"):
        for name in names:
            targets = getattr(dm_control, command)(name)
            api = [(str(t[0]), str(t[1]), t[2], t[3]) for t in targets]
            # dmsetup prints a blank after the type even with no parameters.
            assert api == [(s, n, t, p) for s, n, t, p in _dmsetup_lines(command, name)], name
        same([command, *names])
        same([command])
        same([command, "--target", "unstriped"])
