# SPDX-License-Identifier: LGPL-2.1-or-later
"""The reliability tier's bad-input catalogue, against the real kernel.

Every case is input the library must refuse: a name, uuid, table or number
the kernel would reject, truncate or misread, or an operation on a device
that is missing, open or has no table.  For each, the refusal is a typed
error that names the problem, and the kernel's state - devices, their
flags and tables, the /dev/mapper entries and the udev cookie semaphores -
is the same after as before.  pydmsetup's cases check the exit status
against Debian's dmsetup, that no traceback escapes and that nothing
changed; and for input dmsetup accepts, that pydmsetup's effect is
dmsetup's.  The counts go to the tier's summary (tests/root/conftest.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest

import pydevmapper as dm
from pydevmapper import udev
from tests.root.helpers import cookie_keys, dmsetup_installed, forked_main, record_cases  # noqa: F401 (fixture)

pytestmark = pytest.mark.dm_root

MISSING_NAME = "pydmt-no-such-device"
MISSING_UUID = dm.Uuid("PYDMT-no-such-uuid")
LOOP_SECTORS = 64 * 1024 * 2  # dm_loop_device: 64 MiB


def kernel_state(ctl: dm.Control) -> tuple:
    """What a refused command must leave as it was.  Open counts are left
    out: udev's rules open new devices for a while after they appear."""
    devices = []
    for listed in sorted(ctl.list_devices(), key=lambda d: d.name):
        info = ctl.info(listed.devno)
        devices.append((info.name, info.uuid, info.devno, info.target_count, int(info.flags),
                        ctl.table(listed.devno) if info.live_table else None,
                        ctl.table(listed.devno, inactive=True) if info.inactive_table else None))
    entries = sorted(os.listdir("/dev/mapper"))
    cookies = sorted(cookie_keys())
    return devices, entries, cookies


Case = tuple[str, Callable[[], object], type, str]  # id, call, error class, pattern in str(error)


def _undo(ctl: dm.Control, before: tuple) -> None:
    """Remove what an accepted or half-refused case made, so the next case
    starts from the same state (and the loop device can be detached)."""
    devices, _, cookies = before
    kept = {d[2] for d in devices}
    for listed in ctl.list_devices(uuids=False):
        if listed.devno not in kept:
            ctl.remove(listed.devno, force=True, retry=30.0)
    for cookie in cookie_keys() - set(cookies):
        udev.remove_cookie(cookie)


def check_cases(ctl: dm.Control, section: str, cases: list[Case]) -> None:
    failed: dict[str, str] = {}
    for ident, call, error, pattern in cases:
        before = kernel_state(ctl)
        try:
            call()
        except error as exc:
            if not re.search(pattern, str(exc)):
                failed[ident] = f"{type(exc).__name__} {exc} does not say {pattern!r}"
        except Exception as exc:  # noqa: BLE001 - every wrong answer is reported
            failed[ident] = f"{type(exc).__name__}: {exc} (wanted {error.__name__})"
        else:
            failed[ident] = f"accepted (wanted {error.__name__})"
        after = kernel_state(ctl)
        if after != before:
            failed[ident] = failed.get(ident, "") + f" the kernel's state changed:\n  {before}\n  {after}"
            _undo(ctl, before)
    record_cases(section, len(cases), len(cases) - len(failed))
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())


@pytest.fixture
def world(dm_control, dm_make_device, dm_loop_device, dm_prefix):
    """The devices the cases act on: one live (with a uuid), one open, one
    without a table; the loop device under linear tables."""
    live = dm_make_device("0 64 zero", name=f"{dm_prefix}live", uuid=f"PYDMT-live-{dm_prefix}")
    opened = dm_make_device("0 64 zero", name=f"{dm_prefix}open")
    bare = f"{dm_prefix}bare"
    fd = os.open(opened.path, os.O_RDONLY)
    try:
        dm_control.create(bare)
        yield live, opened, bare, dm_loop_device
    finally:
        os.close(fd)
        if dm_control.exists(bare):
            dm_control.remove(bare, retry=30.0)


def test_bad_names_uuids_and_numbers_are_refused(dm_control, world, dm_prefix):
    live, _, _, _ = world
    ctl, new = dm_control, f"{dm_prefix}new"
    V = dm.ValidationError
    bad_names = [("128 bytes", "x" * 128, "128 bytes"), ("64 two-byte characters", "é" * 64, "128 bytes"),
                 ("empty", "", "empty"), ("slash", "/", "'/'"), ("a/b", "a/b", "'/'"),
                 ("NUL", "a\0b", "NUL"), (".", ".", "reserved"), ("..", "..", "reserved"),
                 ("control", "control", "reserved"), ("not UTF-8", "\udcff", "UTF-8"),
                 ("bytes", b"x", "str"), ("int", 5, "str"), ("None", None, "str")]
    bad_names += [(f"control character {c:#04x}", f"x{chr(c)}y", f"control character {c:#04x}")
                  for c in [*range(1, 0x20), 0x7F]]
    cases: list[Case] = []
    for what, name, says in bad_names:
        cases.append((f"create {what}", lambda n=name: ctl.create(n), V, says))
    for what, name, says in bad_names[:10] + bad_names[13:]:
        cases.append((f"rename to {what}", lambda n=name: ctl.rename(live.name, n), V, says))
    cases += [
        ("uuid of 129 bytes", lambda: ctl.create(new, uuid="u" * 129), V, "129 bytes"),
        ("empty uuid", lambda: ctl.create(new, uuid=""), V, "empty"),
        ("uuid with a newline", lambda: ctl.create(new, uuid="u\nv"), V, "control character 0x0a"),
        ("uuid with a tab", lambda: ctl.set_uuid(live.name, "u\tv"), V, "control character 0x09"),
        ("duplicate name", lambda: ctl.create(live.name), dm.DeviceExistsError, "already exists"),
        ("duplicate uuid", lambda: ctl.create(new, uuid=live.info().uuid), dm.DeviceExistsError,
         "already exists"),
        ("uuid set twice", lambda: ctl.set_uuid(live.name, "PYDMT-second"), dm.DMError, "Invalid argument"),
        ("device number in use", lambda: ctl.create(new, devno=live.devno), dm.DeviceExistsError,
         "already in use"),
    ]
    major = live.devno.major
    for what, call, says in [
        ("wait event_nr -1", lambda: ctl.wait(live.name, event_nr=-1), "event_nr"),
        ("wait event_nr 2**32", lambda: ctl.wait(live.name, event_nr=1 << 32), "event_nr"),
        ("message sector -1", lambda: ctl.message(live.name, -1, "x"), "message sector"),
        ("message sector 2**64", lambda: ctl.message(live.name, 1 << 64, "x"), "message sector"),
        ("reply_size -1", lambda: ctl.message(live.name, 0, "x", reply_size=-1), "reply_size"),
        ("reply_size 2**32", lambda: ctl.message(live.name, 0, "x", reply_size=1 << 32), "reply_size"),
        ("reply_size 2**40", lambda: ctl.message(live.name, 0, "x", reply_size=1 << 40), "reply_size"),
        ("devno major -1", lambda: ctl.info((-1, 0)), "device number"),
        ("devno major 4096", lambda: ctl.info((4096, 0)), "device number"),
        ("devno minor 2**20", lambda: ctl.info((major, 1 << 20)), "device number"),
        ("devno bool", lambda: ctl.info((True, 0)), "device number"),
        ("create devno minor 2**20", lambda: ctl.create(new, devno=dm.DevNo(major, 1 << 20)),
         "device number"),
        ("geometry cylinders 65536", lambda: ctl.set_geometry(live.name, 65536, 1, 1, 0), "cylinders"),
        ("geometry heads 256", lambda: ctl.set_geometry(live.name, 1, 256, 1, 0), "heads"),
        ("geometry sectors 256", lambda: ctl.set_geometry(live.name, 1, 1, 256, 0), "sectors"),
        ("geometry start -1", lambda: ctl.set_geometry(live.name, 1, 1, 1, -1), "start"),
        ("read-ahead -1", lambda: ctl.set_read_ahead(live.name, -1), "read-ahead"),
        ("read-ahead 2**64", lambda: ctl.set_read_ahead(live.name, 1 << 64), "read-ahead"),
        ("empty message", lambda: ctl.message(live.name, 0, " "), "empty"),
        ("message with a newline", lambda: ctl.message(live.name, 0, "a\nb"), "line break"),
    ]:
        cases.append((what, call, V, says))
    check_cases(ctl, "names, uuids and numbers", cases)


def test_bad_tables_leave_nothing_and_the_old_table_live(dm_control, world, dm_prefix):
    live, _, _, loop = world
    ctl, new, lo = dm_control, f"{dm_prefix}new", loop.devno_str
    V, Inv = dm.ValidationError, dm.InvalidTableError
    many = "\n".join(f"{i * 8} 8 zero" for i in range(10_000)) + "\n80000 8 no-such-target"
    tables = [
        ("empty table", "", V, "at least one target"),
        ("gap", "0 8 zero\n16 8 zero", V, "gap in table"),
        ("overlap", "0 8 zero\n4 8 zero", V, "overlap in table"),
        ("zero length", "0 0 zero", V, "zero length"),
        ("negative start", "-8 8 zero", dm.TableSyntaxError, "start '-8'"),
        ("not starting at 0", "8 8 zero", V, "gap in table"),
        ("non-integer length", "0 abc zero", dm.TableSyntaxError, "length 'abc'"),
        ("length beyond 2**64", "0 18446744073709551616 zero", V, "64 bits"),
        ("unknown target type", "0 8 no-such-target", Inv, "no-such-target"),
        ("missing underlying device", "0 8 linear 254:65000 0", Inv, "lookup failed"),
        ("too few arguments", f"0 8 linear {lo}", Inv, "argument count"),
        ("too many arguments", f"0 8 linear {lo} 0 extra", Inv, "argument count"),
        # A first table's size is checked at the load, a new one's at the swap (resume).
        ("longer than its device", f"0 {LOOP_SECTORS + 8} linear {lo} 0", dm.DMError,
         "too small for target|DM_DEV_SUSPEND .*Invalid argument"),
        ("10,000 targets and a bad one", many, Inv, "no-such-target"),
    ]
    cases: list[Case] = []
    for what, table, error, says in tables:
        cases.append((f"create_device: {what}", lambda t=table: ctl.create_device(new, t), error, says))
        cases.append((f"reload: {what}", lambda t=table: ctl.reload(live.name, t), error, says))
    with_newline = [dm.Target(0, 8, "linear", f"{lo} 0\nextra")]
    cases.append(("create_device: newline in parameters",
                  lambda: ctl.create_device(new, dm.Table(with_newline)), V, "line break"))
    check_cases(ctl, "tables", cases)
    assert live.table() == dm.Table.parse("0 64 zero") and not live.info().suspended


def test_operations_on_missing_open_and_bare_devices_are_refused(dm_control, world):
    live, opened, bare, _ = world
    ctl = dm_control
    missing_devno = dm.DevNo(live.devno.major, (1 << 20) - 1)
    NF = dm.DeviceNotFoundError
    operations: list[tuple[str, Callable[[dm.DeviceId], object]]] = [
        ("info", ctl.info), ("remove", ctl.remove), ("suspend", ctl.suspend),
        ("resume", ctl.resume), ("table", ctl.table), ("status", ctl.status), ("deps", ctl.deps),
        ("clear", ctl.clear), ("message", lambda d: ctl.message(d, 0, "x")),
        ("rename", lambda d: ctl.rename(d, "pydmt-renamed")),
        ("set_uuid", lambda d: ctl.set_uuid(d, "PYDMT-renamed")),
        ("wait", lambda d: ctl.wait(d, event_nr=0)), ("load", lambda d: ctl.load(d, "0 8 zero")),
        ("reload", lambda d: ctl.reload(d, "0 8 zero")), ("wipe_table", ctl.wipe_table),
        ("set_geometry", lambda d: ctl.set_geometry(d, 1, 1, 1, 0)), ("read_ahead", ctl.read_ahead),
    ]
    cases: list[Case] = []
    for address, shown in ((MISSING_NAME, MISSING_NAME), (MISSING_UUID, str(MISSING_UUID)),
                           (missing_devno, str(missing_devno))):
        for what, op in operations:
            cases.append((f"{what} of missing {address!r}", lambda o=op, a=address: o(a), NF,
                          re.escape(shown)))
    cases += [
        ("remove while open", lambda: ctl.remove(opened.name), dm.DeviceBusyError,
         re.escape(opened.name)),
        ("wipe_table without a table", lambda: ctl.wipe_table(bare), dm.DMError, "no live table"),
    ]
    check_cases(ctl, "operations on missing, open and table-less devices", cases)


# -- pydmsetup: dmsetup's exit status, no traceback, nothing changed --------------

@pytest.mark.usefixtures("dmsetup_installed")
def test_pydmsetup_fails_as_dmsetup_does_and_changes_nothing(dm_control, world, dm_prefix):
    import subprocess

    live, opened, bare, loop = world
    new, lo = f"{dm_prefix}new", loop.devno_str
    argvs = [
        ["create", "x" * 128, "--table", "0 8 zero"],
        ["create", new, "--table", "0 8 zero\n16 8 zero"],
        ["create", new, "--table", "0 8 zero\n4 8 zero"],
        ["create", new, "--table", "0 0 zero"],
        ["create", new, "--table", "-8 8 zero"],
        ["create", new, "--table", "0 abc zero"],
        ["create", new, "--table", "0 8 no-such-target"],
        ["create", new, "--table", "0 8 linear 254:65000 0"],
        ["create", new, "--table", f"0 8 linear {lo}"],
        ["create", new, "--table", f"0 {LOOP_SECTORS + 8} linear {lo} 0"],
        ["create", live.name, "--table", "0 8 zero"],
        ["create", new, "-u", live.info().uuid, "--table", "0 8 zero"],
        ["create", new, "-j", str(live.devno.major), "-m", str(live.devno.minor), "--table", "0 8 zero"],
        ["reload", live.name, "--table", "0 8 no-such-target"],
        ["rename", live.name, "x" * 128],
        ["rename", live.name, opened.name],
        ["rename", live.name, "--setuuid", "PYDMT-second"],
        ["remove", opened.name],
        ["message", bare, "0", "x"],
        ["message", live.name, "0", "x"],
        ["wipe_table", bare],
        ["setgeometry", live.name, "65536", "1", "1", "0"],
        *[[op, MISSING_NAME] for op in ("info", "remove", "suspend", "resume", "table", "status",
                                        "deps", "clear", "wipe_table")],
        *[[op, "-u", str(MISSING_UUID)] for op in ("info", "remove", "suspend", "resume", "table")],
    ]
    failed: dict[str, list[str]] = {}
    for argv in argvs:
        wrong = failed.setdefault(" ".join(argv), [])
        before = kernel_state(dm_control)
        want = subprocess.run(["dmsetup", "--noudevsync", *argv], capture_output=True, timeout=120)
        if kernel_state(dm_control) != before:
            wrong.append("dmsetup itself changed the state: not a case for this list")
            _undo(dm_control, before)
            continue
        code, _, err = forked_main(["--noudevsync", *argv])
        if code != want.returncode:
            wrong.append(f"exit {code}, dmsetup {want.returncode}: {err!r}")
        if b"Traceback" in err:
            wrong.append(f"a traceback: {err.decode(errors='replace')}")
        if kernel_state(dm_control) != before:
            wrong.append("pydmsetup changed the kernel's state")
            _undo(dm_control, before)
    failed = {k: v for k, v in failed.items() if v}
    record_cases("pydmsetup against dmsetup's exit status", len(argvs), len(argvs) - len(failed))
    assert not failed, "\n".join(f"{k}: {'; '.join(v)}" for k, v in failed.items())


# -- pydmsetup: where dmsetup accepts, the same effect ----------------------------

def _settled_state(ctl: dm.Control) -> tuple:
    """kernel_state once udev has made or dropped its /dev/mapper entries,
    without device numbers (each tool's device may get another minor)."""
    import subprocess

    if udev.udev_running():
        subprocess.run(["udevadm", "settle", "--timeout=120"], check=False, timeout=180)
    devices, entries, cookies = kernel_state(ctl)
    return [d[:2] + d[3:] for d in devices], entries, cookies


def _undo_accepted(ctl: dm.Control, before: tuple) -> None:
    _undo(ctl, before)
    for device in before[0]:
        if device[6] is None and ctl.info(device[2]).inactive_table:
            ctl.clear(device[2])


@pytest.mark.usefixtures("dmsetup_installed")
def test_pydmsetup_accepts_as_dmsetup_does_with_the_same_effect(dm_control, world, dm_prefix):
    import subprocess

    live, _, bare, loop = world
    new, lo = f"{dm_prefix}acc", loop.devno_str
    cases: list[tuple[list[str], bytes]] = [
        (["create", new, "--table", "0 8 zero"], b""),
        (["create", new, "--table", "  0 8 zero  "], b""),
        (["create", new, "--table", "0\t8\tzero"], b""),
        (["create", new, "--table", "0 8 zero\n\n8 8 error\n"], b""),
        (["create", new, "--table", "# a comment\n0 8 zero"], b""),
        (["create", new, "--table", f"0 8 linear {lo}    0"], b""),
        (["create", new, "--table", f"0 8 linear {loop.path} 0"], b""),
        (["create", new], b"0 8 zero\n8 8 error\n"),
        (["create", new, "-u", f"PYDMT-acc-{dm_prefix}", "--table", "0 8 zero"], b""),
        (["create", new, "-r", "--table", "0 8 zero"], b""),
        (["create", new, "--notable"], b""),
        (["create", new + " sp", "--table", "0 8 zero"], b""),
        (["create", new + "\u00e9", "--table", "0 8 zero"], b""),
        (["create", "--concise", f"{new},,,rw,0 8 zero;{new}-b,,,ro,0 8 error"], b""),
        (["load", live.name, "--table", "0 16 error"], b""),
        (["load", bare, "--table", "0 8 zero"], b""),
    ]
    # With udevd both tools wait for it, so its entries are there when they
    # return (a settle right after a command may miss a uevent udevd has
    # not read yet); without it, dmsetup would wait for a cookie forever.
    sync = [] if udev.udev_running() else ["--noudevsync"]
    failed: dict[str, list[str]] = {}
    for argv, stdin in cases:
        wrong = failed.setdefault(" ".join(argv), [])
        before = kernel_state(dm_control)
        settled = _settled_state(dm_control)
        want = subprocess.run(["dmsetup", *sync, *argv], input=stdin, capture_output=True,
                              timeout=300)
        theirs = _settled_state(dm_control)
        _undo_accepted(dm_control, before)
        if want.returncode != 0 or theirs == settled:
            wrong.append(f"dmsetup did not accept it (exit {want.returncode}): not a case for this list")
            continue
        got = forked_main([*sync, *argv], stdin=stdin)
        ours = _settled_state(dm_control)
        _undo_accepted(dm_control, before)
        if got != (want.returncode, want.stdout, want.stderr):
            wrong.append(f"pydmsetup {got}, dmsetup {(want.returncode, want.stdout, want.stderr)}")
        if not udev.udev_running():
            # Documented (docs/pydmsetup.md, "udev"): with --noudevsync and
            # no udevd the library makes the /dev/mapper nodes, dmsetup none.
            made = {d[0] for d in ours[0] if d[4] is not None} - {d[0] for d in before[0]}
            theirs = (theirs[0], sorted({*theirs[1], *made}), theirs[2])
        if ours != theirs:
            wrong.append(f"a different effect:\n  dmsetup   {theirs}\n  pydmsetup {ours}")
        if kernel_state(dm_control) != before:
            wrong.append("not undone")
    failed = {k: v for k, v in failed.items() if v}
    record_cases("pydmsetup against dmsetup's effect", len(cases), len(cases) - len(failed))
    assert not failed, "\n".join(f"{k}: {'; '.join(v)}" for k, v in failed.items())
