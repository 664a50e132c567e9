# SPDX-License-Identifier: LGPL-2.1-or-later
"""--count and --interval: dmsetup's repeated runs, on a fake clock.

The output itself is compared with the host's dmsetup in
test_cli_vs_host_dmsetup.py (and with the guest's, on real devices, in the
root tier); here, the timer: when the runs start and what a slow run costs.
"""

from __future__ import annotations

import time

import pytest

from pydevmapper import cli


class FakeClock:
    def __init__(self, run_takes: float = 0.0) -> None:
        self.now = 1000.0
        self.run_takes = run_takes  # how far each run moves the clock
        self.sleeps: list[float] = []
        self.starts: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(time, "monotonic", c.monotonic)
    monkeypatch.setattr(time, "sleep", c.sleep)
    real = cli._run_once

    def run_once(*args, **kwargs):
        c.starts.append(c.now)
        ok = real(*args, **kwargs)
        c.now += c.run_takes
        return ok
    monkeypatch.setattr(cli, "_run_once", run_once)
    return c


def test_runs_start_on_the_ticks_of_a_fixed_rate_timer(clock, capsys):
    clock.run_takes = 0.4
    assert cli.main(["splitname", "vg-lv", "--count", "3", "--interval", "2"], prog="dmsetup") == 0
    # Armed before the first run: a run's own time does not delay the next.
    assert clock.starts == [1000.0, 1002.0, 1004.0]
    assert clock.sleeps == [pytest.approx(1.6), pytest.approx(1.6)]
    out = capsys.readouterr()
    assert out.out == "VG   LV   LVLayer\nvg   lv          \n\n" * 2 + "VG   LV   LVLayer\nvg   lv          \n"
    assert out.err == ""


def test_a_run_longer_than_the_interval_reports_the_ticks_it_missed(clock, capsys):
    clock.run_takes = 2.4
    assert cli.main(["splitname", "vg-lv", "--count", "3"], prog="dmsetup") == 0  # 1 s default
    # The first run ends at 1002.4: the ticks at 1001 and 1002 have passed,
    # so the second run starts at once and the one at 1001 counts as missed;
    # the second ends at 1004.8, past the ticks at 1003 and 1004.
    assert clock.starts == [1000.0, pytest.approx(1002.4), pytest.approx(1004.8)]
    assert clock.sleeps == []
    assert capsys.readouterr().err == (
        "WARNING: Try increasing --interval (1 missed timer events).\n"
        "WARNING: Try increasing --interval (1 missed timer events).\n")


def test_output_other_than_a_report_comes_again_without_waiting(clock, capsys):
    assert cli.main(["udevflags", "0x40000", "--count", "3", "--interval", "5"], prog="dmsetup") == 0
    assert len(clock.starts) == 3 and clock.sleeps == []
    assert capsys.readouterr().out == "DM_UDEV_DISABLE_DISK_RULES_FLAG='1'\n" * 3


def test_interval_alone_repeats_until_a_run_fails(clock, capsys, monkeypatch):
    real = cli._run_once
    seen = []

    def fail_on_the_fifth(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs) and len(seen) < 5
    monkeypatch.setattr(cli, "_run_once", fail_on_the_fifth)
    assert cli.main(["splitname", "vg-lv", "--interval", "1", "--noheadings"], prog="dmsetup") == 1
    assert len(seen) == 5 and len(clock.sleeps) == 4
    assert capsys.readouterr().out == "vg:lv:\n\n" * 4 + "vg:lv:\n"
