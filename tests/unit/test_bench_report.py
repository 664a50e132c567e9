# SPDX-License-Identifier: LGPL-2.1-or-later
"""tests.bench.report: statistics, ratios, target checks, table and JSON shape."""

from __future__ import annotations

import json

import pytest

from tests.bench import report
from tests.bench.report import Unavailable


def test_stats_median_min_max_count():
    assert report.stats([3.0, 1.0, 2.0, 10.0]) == {"median_s": 2.5, "min_s": 1.0, "max_s": 10.0, "n": 4}
    with pytest.raises(ValueError):
        report.stats([])


def test_ratio_to_c_is_median_over_the_floor_median():
    results = report.summarize({"info": {"api": [2.0, 4.0, 3.0], "c": [1.0, 2.0, 3.0], "dmsetup": [100.0]}})
    assert results["info"]["c"]["ratio_to_c"] == 1.0
    assert results["info"]["api"]["ratio_to_c"] == pytest.approx(1.5)
    assert results["info"]["dmsetup"]["ratio_to_c"] == pytest.approx(50.0)


def test_no_floor_means_no_ratio_and_unavailable_keeps_its_reason():
    results = report.summarize({"lifecycle_udev": {"c": Unavailable("no udev mode"), "api": [1.0]}})
    row = results["lifecycle_udev"]
    assert list(row) == ["api", "c"]  # contenders in the issue's order
    assert row["api"]["ratio_to_c"] is None
    assert row["c"] == {"median_s": None, "min_s": None, "max_s": None, "n": 0,
                        "ratio_to_c": None, "unavailable": "no udev mode"}


def test_listing_cost_per_device():
    results = report.summarize({"list_10": {"api": [1e-3]}, "list_100": {"api": [5e-3]}})
    assert report.list_sizes(results) == [10, 100]
    assert report.per_device(results)["api"] == {"10": pytest.approx(1e-4), "100": pytest.approx(5e-5)}


def _checks(raw, retries=None):
    return {c.target: c for c in report.check_targets(report.summarize(raw), retries)}


def test_targets_api_to_c_lifecycle_libdm_linearity_and_retries():
    checks = _checks({
        "info": {"api": [1.2], "c": [1.0], "libdm": [2.0]},
        "table": {"api": [1.4], "c": [1.0], "libdm": [1.0]},
        "lifecycle_nosync": {"api": [1.0], "dmsetup": [9.0]},
        "lifecycle_udev": {"api": [1.0], "dmsetup": Unavailable("boom")},
        "list_1000": {"api": [1.0], "c": [1.0]},
        "list_5000": {"api": [10.0], "c": [5.0]},
    }, {"1000": 0, "5000": 1})
    assert checks["info: api <= 1.3x C"].met is True
    assert checks["table: api <= 1.3x C"].met is False
    assert checks["list_5000: api <= 1.3x C"].met is False
    assert checks["lifecycle_nosync: api >= 8x faster than dmsetup"].met is True
    udev = checks["lifecycle_udev: api >= 8x faster than dmsetup"]
    assert udev.met is None and "boom" in udev.detail
    assert checks["info: api no slower than libdm"].met is True
    assert checks["table: api no slower than libdm"].met is False
    linear = checks["listing linear in N: api per-device cost at N=5000 <= 1.5x that at N=1000"]
    assert linear.met is False and linear.detail == "2.00x"
    retries = checks["listing: no buffer-growth retries after the first call"]
    assert retries.met is False and retries.detail == "N=1000: 0, N=5000: 1"


def test_python_floor_splits_the_gap_to_c_and_sorts_after_it():
    raw = {"info": {"libdm": [5.0], "pyfloor": [4.0], "api": [8.0], "c": [1.0]}}
    assert list(report.summarize(raw)["info"]) == ["api", "c", "pyfloor", "libdm"]
    check = _checks(raw)["info: api <= 1.3x C"]
    assert check.met is False
    assert check.detail == "8.00x (bare Python ioctl: 4.00x C; api: 2.00x that)"


def test_python_floor_bounds_the_lifecycle_speed_up_over_dmsetup():
    raw = {"lifecycle_udev": {"api": [2.2], "pyfloor": [2.0], "dmsetup": [4.4]}}
    check = _checks(raw)["lifecycle_udev: api >= 8x faster than dmsetup"]
    assert check.met is False
    assert check.detail == "2.0x faster (bare Python ioctls: 2.2x faster)"


def test_budget_shares_split_counts_and_time_across_rounds():
    from tests.bench.operations import Budget

    b = Budget(warmup=2, min_n=10, max_n=30, seconds=4.0)
    assert b.share(0, 1) is b
    first, later = b.share(0, 4), b.share(3, 4)
    assert first == Budget(2, 3, 8, 1.0)
    assert later == Budget(2, 3, 8, 1.0)  # each round warms up again
    assert Budget(0, 2, 2, 0.0).share(1, 4) == Budget(0, 1, 1, 0.0)


def test_document_is_json_with_the_issue_schema():
    raw = {"version": {"api": [1e-5], "c": [1e-5], "libdm": [2e-5], "dmsetup": [1e-2],
                       "pydmsetup": Unavailable("exit 1")}}
    doc = json.loads(json.dumps(report.document("6.1.0-test", "udevd running", raw)))
    assert doc["kernel"] == "6.1.0-test"
    entry = doc["results"]["version"]["api"]
    assert set(entry) >= {"median_s", "min_s", "max_s", "ratio_to_c"}
    assert list(doc["results"]["version"]) == ["api", "c", "libdm", "dmsetup", "pydmsetup"]
    assert doc["results"]["version"]["pydmsetup"]["unavailable"] == "exit 1"


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.56e-5, "45.6 us"), (5e-8, "50 ns"),
])
def test_fmt_seconds(seconds, text):
    assert report.fmt_seconds(seconds) == text


def test_table_lists_every_contender_and_marks_targets():
    raw = {"info": {"api": [2e-6], "c": [1e-6], "pydmsetup": Unavailable("exit 1: Command failed.")},
           "list_10": {"api": [1e-5], "c": [1e-5]}, "list_100": {"api": [1e-4], "c": [1e-4]}}
    text = report.format_table(report.document("6.1.0-test", "udevd running", raw,
                                               list_retries={"10": 0, "100": 0}))
    assert "kernel 6.1.0-test, udevd running" in text
    assert "2.00x" in text
    assert "unavailable: exit 1: Command failed." in text
    assert "MISSED info: api <= 1.3x C: 2.00x" in text
    assert "MET    list_100: api <= 1.3x C: 1.00x" in text
    assert "listing: median cost per device" in text


def test_cpu_time_per_call_is_summarized_checked_and_shown():
    raw = {"lifecycle_nosync": {"api": [0.044, 0.046, 0.045], "libdm": [0.040, 0.041, 0.042]}}
    cpu = {"lifecycle_nosync": {"api": [0.003, 0.002, 0.004], "libdm": [0.0015]}}
    doc = report.document("6.1.0-test", "udevd running", raw, cpu=cpu)
    row = doc["results"]["lifecycle_nosync"]
    assert row["api"]["cpu_median_s"] == 0.003 and row["libdm"]["cpu_median_s"] == 0.0015
    check = {t["target"]: t for t in doc["targets"]}["lifecycle_nosync: api no slower than libdm"]
    assert check["met"] is False
    assert check["detail"] == "1.10x libdm (CPU in the calling process: 3 ms against 1.5 ms, 2.00x)"
    text = report.format_table(doc)
    section = text[text.index("CPU time of the calling process"):].splitlines()
    assert section[1].split() == ["lifecycle_nosync", "api", "3", "ms"]
    assert section[2].split() == ["libdm", "1.5", "ms"]
    # Without CPU samples nothing of it appears.
    assert "cpu_median_s" not in report.summarize({"info": {"api": [1.0]}})["info"]["api"]
    assert "CPU time" not in report.format_table(report.document("k", "m", {"info": {"api": [1.0]}}))


def test_interleaved_turns_rotate_and_a_failure_drops_only_its_contender():
    from tests.bench import contenders as cn
    from tests.bench.operations import Budget, time_interleaved

    calls = []
    cleanups = []

    def fn(name, fail_at=None):
        def call():
            calls.append(name)
            if fail_at is not None and calls.count(name) == fail_at:
                raise cn.Unavailable(f"{name} broke")
        return call

    fns = {"api": fn("api"), "libdm": fn("libdm", fail_at=4), "pyfloor": fn("pyfloor")}
    out = time_interleaved(fns, Budget(warmup=1, min_n=4, max_n=4, seconds=0.0),
                           after_failure=lambda: cleanups.append(len(calls)))
    # A warm-up turn, then turns rotated by one each; libdm's fourth call
    # (its third timed one) fails, so it drops out with two samples.
    assert calls == ["api", "libdm", "pyfloor",
                     "api", "libdm", "pyfloor",
                     "libdm", "pyfloor", "api",
                     "pyfloor", "api", "libdm",
                     "pyfloor", "api"]
    assert cleanups == [12]
    assert len(out["api"].wall) == len(out["api"].cpu) == 4
    assert len(out["pyfloor"].wall) == 4 and out["pyfloor"].failure is None
    assert len(out["libdm"].wall) == 2 and str(out["libdm"].failure) == "libdm broke"
    assert all(t >= 0 for t in out["api"].wall + out["api"].cpu)


def test_every_round_of_turns_runs_whoever_is_available(monkeypatch):
    from tests.bench import contenders as cn
    from tests.bench import operations
    from tests.bench.operations import Timed

    class Fake:
        def __init__(self, name, available=True):
            self.name, self.available = name, available

        def op(self, op, spec):
            if not self.available:
                raise cn.Unavailable(f"{self.name} cannot")
            return lambda: None

    turns = []

    def time_interleaved(fns, b, after_failure):
        turns.append(sorted(fns))
        return {name: Timed([0.04], [0.01], None) for name in fns}

    monkeypatch.setattr(operations, "time_interleaved", time_interleaved)
    monkeypatch.setattr(operations, "settle_udev", lambda: None)
    monkeypatch.setattr(operations, "_cleanup_lifecycle", lambda spec: None)
    run = operations.Run()
    # "gone" is unavailable and comes first in rounds 0 and 3: the others
    # must still take their turns in all four rounds.
    run.measure("lifecycle_nosync", [Fake("gone", available=False), Fake("api"), Fake("libdm")],
                spec=None)
    assert turns == [["api", "libdm"]] * 4
    assert run.raw["lifecycle_nosync"]["gone"] == report.Unavailable("gone cannot")
    assert run.raw["lifecycle_nosync"]["api"] == [0.04] * 4
    assert run.cpu["lifecycle_nosync"]["libdm"] == [0.01] * 4
