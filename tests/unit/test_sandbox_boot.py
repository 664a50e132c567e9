# SPDX-License-Identifier: LGPL-2.1-or-later
"""The sandbox boots again when the guest dies before the command starts,
and never re-runs a command that did start (its failure is a result)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pydevmapper.sandbox import guest
from pydevmapper.sandbox.kernels import Kernel


def _result(rc: int, started: bool) -> guest.GuestResult:
    return guest.GuestResult(returncode=rc, output=b"", guest_log="", console="", elapsed=0.0,
                             boot_seconds=None, accel="tcg", kernel="k", notes=["console tail"],
                             started=started)


@pytest.fixture
def boots(monkeypatch: pytest.MonkeyPatch) -> list[guest.GuestResult]:
    """The results _boot hands out, in order; what is left after the run."""
    queue: list[guest.GuestResult] = []
    monkeypatch.setattr(guest, "check_host", lambda udev: None)
    monkeypatch.setattr(guest, "compile_bytecode", lambda: None)
    monkeypatch.setattr(guest, "static_busybox", lambda log: Path("/bin/busybox"))
    monkeypatch.setattr(guest, "kvm_usable", lambda vmlinuz: False)
    monkeypatch.setattr(guest, "_boot", lambda *a, **k: queue.pop(0))
    return queue


KERNEL = Kernel("6.1", "6.1.0-test", "bookworm", Path("/k"), Path("/k/vmlinuz"), Path("/k/modules"), Path("/k/kdir"))


def test_a_boot_that_dies_before_the_command_is_tried_again(boots: list) -> None:
    boots += [_result(guest.EXIT_NO_STATUS, False), _result(0, True)]
    logged: list[str] = []
    res = guest.run_in_guest(["true"], KERNEL, build=False, log=logged.append)
    assert res.returncode == 0 and not boots
    assert any("booting again" in line for line in logged)
    assert any("console tail" in line for line in logged)


def test_a_command_that_ran_and_failed_is_not_run_again(boots: list) -> None:
    boots += [_result(guest.EXIT_NO_STATUS, True), _result(0, True)]
    res = guest.run_in_guest(["true"], KERNEL, build=False, log=lambda _: None)
    assert res.returncode == guest.EXIT_NO_STATUS and len(boots) == 1


def test_boots_are_bounded(boots: list) -> None:
    boots += [_result(guest.EXIT_NO_STATUS, False) for _ in range(guest.BOOT_ATTEMPTS + 1)]
    res = guest.run_in_guest(["true"], KERNEL, build=False, log=lambda _: None)
    assert res.returncode == guest.EXIT_NO_STATUS and len(boots) == 1


def test_the_cached_trees_are_outermost_first_and_never_the_whole_system(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest.sys, "base_prefix", "/opt/py")
    monkeypatch.setattr(guest.sys, "prefix", "/src/repo/.venv")
    assert guest.cached_dirs("/src/repo") == ["/opt/py", "/src/repo"]
    assert guest.cached_dirs("/") == ["/opt/py", "/src/repo/.venv"]
    # A system interpreter: its standard library, not /usr.
    monkeypatch.setattr(guest.sys, "base_prefix", "/usr")
    monkeypatch.setattr(guest.sysconfig, "get_paths", lambda: {"stdlib": "/usr/lib/python3.11"})
    assert guest.cached_dirs("/src/repo") == ["/src/repo", "/usr/lib/python3.11"]


def test_the_wrapper_binds_the_cached_trees_and_skips_one_holding_a_mount(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest.sys, "base_prefix", "/opt/py")
    monkeypatch.setattr(guest.sys, "prefix", "/src/repo/.venv")
    script = guest._wrapper_script(tmp_path, ["true"], cwd="/src/repo", env={}, udev=False, preload=())
    assert ",cache=loose\n" in script and f'mount -t 9p -o "$opts" {guest.CACHED_TAG} "$C"' in script
    assert "    for d in /opt/py /src/repo; do\n" in script
    assert 'mount --bind "$C$d" "$d"' in script and "holds a mount" in script
