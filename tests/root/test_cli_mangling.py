# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup's name mangling against Debian's dmsetup, byte for byte, in each
mode (--manglename none|auto|hex, $DM_DEFAULT_NAME_MANGLING_MODE): what
create and rename send to the kernel, how names the kernel holds are shown,
looked up and reported, and the mangle command.

The library's own Control never mangles; these devices are made through it
with the kernel names given here as they are.
"""

from __future__ import annotations

import pytest

from tests.root.helpers import dmsetup_installed, forked_main  # noqa: F401 (fixture)
from tests.root.test_cli_vs_dmsetup import _run

pytestmark = [pytest.mark.dm_root, pytest.mark.usefixtures("dmsetup_installed")]

MODES = [["--manglename", "none"], ["--manglename", "auto"], ["--manglename", "HEX"]]
# What a user may type and what the kernel may hold: spaces, an escape, a
# mix of both, an escape mangled twice, quotes, a backslash and UTF-8.
NAMES = ["a b", "a\\x20b", "a b\\x20c", "a\\x5cx20b", "q\"u'ote", "back\\slash", "é"]
# The few each looked-up or created case takes: each comparison costs a
# second or two under emulation.
FEW = ["a b", "a\\x20b", "a b\\x20c", "é", "q\"u'ote", "back\\slash"]
# A byte that is no UTF-8: a name only once mangled (the API takes UTF-8).
NOT_UTF8 = b"x\xffy".decode("utf-8", "surrogateescape")


def mine(ctl, prefix):
    """The kernel's names of this test's devices, sorted."""
    return sorted(d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(prefix))


def clear(ctl, prefix):
    for d in ctl.list_devices(uuids=False):
        if d.name.startswith(prefix):
            ctl.remove(d.devno, retry=5.0)


def both(ctl, prefix, args, setup=None, fresh=True):
    """Run dmsetup, then pydmsetup, each on a fresh state (``setup()``)
    unless ``fresh`` is False; their output and the kernel names they leave
    must be the same."""
    seen = []
    for tool in ("dm", "py"):
        if fresh:
            clear(ctl, prefix)
            if setup:
                setup()
        code, out, err = _run(tool, args)
        seen.append((code, out.decode(errors="replace"), err.decode(errors="replace"),
                     mine(ctl, prefix)))
    if fresh:
        clear(ctl, prefix)
    for part, dm, py in zip(("exit status", "stdout", "stderr", "devices"), seen[0], seen[1]):
        assert py == dm, f"{args}: {part}\n--- dmsetup:\n{dm}\n--- pydmsetup:\n{py}"
    return seen[0]


@pytest.fixture
def ctl():
    """The comparisons make and remove many devices: without waiting for
    udev (both tools run with --noudevsync too)."""
    import pydevmapper as dm

    with dm.Control(udev_sync=False) as control:
        yield control


@pytest.fixture
def prefix(ctl, dm_prefix):
    mark = f"{dm_prefix}mg-"
    yield mark
    clear(ctl, mark)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m[-1])
def test_create_sends_the_mangled_name_and_uuid(ctl, prefix, mode):
    sent = set()
    for name in [*FEW, "a\\x5cx20b"] + ([] if mode[-1:] == ["none"] else [NOT_UTF8]):
        *_, made = both(ctl, prefix, [*mode, "create", prefix + name, "-u",
                                             f"{prefix}U {name}", "--notable"])
        sent.update(made)
    assert mode[-1:] == ["none"] or f"{prefix}a\\x20b" in sent  # mangled somewhere: the test can fail


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m[-1])
def test_names_the_kernel_holds_are_shown_and_looked_up_as_dmsetup_does(ctl, prefix, mode):
    def setup():
        for i, name in enumerate(NAMES):
            ctl.create(prefix + name, uuid=f"{prefix}U{i} {name}" if i % 2 else None)

    report = "name,mangled_name,unmangled_name,uuid,mangled_uuid,unmangled_uuid"
    clear(ctl, prefix)
    setup()
    for args in (["ls"], ["info"], ["info", "-c", "-o", report], ["table"],
                 *(["info", "-c", "-o", report, prefix + name] for name in FEW),
                 ["info", prefix + "a b"], ["info", prefix + "a\\x20b"]):
        both(ctl, prefix, [*mode, *args], fresh=False)
    for args in (["mangle"], ["remove", prefix + "a b"], ["remove", prefix + "a\\x20b"],
                 ["wipe_table", prefix + "é"], ["resume", "-v", prefix + "a b"]):
        both(ctl, prefix, [*mode, *args], setup)


@pytest.mark.parametrize("target", ["", "none", "auto", "hex"])
def test_mangle_command_renames_into_the_asked_form(ctl, prefix, target):
    def setup():
        for name in NAMES:
            ctl.create(prefix + name)

    switch = ["--manglename", target] if target else []
    for name in ("a b", "a b\\x20c", "a\\x5cx20b"):
        both(ctl, prefix, [*switch, "mangle", prefix + name], setup)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m[-1])
def test_rename_sends_the_new_name_and_uuid_mangled(ctl, prefix, mode):
    def setup():
        ctl.create(prefix + "old")

    for new in ("a b", "a\\x20b", "a b\\x20c", "back\\slash"):
        both(ctl, prefix, [*mode, "rename", prefix + "old", prefix + new], setup)
        both(ctl, prefix, [*mode, "rename", prefix + "old", "--setuuid", f"{prefix}U {new}"], setup)


@pytest.mark.parametrize("value", ["none", "HEX", "bogus"])
def test_the_environment_sets_the_default_mode(ctl, prefix, monkeypatch, value):
    monkeypatch.setenv("DM_DEFAULT_NAME_MANGLING_MODE", value)
    for name in ("a b", "a\\x20b"):
        both(ctl, prefix, ["create", prefix + name, "--notable"])
    # --manglename wins over the environment; mangle ignores the environment.
    both(ctl, prefix, ["--manglename", "auto", "create", prefix + "a\\x20b", "--notable"])
    both(ctl, prefix, ["mangle", prefix + "a b"], lambda: ctl.create(prefix + "a b"))


def test_a_mangled_name_round_trips_through_the_api(ctl, prefix):
    from pydevmapper import mangling

    code, *_ = both(ctl, prefix, ["create", prefix + "v g/ é", "--notable"])
    assert code == 1  # '/' is refused
    name = mangling.mangle(prefix + "v g é")
    ctl.create(name)
    code, out, _ = _run("dm", ["info", "-c", "--noheadings", "-o", "name", name])
    assert (code, out.decode().strip()) == (0, prefix + "v g é")
    assert mangling.unmangle(ctl.info(name).name) == prefix + "v g é"
