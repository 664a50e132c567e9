# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup as the system's dmsetup: LVM2 and cryptsetup driven with
udevd and its stock device-mapper rules, which run ``/sbin/dmsetup
udevflags``, ``info -c --nameprefixes``, ``splitname`` and
``udevcomplete`` for every device-mapper event.

The same scenario runs twice, first with Debian's dmsetup, then with
pydmsetup (and pydmstats) bound over ``/sbin/dmsetup`` and
``/usr/sbin/dmsetup`` in the guest's own mount table (nothing on the host
changes; it is the installed console script, which ends at once after
releasing a waiter, see ``pydevmapper.cli.console``): every command must succeed, the same ``/dev/<vg>/<lv>``,
``/dev/mapper`` and ``/dev/disk/by-id`` links must appear and go, udev
must give each device the same DM_* properties, and no udev cookie may be
left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from pydevmapper import udev
from tests.root.helpers import pydmsetup_as_dmsetup

pytestmark = [pytest.mark.dm_root, pytest.mark.udev,
              pytest.mark.skipif(not udev.udev_running(), reason="needs udevd running (the udev boot)")]

VG = "pydmtdropin"
_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
# Not compared: the uuids (new each run), the cookie, and the flags that
# gate scanning a volume LVM has just made.  LVM activates it with "do not
# scan" flags, wipes its start and relies on the change event udevd's
# watch raises for that write; udevd starts watching only after the rule's
# programs (udevcomplete last) have ended, so whether the wipe is seen is
# a race, which pydmsetup (a Python process, even ending at once after the
# release) loses more often than dmsetup on a loaded host.  Links and every
# other property are compared.
_NOT_COMPARED = ("DM_UUID=", "DM_COOKIE=", "DM_ACTIVATION=", "DM_NOSCAN=", "DM_SUBSYSTEM_UDEV_FLAG0=",
                 "DM_UDEV_DISABLE_OTHER_RULES_FLAG=")


def _run(*argv: str, stdin: bytes | None = None) -> None:
    done = subprocess.run(list(argv), input=stdin, env=_ENV, capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr.decode()}"


def _settle() -> None:
    subprocess.run(["udevadm", "settle", "--timeout=300"], check=True, timeout=400)


def _ours(name: str, prefixes: tuple[str, ...]) -> bool:
    return name.startswith(prefixes)


def _observe(prefixes: tuple[str, ...]) -> dict[str, object]:
    """What udev made for our devices: links and DM_* properties (uuids,
    which differ between the runs, left out)."""
    names = {}
    for block in Path("/sys/block").glob("dm-*"):
        name = (block / "dm" / "name").read_text().strip()
        if _ours(name, prefixes):
            names[block.name] = name
    seen: dict[str, object] = {"devices": sorted(names.values())}
    seen["mapper"] = sorted(p.name for p in Path("/dev/mapper").iterdir() if _ours(p.name, prefixes))
    seen["vg"] = sorted(p.name for p in Path(f"/dev/{VG}").iterdir()) if Path(f"/dev/{VG}").is_dir() else []
    by_id = []
    if Path("/dev/disk/by-id").is_dir():
        for link in Path("/dev/disk/by-id").iterdir():
            target = os.path.basename(os.readlink(link))
            if target in names:
                kind = re.sub(r"^(dm-uuid-[A-Z0-9]+(-[A-Z0-9]+)?)-.*$", r"\1", link.name)
                kind = link.name if kind.startswith("dm-name-") else kind
                by_id.append((kind, names[target]))
    seen["by-id"] = sorted(by_id)
    props = {}
    for dm_n, name in names.items():
        out = subprocess.run(["udevadm", "info", "--query=property", f"/dev/{dm_n}"],
                             capture_output=True, text=True, check=True).stdout
        props[name] = sorted(line for line in out.splitlines()
                             if line.startswith("DM_") and not line.startswith(_NOT_COMPARED))
    seen["properties"] = props
    return seen


def _cookies() -> list[str]:
    """Semaphores with libdevmapper's cookie key prefix (0x0d4d)."""
    out = subprocess.run(["ipcs", "-s"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("0x0d4d")]


def _lvm(loop, *args: str) -> None:
    _run("lvm", args[0], "--devices", loop.path, *args[1:])


def _lvm_scenario(loop) -> list[dict[str, object]]:
    prefixes = (f"{VG}-",)
    steps = []
    _lvm(loop, "pvcreate", "-q", loop.path)
    _lvm(loop, "vgcreate", "-q", "-s", "1m", VG, loop.path)
    try:
        for args in (["lvcreate", "-q", "-L", "8m", "-n", "lin", VG],
                     ["lvcreate", "-q", "-s", "-L", "4m", "-n", "snap", f"{VG}/lin"],
                     ["lvcreate", "-q", "-L", "16m", "-T", f"{VG}/pool"],
                     ["lvcreate", "-q", "-V", "16m", "-T", f"{VG}/pool", "-n", "thin"],
                     ["lvchange", "-q", "-an", f"{VG}/thin"], ["lvchange", "-q", "-ay", f"{VG}/thin"],
                     ["lvremove", "-q", "-f", f"{VG}/snap"], ["lvremove", "-q", "-f", f"{VG}/thin"],
                     ["lvremove", "-q", "-f", f"{VG}/pool"], ["lvremove", "-q", "-f", f"{VG}/lin"]):
            _lvm(loop, *args)
            _settle()
            steps.append({"after": " ".join(args[:1] + args[-1:]), **_observe(prefixes)})
    except BaseException:  # the step's failure is the test's: clean up as far as LVM can
        for args in (["vgremove", "-q", "-ff", VG], ["pvremove", "-q", "-ff", loop.path]):
            subprocess.run(["lvm", args[0], "--devices", loop.path, *args[1:]], env=_ENV,
                           capture_output=True, timeout=600, check=False)
        _settle()
        raise
    _lvm(loop, "vgremove", "-q", "-ff", VG)
    _lvm(loop, "pvremove", "-q", "-ff", loop.path)
    _settle()
    steps.append({"after": "vgremove", **_observe(prefixes)})
    return steps


def _crypt_scenario(loop, tmp_path) -> list[dict[str, object]]:
    key = tmp_path / "key"
    key.write_bytes(b"pydevmapper drop-in test key 32b")
    luks = ["--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", str(key)]
    steps: list[dict[str, object]] = []
    try:
        _crypt_steps(loop, luks, key, steps)
    finally:  # a failed step leaves no mapping behind (the sweep knows only the session's prefix)
        for name in ("pydmtcryptplain", "pydmtcryptluks", "pydmtcryptinteg"):
            if os.path.exists(f"/dev/mapper/{name}"):
                subprocess.run(["cryptsetup", "close", name], capture_output=True, timeout=600, check=False)
    return steps


def _crypt_steps(loop, luks, key, steps) -> None:
    for name, make, open_args in (
        ("pydmtcryptplain", None, ["open", "--type", "plain", "--cipher", "aes-xts-plain64", "--key-size", "256",
                                    "--key-file", str(key)]),
        ("pydmtcryptluks", ["luksFormat", "--type", "luks2", *luks], ["open", "--key-file", str(key)]),
        ("pydmtcryptinteg", ["luksFormat", "--type", "luks2", "--integrity", "hmac-sha256",
                             "--integrity-no-wipe", *luks], ["open", "--key-file", str(key)]),
    ):
        if make is not None:
            _run("cryptsetup", *make, loop.path)
        _run("cryptsetup", *open_args, loop.path, name)
        _settle()
        steps.append({"after": f"open {name}", **_observe(("pydmtcrypt",))})
        _run("cryptsetup", "close", name)
        _settle()
        steps.append({"after": f"close {name}", **_observe(("pydmtcrypt",))})


def _both(scenario):
    """The scenario with Debian's dmsetup, then with pydmsetup as dmsetup."""
    runs = []
    for stand_in in (False, True):
        with pydmsetup_as_dmsetup() if stand_in else contextlib.nullcontext():
            runs.append(scenario())
            _settle()
            assert _cookies() == [], "a udev cookie was left behind"
    return runs


def test_lvm_with_pydmsetup_as_dmsetup(dm_make_loop):
    runs = _both(lambda: _lvm_scenario(dm_make_loop(64)))
    made = runs[0][3]  # after the thin volume: the scenario did make what it compares
    assert {"lin", "snap", "thin"} <= set(made["vg"]) and made["by-id"] and made["properties"]
    _same(runs)


def _same(runs):
    """Step by step, so a difference names its step and key."""
    assert [step["after"] for step in runs[1]] == [step["after"] for step in runs[0]]
    for debian, ours in zip(*runs):
        for key in debian:
            assert (debian["after"], key, ours[key]) == (debian["after"], key, debian[key])


def test_cryptsetup_with_pydmsetup_as_dmsetup(dm_make_loop, tmp_path):
    runs = _both(lambda: _crypt_scenario(dm_make_loop(32), tmp_path))
    assert runs[0][0]["mapper"] == ["pydmtcryptplain"]
    _same(runs)
