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
