# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmstats' own arithmetic, as libdm 1.02.185 does it: sizes and units,
--start/--length/--areasize, --bounds, the derived figures, the walk; and
the refusals dmsetup makes before it asks the kernel anything.  (The same
against Debian's dmstats on a kernel: tests/root/test_stats_cli.py.)"""

from __future__ import annotations

import pytest

from pydevmapper.cli import main, report, selection
from pydevmapper.cli import stats_commands as sc
from pydevmapper.cli import stats_report as sr
from pydevmapper.stats import Counters, Group, Region


@pytest.mark.parametrize("sectors, units, shown", [
    (0, "h", "0"), (1, "h", "512b"), (16384, "h", "8.00m"), (1024, "h", "512.00k"), (3, "h", "1.50k"),
    (2**31, "h", "1.00t"), (2**33, "h", "4.00t"), ((2**53) * 3, "h", "12.00e"),
    (1 + (1 << 55), "h", "512b"),  # bytes wrap at 2**64, as libdm's do
    (16384, "s", "16384"), (16384, "b", "8388608"), (16384, "k", "8192.00"), (16384, "m", "8.00"),
    (16384, "K", "8388.61"), (16384, "H", "8.39M"), (16384, "4k", "2048.00"), (100, "S", "100"),
])
def test_sizes_as_libdm_shows_them(sectors, units, shown):
    assert sr.Units(units).size(sectors) == shown


@pytest.mark.parametrize("units", ["x", "", "1.5", "kb2"[2:], "%"])
def test_units_libdm_does_not_know_have_no_factor(units):
    assert sr.Units(units).factor == 0


class _S:
    def __init__(self):
        self.errors = []

    def error(self, text):
        self.errors.append(text)


@pytest.mark.parametrize("text, size", [
    ("8", 4096), ("4m", 4 << 20), ("4M", 4_000_000), ("1k", 1024), ("3s", 1536), ("7b", 7),
    ("4.5m", 4), ("2x", 2), (" 9", 4608), ("-1", (-512) % 2**64),
])
def test_sizes_read_as_dmsetup_reads_them(text, size):
    assert sc.size_from_string(_S(), text, "start") == size


def test_a_size_without_digits_is_refused_by_name():
    s = _S()
    with pytest.raises(sc.Failed):
        sc.size_from_string(s, "abc", "areasize")
    assert s.errors == ['Invalid areasize argument: "abc"']


@pytest.mark.parametrize("text, bounds", [
    ("1ms,10ms,100ms", [1_000_000, 10_000_000, 100_000_000]),
    ("1ms,10,100", [1_000_000, 10_000_000, 100_000_000]),  # a unit carries over
    ("10,20", [10, 20]), ("10us,1s", [10_000, 1_000_000_000]), ("5ns", [5]),
])
def test_histogram_bounds_in_ns(text, bounds):
    assert sc.bounds_from_string(_S(), text) == bounds


@pytest.mark.parametrize("text, error", [
    (",1", "Empty histogram bin not allowed: ,1"), ("1x", "Invalid character in histogram: x"),
    ("1ks", "Invalid character in histogram: k"), ("1m", "Invalid character in histogram: m"),
    ("a", "Invalid character in histogram: a"),
])
def test_bad_histogram_bounds(text, error):
    s = _S()
    with pytest.raises(sc.Failed):
        sc.bounds_from_string(s, text)
    assert s.errors == [error]


def _counters(**kw):
    values = dict.fromkeys(Counters._fields[2:-1], 0)
    values.update(kw)
    return Counters(0, 8, **values)


def test_derived_figures_as_dmstats_shows_them():
    c = _counters(reads=8, read_sectors=64, reads_merged=2, read_time=8_000_000, io_time=500_000_000,
                  weighted_io_time=250_000_000, writes=2, write_sectors=16, write_time=4_000_000)
    units, second = sr.Units("h"), 1_000_000_000

    def m(field, interval=second):
        return str(sr.metric(field, c, interval, units))

    assert m("reads_per_sec") == "8.00" and m("writes_per_sec") == "2.00"
    assert m("reads_per_sec", 2 * second) == "4.00"
    assert m("reads_merged_per_sec") == "0.00"  # libdm divides merges by ns
    assert m("read_size_per_sec") == "32.00k" and m("avg_request_size") == "4.00k"
    assert m("queue_size") == "0.25" and m("util") == "50.00"
    assert m("await") == "1.20" and m("read_await") == "1.00" and m("write_await") == "2.00"
    assert m("throughput") == "10.00" and m("interval") == "1.000000" and m("interval_ns") == "1000000000"
    assert str(sr.metric("util", _counters(io_time=1000), second, units)) == "0.01"  # never 0.00 for some
    assert str(sr.metric("util", _counters(io_time=2 * second), second, units)) == "100.00"
    assert str(sr.metric("await", _counters(), second, units)) == "0.00"


def test_figures_are_keyed_as_libdm_sorts_and_selects_them():
    """Rates are doubles that libdm compares as uint64 bits (the numbers'
    order, but any rate above 0 is "more than" every integer one types);
    util is a percent in millionths; sizes are sectors."""
    units, second = sr.Units("h"), 1_000_000_000
    rates = [sr.metric("reads_per_sec", _counters(reads=n), second, units) for n in (10, 0, 9, 3)]
    assert [str(r) for r in sorted(rates, key=report.sort_key)] == ["0.00", "3.00", "9.00", "10.00"]
    assert rates[1].key == 0 and rates[3].key == 0x4008000000000000  # 3.0's bits
    assert sr.metric("util", _counters(io_time=second // 2), second, units).key == 50_000_000
    sized = sr.metric("read_size_per_sec", _counters(read_sectors=8), second, units)
    assert (str(sized), report.sort_key(sized)) == ("4.00k", 0x4020000000000000)  # 8.0's bits


def _stats_rows(text, rows):
    errors = []
    sel = selection.parse(text, "", errors.append)
    assert not errors
    return [r["n"] for r in rows if sel(r)]


def test_stats_rows_select_by_their_keys():
    units = sr.Units("h")
    rows = [{"n": n, "region_len": report.Keyed(units.size(length), float(length)),
             "reads_per_sec": sr.metric("reads_per_sec", _counters(reads=reads), 1_000_000_000, units),
             "precise": sr._int_as_string(precise), "group_id": group,
             "region_id": region}
            for n, length, reads, precise, group, region in (
                (0, 16384, 10, 1, 0, 0), (1, 2048, 0, 0, report.Keyed("-", sr._NO_GROUP), 1),
                (2, 4096, 3, 0, 0, report.Keyed("0-1", 0)))]
    assert [str(r["region_len"]) for r in rows] == ["8.00m", "1.00m", "2.00m"]
    assert _stats_rows("region_len>1m", rows) == [0, 2]
    assert _stats_rows("region_len=2048s", rows) == [1]
    assert _stats_rows("reads_per_sec<5", rows) == [1]  # 3.00 is not: its bits are more than 5
    assert _stats_rows("reads_per_sec>0", rows) == [0, 2]
    assert _stats_rows("precise=1", rows) == []  # libdm reads the number's bytes as the string
    assert _stats_rows("precise=''", rows) == [1, 2]
    assert _stats_rows("group_id=0", rows) == [0, 2] and _stats_rows("region_id>=1", rows) == [1]
    opts = report.Options(report.parse_fields("region_len", "", print), report.parse_sort("-region_len", ""),
                          None, False, False, ":", False, False, False)
    assert report.format_report(opts, rows) == "8.00m\n2.00m\n1.00m\n"


def test_the_walk_puts_areas_first_and_skips_single_area_regions():
    one = Region(0, 0, 100, 100, "dmstats", "DMS_GROUP=g:0-1#-")
    four = Region(1, 0, 100, 25, "dmstats", "-")
    held = sr.Handle(_S(), [one, four])
    [group] = held.groups.values()
    assert group == Group(0, (0, 1), "g", "-") and held.aux == {0: "", 1: ""}
    everything = sr.AREA | sr.REGION | sr.GROUP | sr.SKIP_SINGLE_AREA
    assert held.walk(everything) == [(one, 0), (four, 0), (four, 1), (four, 2), (four, 3), (four, None),
                                     (group, None)]
    assert held.walk(sr.REGION | sr.GROUP) == [(one, None), (four, None), (group, None)]
    assert held.walk(sr.AREA) == [(one, 0), (four, 0), (four, 1), (four, 2), (four, 3)]


_BOUNDS = (1_000_000, 10_000_000, 100_000_000)


# As Debian's dmstats 1.02.185 printed them (the widths: 0 with headings, -1 with --noheadings).
@pytest.mark.parametrize("field, width, suffix, counts, text", [
    ("hist_count", 0, True, (0, 0, 0, 0), "     0     0     0     0"),
    ("hist_count", -1, True, (0, 7, 0, 12), "0:7:0:12"),
    ("hist_count_bounds", 0, True, (0, 0, 0, 0), "    0s:     0,   1ms:     0,  10ms:     0, 100ms:     0"),
    ("hist_count_bounds", -1, True, (0, 0, 0, 0), "0s:0:1ms:0:10ms:0:100ms:0"),
    ("hist_count_bounds", 0, False, (0, 0, 0, 0),
     "         0:     0,   1000000:     0,  10000000:     0, 100000000:     0"),
    ("hist_count_ranges", 0, True, (0, 0, 0, 0), "0s-1ms:     0,1ms-10ms:   0,10ms-100ms: 0,>100ms:     0"),
    ("hist_count_ranges", -1, True, (0, 0, 0, 0), "0s-1ms:0:1ms-10ms:0:10ms-100ms:0:>100ms:0"),
    ("hist_count_ranges", 0, False, (0, 0, 0, 0),
     "0-1000000:      0,1000000-10000000:0,10000000-100000000:0,>100000000:     0"),
    ("hist_percent", 0, True, (0, 0, 0, 0), "  0.00%  0.00%  0.00%  0.00%"),
    ("hist_percent", -1, True, (0, 0, 0, 0), "0.00%:0.00%:0.00%:0.00%"),
    ("hist_percent_bounds", 0, True, (3, 1, 0, 6), "    0s: 30.00%,   1ms: 10.00%,  10ms:  0.00%, 100ms: 60.00%"),
    ("hist_percent_ranges", 0, True, (0, 0, 0, 0),
     "0s-1ms:  0.00%,1ms-10ms:0.00%,10ms-100ms:0.00%,>100ms:  0.00%"),
    ("hist_percent_ranges", 0, False, (0, 0, 0, 0),
     "0-1000000:   0.00%,1000000-10000000:0.00%,10000000-100000000:0.00%,>100000000:  0.00%"),
    ("hist_bounds", 0, True, (0, 0, 0, 0), "0s,1ms,10ms,100ms"),
    ("hist_bounds", 0, False, (0, 0, 0, 0), "0,1000000,10000000,100000000"),
    ("hist_ranges", -1, True, (0, 0, 0, 0), "0s-1ms,1ms-10ms,10ms-100ms,>100ms"),
])
def test_histograms_as_dmstats_shows_them(field, width, suffix, counts, text):
    flags = sr._HISTOGRAMS[field] | (sr._SUFFIX if suffix else 0)
    assert sr.histogram_text(_BOUNDS, counts, flags, width) == text


def test_histogram_bounds_in_their_largest_whole_unit():
    flags = sr._HISTOGRAMS["hist_ranges"] | sr._SUFFIX
    text = sr.histogram_text((500, 2000, 3_000_000, 2_000_000_000), (0,) * 5, flags, 0)
    assert text == "0s-500ns,500ns-2us,2us-3ms,3ms-2s,>2s"


def test_libdm_reads_aux_data_with_its_defects():
    """None when it starts with '-'; the last character lost when options follow it."""
    regions = [Region(0, 0, 8, 8, "p", "-x"), Region(1, 0, 8, 8, "p", "hello", True),
               Region(2, 0, 8, 8, "p", "hello"), Region(3, 0, 8, 8, "p", "DMS_GROUP=:3#own", False, (5,))]
    held = sr.Handle(_S(), regions)
    assert held.aux == {0: "", 1: "hell", 2: "hello", 3: "ow"}


@pytest.mark.parametrize("text, ids", [("0-2,5", [0, 1, 2, 5]), (" 1 , 3 ", [1, 3]), ("2-1", None),
                                       ("x", None), ("1-", None), ("-1", None), ("4", [4])])
def test_region_lists_as_libdm_reads_them(text, ids):
    assert sc._bitset_list(text) == ids


@pytest.fixture
def dmstats(capsys):
    def run(*argv, prog="dmstats"):
        code = main(list(argv), prog=prog)
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


@pytest.mark.parametrize("argv, err", [
    (["create", "--areas", "2", "--areasize", "8", "x"], "Please specify one of --areas and --areasize.\n"),
    (["create", "--allregions", "x"], "Cannot use --allregions with create.\n"),
    (["create", "--programid", "", "x"], "Creating a region with no program id requires --force.\n"),
    (["create"], "Please specify device(s) or use --alldevices.\n"),
    (["delete", "x"], "Please specify a --regionid or --groupid, or use --allregions.\n"),
    (["delete", "--regionid", "1", "--groupid", "1", "x"], "Please use one of --regionid and --groupid.\n"),
    (["print", "x"], "Please specify a --regionid or use --allregions.\n"),
    (["clear", "x"], "Please specify a --regionid or use --allregions.\n"),
    (["list", "--allprograms", "--programid", "p"], "Please supply one of --allprograms and --programid\n"),
    (["list", "--allregions", "--regionid", "1"], "Please supply one of --allregions and --regionid\n"),
])
def test_refusals_before_the_kernel_is_asked(dmstats, argv, err):
    assert dmstats(*argv) == (1, "", err + "Command failed.\n")


def test_usage_names_the_program_as_dmsetup_does(dmstats):
    code, out, err = dmstats("--help")
    assert (code, out) == (0, "") and err.startswith("Usage:\n\ndmstats\n") and "\tupdate_filemap" in err
    code, out, err = dmstats("stats", prog="dmsetup")
    assert code == 1 and err.startswith("Incorrect number of arguments.\nUsage:\n\ndmsetup stats\n")
    assert dmstats()[0] == 1 and dmstats()[2].startswith("Usage:\n\ndmstats\n")
    code, out, err = dmstats("nosuch")
    assert code == 1 and err.startswith("Unknown stats command.\nUsage:") and err.endswith("Command failed.\n")
    assert dmstats("list", "--units", "x") == (1, "", "Invalid --units argument.\n")
