# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydevmapper.stats without a kernel: the messages sent, the answers
parsed, input refused before anything is sent, and the derived rates.
Against the kernel: tests/root/test_stats.py."""

from __future__ import annotations

import errno

import pytest

from pydevmapper import RegionNotFoundError, ValidationError, stats
from pydevmapper.flags import DMFlag
from tests.unit.fake_kernel import put_data


def answering(kernel, answers):
    """The fake kernel answers each message by its first word."""
    def handler(call, hdr, buf):
        text = call.payload[8:].split(b"\0")[0].decode()
        answer = answers[text.split()[0]]
        if isinstance(answer, int):
            return answer
        if answer is not None:
            hdr.flags |= DMFlag.DATA_OUT
            put_data(hdr, buf, answer.encode() + b"\0")
        return None
    kernel.handlers["DM_TARGET_MSG"] = handler


def sent(kernel):
    return [c.payload[8:].split(b"\0")[0].decode() for c in kernel.of("DM_TARGET_MSG")]


@pytest.mark.parametrize("kwargs, message", [
    ({}, "@stats_create - /1 0 - -"),
    ({"start": 8, "length": 100, "area_size": 10}, "@stats_create 8+100 10 0 - -"),
    ({"areas": 4, "program_id": "42"}, "@stats_create - /4 0 42 -"),
    ({"histogram": [1_000_000, 5_000_000], "program_id": "dmstats", "aux_data": "x"},
     "@stats_create - /1 1 histogram:1,5 dmstats x"),
    # A bound that is not whole milliseconds needs nanosecond timestamps.
    ({"histogram": [500_000, 1_000_000]}, "@stats_create - /1 2 precise_timestamps histogram:500000,1000000 - -"),
    ({"precise_timestamps": True}, "@stats_create - /1 1 precise_timestamps - -"),
])
def test_create_sends_the_kernels_grammar_and_returns_the_id(kernel, ctl, kwargs, message):
    answering(kernel, {"@stats_create": "7\n"})
    assert stats.create_region(ctl, "vol", **kwargs) == 7
    assert sent(kernel) == [message]


@pytest.mark.parametrize("kwargs, complaint", [
    ({"start": 8}, "a start needs a length"),
    ({"length": 0}, "length is a positive int"),
    ({"start": -1, "length": 8}, "must not be negative"),
    ({"areas": 2, "area_size": 8}, "not both"),
    ({"areas": 0}, "areas is a positive int"),
    ({"area_size": True}, "area_size is a positive int"),
    ({"histogram": [5, 5]}, "must increase"),
    ({"histogram": [0]}, "bound is a positive int"),
    ({"program_id": "a b"}, "one word"),
    ({"program_id": ""}, "non-empty"),
    ({"aux_data": "a\\b"}, "one word"),
    ({"precise_timestamps": 1}, "True or False"),
    # Wider than the kernel reads them (it would wrap).
    ({"areas": 1 << 32}, "areas is a positive int up to 4294967295"),
    ({"start": (1 << 64) - 8, "length": 16}, "past sector"),
    ({"area_size": 1 << 64}, "area_size is a positive int up to"),
    ({"histogram": [1 << 64]}, "bound is a positive int up to"),
    ({"histogram": None}, "histogram is a list"),
    ({"histogram": "1,2"}, "histogram is a list"),
])
def test_bad_create_input_is_refused_before_anything_is_sent(kernel, ctl, kwargs, complaint):
    with pytest.raises(ValidationError, match=complaint):
        stats.create_region(ctl, "vol", **kwargs)
    assert "DM_TARGET_MSG" not in kernel.commands()


def test_regions_listed_with_their_options_and_bounds_in_ns(kernel, ctl):
    answering(kernel, {"@stats_list": "0: 0+2048 512 dmstats - precise_timestamps histogram:1000,20000\n"
                                      "3: 8+100 100 - DMS_GROUP=g:3#-\n"})
    got = stats.list_regions(ctl, "vol")
    assert got == [stats.Region(0, 0, 2048, 512, "dmstats", "-", True, (1000, 20000)),
                   stats.Region(3, 8, 100, 100, "-", "DMS_GROUP=g:3#-")]
    assert got[0].areas == 4
    answering(kernel, {"@stats_list": "1: 0+10 3 p - histogram:2\n"})
    [one] = stats.list_regions(ctl, "vol", program_id="p")
    assert one.histogram_bounds == (2_000_000,) and one.areas == 4
    assert sent(kernel)[-1] == "@stats_list p"
    answering(kernel, {"@stats_list": None})
    assert stats.list_regions(ctl, "vol") == []


def test_counters_in_ns_with_the_last_area_cut_at_the_regions_end(kernel, ctl):
    region = stats.Region(2, 0, 1000, 512, "-", "-", False, (1_000_000,))
    answering(kernel, {"@stats_print": "0+512 1 2 3 4 5 6 7 8 0 10 11 12 13 5:6\n"
                                       "512+512 1 0 8 1 0 0 0 0 1 1 1 1 0 1:0\n"})
    first, last = stats.area_counters(ctl, "vol", region)
    assert sent(kernel) == ["@stats_print 2"]
    assert first == stats.Counters(0, 512, 1, 2, 3, 4_000_000, 5, 6, 7, 8_000_000, 0, 10_000_000,
                                   11_000_000, 12_000_000, 13_000_000, (5, 6))
    assert (last.start, last.length, last.in_flight) == (512, 488, 1)
    total = stats.Counters.total([first, last])
    assert (total.start, total.length, total.reads, total.read_sectors, total.histogram) == (0, 1000, 2, 11, (6, 6))
    assert total.since(total).reads == 0 and total.since(total).in_flight == 1


def test_print_clear_and_a_window_of_areas(kernel, ctl):
    region = stats.Region(1, 0, 4096, 512, "-", "-", True)
    answering(kernel, {"@stats_print_clear": "1024+512 0 0 0 7 0 0 0 0 0 0 0 0 0\n"})
    [area] = stats.area_counters(ctl, "vol", region, clear=True, first_area=2, count=1)
    assert sent(kernel) == ["@stats_print_clear 1 2 1"]
    assert area.read_time == 7  # precise: already ns


def test_a_region_given_by_id_is_looked_up_and_a_missing_one_is_typed(kernel, ctl):
    answering(kernel, {"@stats_list": "4: 0+8 8 - -\n", "@stats_print": "0+8 " + "0 " * 13,
                       "@stats_delete": errno.ENOENT, "@stats_clear": errno.ENOENT,
                       "@stats_set_aux": errno.ENOENT})
    assert len(stats.area_counters(ctl, "vol", 4)) == 1
    assert sent(kernel) == ["@stats_list", "@stats_print 4"]
    with pytest.raises(RegionNotFoundError, match="no statistics region 9"):
        stats.area_counters(ctl, "vol", 9)
    for call in (stats.delete_region, stats.clear_region):
        with pytest.raises(RegionNotFoundError, match="no statistics region 5") as err:
            call(ctl, "vol", 5)
        assert err.value.errno == errno.ENOENT and err.value.command == "DM_TARGET_MSG"
    with pytest.raises(RegionNotFoundError):
        stats.set_aux_data(ctl, "vol", 5, "note")
    assert sent(kernel)[-3:] == ["@stats_delete 5", "@stats_clear 5", "@stats_set_aux 5 note"]
    before = len(kernel.calls)
    for bad in (-1, True, "1", 1 << 31):  # the kernel reads an id as a C int
        with pytest.raises(ValidationError):
            stats.delete_region(ctl, "vol", bad)
        with pytest.raises(ValidationError):
            stats.area_counters(ctl, "vol", bad)
    for window in ({"first_area": -1}, {"count": 0}, {"first_area": 1 << 64}):
        with pytest.raises(ValidationError):
            stats.area_counters(ctl, "vol", 4, **window)
    assert len(kernel.calls) == before  # refused before anything was sent


def test_a_long_answer_is_asked_for_again_with_more_room(kernel, ctl):
    lines = "".join(f"{i * 8}+8 " + "1 " * 13 + "\n" for i in range(2000))

    def handler(call, hdr, buf):
        hdr.flags |= DMFlag.DATA_OUT
        put_data(hdr, buf, lines.encode() + b"\0")
    kernel.handlers["DM_TARGET_MSG"] = handler
    got = stats.area_counters(ctl, "vol", stats.Region(0, 0, 16000, 8, "-", "-"))
    assert len(got) == 2000
    sizes = [c.data_size for c in kernel.of("DM_TARGET_MSG")]
    assert sizes == sorted(sizes) and len(sizes) > 1


def test_rates_as_libdevmapper_derives_them():
    c = stats.Counters(0, 8, reads=10, reads_merged=2, read_sectors=80, read_time=20_000_000, writes=30,
                       writes_merged=4, write_sectors=240, write_time=60_000_000, in_flight=0,
                       io_time=500_000_000, weighted_io_time=1_000_000_000, read_busy_time=0, write_busy_time=0)
    r = stats.Rates.of(c, 2.0)
    assert (r.reads_per_sec, r.writes_per_sec, r.throughput) == (5.0, 15.0, 20.0)
    assert (r.read_sectors_per_sec, r.write_sectors_per_sec) == (40.0, 120.0)
    assert (r.reads_merged_per_sec, r.writes_merged_per_sec) == (1.0, 2.0)
    assert r.utilization == 0.25 and r.average_queue_size == 0.5
    assert r.average_request_size == 8.0
    assert (r.await_time, r.read_await, r.write_await) == (2_000_000.0, 2_000_000.0, 2_000_000.0)
    assert r.service_time == pytest.approx(0.25 * 1e9 / 20)
    idle = stats.Rates.of(c._replace(reads=0, writes=0, io_time=0), 1.0)
    assert (idle.await_time, idle.read_await, idle.service_time, idle.average_request_size) == (0, 0, 0, 0)
    for bad in (0, -1.0, "5", None, True):
        with pytest.raises(ValidationError):
            stats.Rates.of(c, bad)


# -- groups, as dmstats tags them in the first region's aux data ---------------------

LISTED = ("0: 0+16384 16384 dmstats -\n1: 0+16384 4096 dmstats own\n"
          "2: 0+16384 16384 dmstats - histogram:1,2\n3: 0+100 100 other DMS_GROUP=al:3-4#-\n"
          "4: 100+100 100 other -\n5: 0+16384 16384 dmstats - histogram:3\n")


def test_groups_are_read_from_their_leaders_tag(kernel, ctl):
    answering(kernel, {"@stats_list": LISTED})
    assert stats.list_groups(ctl, "vol") == [stats.Group(3, (3, 4), "al", "-")]
    assert stats.parse_group_tag(1, "DMS_GROUP=:1,5-7#mine") == stats.Group(1, (1, 5, 6, 7), "", "mine")
    assert stats.parse_group_tag(0, "plain") is None
    with pytest.raises(ValidationError, match="led by region 1"):
        stats.parse_group_tag(0, "DMS_GROUP=:1-2#-")
    assert stats.format_ranges([7, 0, 1, 2, 5]) == "0-2,5,7"


def test_a_group_is_made_by_tagging_its_leader(kernel, ctl):
    answering(kernel, {"@stats_list": LISTED, "@stats_set_aux": None})
    assert stats.create_group(ctl, "vol", [1, 0], alias="both") == 0
    assert sent(kernel)[-1] == "@stats_set_aux 0 DMS_GROUP=both:0-1#-"
    assert stats.create_group(ctl, "vol", [1]) == 1
    assert sent(kernel)[-1] == "@stats_set_aux 1 DMS_GROUP=:1#own"


@pytest.mark.parametrize("regions, alias, error", [
    ([0, 9], "", RegionNotFoundError), ([0, 4], "", ValidationError),  # 4 is in group 3
    ([2, 5], "", ValidationError),  # histograms differ
    ([], "", ValidationError), ([0], "a:b", ValidationError), ([0], "a b", ValidationError),
])
def test_a_group_that_cannot_be_is_refused_with_nothing_sent(kernel, ctl, regions, alias, error):
    answering(kernel, {"@stats_list": LISTED, "@stats_set_aux": None})
    with pytest.raises(error):
        stats.create_group(ctl, "vol", regions, alias=alias)
    assert not [m for m in sent(kernel) if m.startswith("@stats_set_aux")]


def test_a_group_undone_or_deleted_with_its_regions(kernel, ctl):
    answering(kernel, {"@stats_list": LISTED, "@stats_set_aux": None, "@stats_delete": None})
    stats.delete_group(ctl, "vol", 3)
    assert sent(kernel)[-1] == "@stats_set_aux 3 -"
    stats.delete_group(ctl, "vol", 3, regions=True)
    assert sent(kernel)[-2:] == ["@stats_delete 4", "@stats_delete 3"]
    with pytest.raises(RegionNotFoundError, match="no statistics group 1"):
        stats.delete_group(ctl, "vol", 1)
