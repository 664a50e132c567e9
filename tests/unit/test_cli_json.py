# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup --json: the formatter's pure functions and the documented schema."""

from __future__ import annotations

import json

from pydevmapper.cli import jsonout
from pydevmapper.flags import DMFlag
from pydevmapper.types import DeviceInfo, ListedDevice, TargetVersion


def _info(**kw):
    base = dict(name="vol", uuid="", major=253, minor=3, open_count=1, event_nr=7,
                target_count=2, flags=DMFlag(0))
    base.update(kw)
    return DeviceInfo(**base)


def _load(text):
    assert text.endswith("\n") and text.count("\n{") == 0  # one document, one trailing newline
    return json.loads(text)


def test_version():
    assert _load(jsonout.version("1.02.185 x", "4.47.0")) == {"library": "1.02.185 x",
                                                            "driver": "4.47.0"}
    assert _load(jsonout.version("lib", None)) == {"library": "lib", "driver": None}


def test_targets():
    doc = _load(jsonout.targets([TargetVersion("zero", (1, 2, 0)),
                                 TargetVersion("linear", (1, 4, 0))]))
    assert doc == {"targets": [{"name": "zero", "version": [1, 2, 0]},
                               {"name": "linear", "version": [1, 4, 0]}]}


def test_ls_keeps_unknown_fields_null():
    doc = _load(jsonout.ls([ListedDevice("a", 253, 0, 4, "U-1"),
                            ListedDevice("b", 253, 1, None, None)]))
    assert doc == {"devices": [
        {"name": "a", "major": 253, "minor": 0, "uuid": "U-1", "event_nr": 4},
        {"name": "b", "major": 253, "minor": 1, "uuid": None, "event_nr": None}]}
    assert _load(jsonout.ls([])) == {"devices": []}


def test_info_fields_and_types():
    dev = _info(uuid="U-2", flags=DMFlag.SUSPEND | DMFlag.READONLY)
    row = jsonout.info(dev, 256)
    assert list(row) == ["name", "uuid", "major", "minor", "open_count", "event_nr",
                         "target_count", "read_ahead", "suspended", "read_only",
                         "live_table", "inactive_table", "deferred_remove"]
    assert row["read_ahead"] == 256 and row["uuid"] == "U-2"
    assert row["suspended"] is dev.suspended and row["read_only"] is dev.read_only
    assert all(isinstance(row[k], bool) for k in ("suspended", "read_only", "live_table",
                                                  "inactive_table", "deferred_remove"))
    assert jsonout.info(dev, None)["read_ahead"] is None


def test_deps():
    from pydevmapper.types import DevNo

    row = jsonout.deps(_info(), [DevNo(7, 0), DevNo(8, 16)])
    assert row == {"name": "vol", "uuid": "", "major": 253, "minor": 3,
                   "deps": [{"major": 7, "minor": 0}, {"major": 8, "minor": 16}]}


def test_table_hides_keys_unless_showkeys():
    lines = [(0, 8, "crypt", "aes-xts-plain64 abcd 0 7:0 0"), (8, 8, "zero", "")]
    row = jsonout.targets_of(_info(), lines, "table")
    crypt = {"cipher": "aes-xts-plain64", "key": "<secret>", "iv_offset": 0, "device": "7:0", "offset": 0,
             "allow_discards": False, "same_cpu_crypt": False, "high_priority": False,
             "submit_from_crypt_cpus": False, "no_read_workqueue": False, "no_write_workqueue": False,
             "integrity": None, "sector_size": 512, "iv_large_sectors": False, "integrity_key_size": None}
    assert row["targets"] == [
        {"start": 0, "length": 8, "type": "crypt", "params": "aes-xts-plain64 0000 0 7:0 0", "parsed": crypt},
        {"start": 8, "length": 8, "type": "zero", "params": "", "parsed": {}}]
    shown = jsonout.targets_of(_info(), lines, "table", showkeys=True)
    assert shown["targets"][0]["params"] == "aes-xts-plain64 abcd 0 7:0 0"
    assert shown["targets"][0]["parsed"]["key"] == "abcd"
    # status lines are never touched
    status = jsonout.targets_of(_info(), lines, "status")
    assert status["targets"][0]["params"] == "aes-xts-plain64 abcd 0 7:0 0"


def test_parsed_status_unknown_targets_and_parse_errors():
    lines = [(0, 8, "thin-pool", "1 11/4096 3/160 - rw discard_passdown queue_if_no_space - 1024 "),
             (8, 8, "dust", "bypass"), (16, 8, "raid", "raid1 2 AX 1/2")]
    row = _load(jsonout.devices([jsonout.targets_of(_info(), lines, "status")]))["devices"][0]
    pool, dust, raid = row["targets"]
    assert pool["parsed"]["used_data_blocks"] == 3 and pool["parsed"]["held_metadata_root"] is None
    assert pool["parsed"]["needs_check"] is False and pool["parsed"]["extra"] == []
    assert dust["parsed"] is None and "parse_error" not in dust
    assert raid["parsed"] is None and "health" in raid["parse_error"]


def test_devices_wraps_rows():
    assert _load(jsonout.devices([{"name": "x"}])) == {"devices": [{"name": "x"}]}
    assert _load(jsonout.devices([])) == {"devices": []}


def test_non_ascii_names_round_trip():
    row = jsonout.info(_info(name="vol-é"), None)
    assert _load(jsonout.devices([row]))["devices"][0]["name"] == "vol-é"
