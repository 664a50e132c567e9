# SPDX-License-Identifier: LGPL-2.1-or-later
"""Typed targets (pydevmapper.targets) without a kernel: every target's
parameters round-trip through their text, real status and table lines
captured from the guest kernels parse, every validation rule refuses
before anything is sent, and keys never show."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydevmapper import targets as t
from pydevmapper.errors import ValidationError
from pydevmapper.tables import Table, Target, TargetStatus
from pydevmapper.types import DevNo

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "targets"

# -- strategies ------------------------------------------------------------------

devs = st.builds(DevNo, st.integers(0, 4095), st.integers(0, 2**20 - 1))
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
small = st.integers(0, 1 << 20)
flag = st.booleans()
word = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=10)
hexes = st.binary(min_size=1, max_size=64).map(bytes.hex)


def valid(cls, *args, **kwargs):
    """Instances of cls from the strategies, skipping combinations the
    class refuses (rules across fields)."""
    def make(*a, **k):
        try:
            return cls(*a, **k)
        except t.ParameterError:
            return None
    return st.builds(make, *args, **kwargs).filter(lambda x: x is not None)


def opt(strategy):
    return st.none() | strategy




def draw_raid(draw):
    """A valid raid table: a type, enough devices, the options its level takes."""
    raid_type = draw(st.sampled_from(sorted(t.raid.RAID_TYPES)))
    level = t.raid._level(raid_type)
    minimum = {"raid6": 4, "raid10": 2}.get(level, t.raid.RAID_TYPES[raid_type] + 1)
    n = draw(st.integers(minimum, 8))
    devices = tuple(draw(st.tuples(opt(devs), devs)) for _ in range(n))
    chunk = 0 if level == "raid1" else draw(st.sampled_from([8, 64, 1024]))
    kw = {}
    allowed = t.raid._ALLOWED[level]
    values = {
        "daemon_sleep": small, "min_recovery_rate": st.integers(0, 100),
        "max_recovery_rate": st.integers(100, 1000), "max_write_behind": st.integers(0, 32767),
        "stripe_cache": small, "region_size": st.sampled_from([0, 1024, 8192]),
        "raid10_copies": st.integers(2, n), "raid10_format": st.sampled_from(["far", "offset"]),
        "delta_disks": st.sampled_from([-2, -1, 1, 3]), "data_offset": st.sampled_from([0, 32, 2048]),
        "journal_dev": devs,
    }
    for name in sorted(allowed & set(values)):
        if draw(st.booleans()):
            kw[name] = draw(values[name])
    if "journal_dev" in kw and draw(st.booleans()):
        kw["journal_mode"] = draw(st.sampled_from(["writethrough", "writeback"]))
    sync = draw(st.sampled_from([""] + [f for f in ("sync", "nosync") if f in allowed]))
    if sync:
        kw[sync] = True
    elif "rebuild" in allowed and draw(st.booleans()):
        kw["rebuild"] = tuple(draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True)))
    if "write_mostly" in allowed:
        kw["write_mostly"] = tuple(draw(st.lists(st.integers(0, n - 1), max_size=n - 1, unique=True)))
    if kw.get("raid10_format") in ("far", "offset"):
        kw["raid10_use_near_sets"] = draw(st.booleans())
    return t.Raid(raid_type, chunk, devices, **kw)

STRATEGIES = {
    t.Linear: st.builds(t.Linear, devs, u64),
    t.Zero: st.just(t.Zero()),
    t.Error: st.just(t.Error()),
    t.Striped: st.builds(t.Striped, st.integers(1, 2**32 - 1),
                         st.lists(st.tuples(devs, u64), min_size=1, max_size=8).map(tuple)),
    t.Unstriped: st.integers(1, 16).flatmap(lambda n: st.builds(
        t.Unstriped, st.just(n), st.integers(1, 2**20), st.integers(0, n - 1), devs, u64)),
    t.BasicTarget: st.builds(t.BasicTarget, devs, u64),
    t.Flakey: valid(t.Flakey, devs, u64, st.integers(0, 2**31), st.integers(0, 2**31), flag, flag, flag,
                    opt(st.builds(t.CorruptBioByte, st.integers(1, 2**32 - 1), st.sampled_from("rw"),
                                  st.integers(0, 255), u32)),
                    st.integers(0, t.faults.PROBABILITY_BASE), st.integers(0, t.faults.PROBABILITY_BASE)),
    t.Delay: valid(t.Delay, st.builds(t.DelayClass, devs, u64, u32),
                   opt(st.builds(t.DelayClass, devs, u64, u32)), opt(st.builds(t.DelayClass, devs, u64, u32))),
    t.SnapshotOrigin: st.builds(t.SnapshotOrigin, devs),
    t.Snapshot: valid(t.Snapshot, devs, devs, st.sampled_from(["P", "PO", "N"]),
                      st.sampled_from([0, 8, 16, 2048, 2097152]), flag, flag),
    t.SnapshotMerge: valid(t.SnapshotMerge, devs, devs, st.sampled_from(["P", "PO"]),
                           st.sampled_from([0, 8, 4096]), flag, flag),
    t.ThinPool: valid(t.ThinPool, devs, devs, st.integers(1, 16384).map(lambda n: n * 128), u64,
                      flag, flag, flag, flag, flag),
    t.Thin: st.builds(t.Thin, devs, st.integers(0, t.thin.MAX_DEV_ID), opt(devs)),
    t.Cache: valid(t.Cache, devs, devs, devs, st.integers(1, 32768).map(lambda n: n * 64),
                   opt(st.sampled_from(["writeback", "writethrough", "passthrough"])), flag, flag,
                   st.sampled_from(["smq", "mq", "cleaner", "default"]),
                   st.lists(st.tuples(st.just("migration_threshold"), small.map(str)), max_size=1).map(tuple)),
    t.Era: st.builds(t.Era, devs, devs, st.integers(1, 2**28).map(lambda n: n * 8)),
    t.Writecache: valid(t.Writecache, st.sampled_from("ps"), devs, devs, st.sampled_from([512, 1024, 2048, 4096]),
                        opt(u64), opt(st.integers(0, 100)), opt(st.integers(0, 100)), opt(u32), opt(u32),
                        opt(st.integers(0, 3600000)), opt(st.integers(0, 86400000)), flag, opt(flag), flag,
                        opt(st.integers(0, 60000))),
    t.Raid: st.composite(lambda draw: draw_raid(draw))(),
    t.Mirror: valid(t.Mirror, st.integers(1, 20).map(lambda n: 1 << n),
                    st.lists(st.tuples(devs, u64), min_size=2, max_size=9).map(tuple), opt(devs),
                    opt(st.sampled_from(["sync", "nosync"])), flag, flag),
    t.Crypt: valid(t.Crypt, st.sampled_from(["aes-xts-plain64", "aes-cbc-essiv:sha256", "capi:xts(aes)-plain64",
                                             "aes:2-cbc-lmk", "serpent-ecb", "aes"]),
                   st.one_of(st.binary(min_size=1, max_size=64), st.none(),
                             st.builds(t.KeyringKey, st.integers(1, 64), st.sampled_from(t.crypt.KEY_TYPES), word)),
                   st.integers(0, 2**40).map(lambda n: n * 8), devs, u64, flag, flag, flag, flag, flag, flag,
                   opt(st.tuples(st.integers(1, 480), st.sampled_from(["aead", "none"]))),
                   st.sampled_from([512, 1024, 4096]), flag, opt(st.integers(1, 64))),
    t.Verity: valid(t.Verity, st.integers(0, 1), devs, devs, st.sampled_from([512, 4096]),
                    st.sampled_from([512, 4096]), u32, u32, st.sampled_from(["sha256", "sha1"]),
                    st.binary(min_size=20, max_size=64).map(bytes.hex), opt(hexes),
                    opt(st.sampled_from(["ignore_corruption", "restart_on_corruption", "panic_on_corruption"])),
                    opt(st.sampled_from(["restart_on_error", "panic_on_error"])), flag, flag, flag,
                    opt(st.builds(t.VerityFec, devs, u32, u32, st.integers(2, 24))), opt(word)),
    t.Integrity: valid(t.Integrity, devs, u64, opt(st.integers(1, 480)), st.sampled_from("JBDRI"), opt(devs),
                       st.sampled_from([512, 4096]), flag, flag, flag, flag, opt(u32), opt(u32), opt(u32),
                       opt(st.integers(0, 100)), opt(u32), opt(u32), opt(u32), flag, flag, flag,
                       opt(st.builds(t.Algorithm, st.sampled_from(["crc32c", "sha256", "hmac(sha256)"]),
                                     opt(st.binary(min_size=1, max_size=32).map(t.Secret).map(
                                         lambda s: t.Secret(s.reveal().hex()))))),
                       opt(st.builds(t.Algorithm, st.just("ctr(aes)"))),
                       opt(st.builds(t.Algorithm, st.just("sha256")))),
    t.Multipath: valid(t.Multipath,
                       st.lists(st.tuples(st.lists(st.tuples(devs, st.just(())), min_size=1, max_size=4).map(tuple),
                                          st.sampled_from(["round-robin", "queue-length", "service-time"])),
                                min_size=1, max_size=4).map(tuple),
                       st.just(1), flag, opt(st.integers(1, 50)), opt(st.integers(0, 60000)), flag,
                       opt(st.sampled_from(["bio", "mq"])), opt(st.sampled_from(["alua", "emc"]))),
    t.Switch: st.builds(t.Switch, st.integers(1, 2**32 - 1),
                        st.lists(st.tuples(devs, u64), min_size=1, max_size=8).map(tuple)),
    t.LogWrites: valid(t.LogWrites, devs, devs),
    t.Vdo: valid(t.Vdo, st.sampled_from(["/dev/loop0", "7:3"]), u64, st.sampled_from([512, 4096]), u32, u32,
                 st.lists(st.tuples(st.sampled_from(["deduplication", "compression"]), st.sampled_from(["on", "off"])),
                          max_size=2).map(tuple)),
}


def test_every_target_has_a_strategy_and_a_status_class():
    assert {t.params_class(name) for name in t.known_types()} == set(STRATEGIES)
    for name in t.known_types():
        assert issubclass(t.params_class(name).Status, t.Status), name


@pytest.mark.parametrize("cls", sorted(STRATEGIES, key=lambda c: c.TYPE), ids=lambda c: c.TYPE)
def test_parameters_round_trip(cls):
    @settings(max_examples=60, deadline=None)
    @given(STRATEGIES[cls])
    def check(params):
        text = params.format()
        assert cls.parse(text) == params
        assert t.parse(Target(0, 8, cls.TYPE, text)) == params
        json.dumps(params.to_dict())  # JSON-ready
    check()


@pytest.mark.parametrize("cls", sorted(STRATEGIES, key=lambda c: c.TYPE), ids=lambda c: c.TYPE)
def test_no_field_default_is_shadowed(cls):
    # A message builder named like a field would become the field's default.
    for field in dataclasses.fields(cls):
        assert not callable(field.default), field.name


# -- what the guest kernels printed ----------------------------------------------

def _fixture_lines():
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            yield pytest.param(json.loads(line), id=f"{path.stem}:{n}")


def test_fixtures_cover_the_four_kernels_and_every_target_with_a_root_test():
    kernels = {p.stem for p in FIXTURES.glob("*.jsonl")}
    for series in ("5.10.", "6.1.", "6.12.", "7."):
        assert any(k.startswith(series) for k in kernels), series
    seen = {json.loads(line)["type"] for p in FIXTURES.glob("*.jsonl") for line in p.read_text().splitlines()}
    assert set(t.known_types()) - seen == {"vdo"}  # vdo needs a formatted volume (vdoformat)


@pytest.mark.parametrize("record", list(_fixture_lines()))
def test_kernel_lines_parse(record):
    kind, ttype, text = record["kind"], record["type"], record["text"]
    if kind == "table":
        params = t.parse(Target(0, 8, ttype, text))
        assert type(params) is t.params_class(ttype)
        assert params.format() == text
    else:
        parsed = t.parse_status(TargetStatus(0, 8, ttype, text))
        assert isinstance(parsed, t.params_class(ttype).Status)
        assert getattr(parsed, "extra", ()) == ()  # every field known
        # Words a newer kernel appends are kept, never dropped or fatal.
        longer = t.parse_status(TargetStatus(0, 8, ttype, f"{text} future_word 42"))
        assert longer.extra == ("future_word", "42")


# -- documented and special forms ---------------------------------------------------

@pytest.mark.parametrize("ttype, text, expect", [
    ("thin-pool", "Fail", {"failed": True, "transaction_id": None}),
    ("thin-pool", "3 20/4096 1000/1000 - out_of_data_space discard_passdown queue_if_no_space - 1024 ",
     {"mode": "out_of_data_space", "used_data_blocks": 1000}),
    ("thin-pool", "3 20/4096 10/1000 36 ro ignore_discard error_if_no_space needs_check 1024 ",
     {"held_metadata_root": 36, "mode": "ro", "discards": "ignore_discard", "needs_check": True}),
    ("thin-pool", "0 20/4096 10/1000 - rw discard_passdown queue_if_no_space -",  # before dm-thin 1.20
     {"metadata_low_watermark": None}),
    ("thin-pool", "Error", {"error": True, "failed": False, "mode": None}),
    ("thin", "Error", {"error": True}),
    ("cache", "Error", {"error": True, "policy": None}),
    ("era", "Error", {"error": True, "current_era": None}),
    ("thin", "Fail", {"failed": True}),
    ("thin", "-", {"mapped_sectors": None}),
    ("thin", "0 -", {"mapped_sectors": 0, "highest_mapped_sector": None}),
    ("snapshot", "Invalid", {"state": "Invalid", "valid": False}),
    ("snapshot", "Merge failed", {"state": "Merge failed"}),
    ("snapshot", "Unknown", {"state": "Unknown"}),
    ("snapshot", "16/2048 16", {"allocated_sectors": 16, "total_sectors": 2048, "metadata_sectors": 16}),
    ("raid", "raid1 2 AA 2048/2048 idle 0 0 -", {"in_sync": True, "journal": "-"}),
    ("raid", "raid5_ls 3 aDA 100/2048 recover 0 0 -", {"in_sync": False, "health": "aDA"}),
    ("raid", "raid6_zr 4 AAAA 2048/2048 check 12 2048 a", {"mismatch_count": 12, "journal": "a"}),
    ("raid", "raid1 2 AA 2048/2048", {"sync_action": None, "data_offset": None}),  # dm-raid < 1.5
    ("raid", "raid10 4 A-AA 2048/2048 idle 0 0 -", {"health": "A-AA"}),
    ("mirror", "2 253:0 253:1 1024/1024 1 AA 1 core", {"in_sync": True, "log": ("core",)}),
    ("mirror", "2 253:0 253:1 10/1024 1 AD 3 disk 253:2 A", {"log": ("disk", "253:2", "A"), "in_sync": False}),
    ("cache", "Fail", {"failed": True}),
    ("cache", "8 72/4096 512 0/8192 0 0 0 0 0 0 0 1 writeback 2 migration_threshold 2048 smq 0 rw - ",
     {"io_mode": "writeback", "migration_threshold": 2048, "policy": "smq", "needs_check": False}),
    ("cache", ("8 72/4096 512 10/8192 5 6 7 8 1 2 3 2 metadata2 writethrough 2 migration_threshold 2048 mq 10 "
              "random_threshold 0 sequential_threshold 0 discard_promote_adjustment 0 read_promote_adjustment 0 "
              "write_promote_adjustment 0 ro needs_check "),
     {"read_hits": 5, "dirty": 3, "io_mode": "writethrough", "metadata_mode": "ro", "needs_check": True}),
    ("era", "8 100/4096 3 -", {"current_era": 3, "held_metadata_root": None}),
    ("era", "8 100/4096 3 7", {"held_metadata_root": 7}),
    ("writecache", "0 1024 1000 0", {"reads": None, "total_blocks": 1024}),  # before writecache 1.6
    ("writecache", "1 1024 1000 24 1 2 3 4 5 6 7 8 9 10", {"error": True, "discards": 10}),
    ("verity", "C", {"corrupted": True}),
    ("integrity", "3 1000 -", {"mismatches": 3, "recalculate_sector": None}),
    ("integrity", "0 1000 512", {"recalculate_sector": 512}),
    ("multipath", "2 0 0 0 1 1 A 0 2 0 8:16 A 0 8:32 A 0 ", {"queueing": False, "next_group": 1}),
    ("multipath", "2 1 3 0 2 2 E 0 1 1 8:16 F 2 1 A 0 1 2 8:32 A 0 4096 1 ",
     {"queueing": True, "pg_init_count": 3, "failed_paths": (DevNo(8, 16),)}),
    ("log-writes", "5 100 logging_disabled", {"logging_disabled": True}),
    ("delay", "1 2 3", {"reads": 1, "writes": 2, "flushes": 3}),
    ("striped", "2 7:0 7:1 1 AD", {"failed": (DevNo(7, 1),)}),
    ("vdo", "/dev/dm-1 normal - online online 1234 5678", {"compressing": True, "used_blocks": 1234}),
    ("vdo", "/dev/dm-1 read-only recovering error offline 0 5678", {"recovering": True, "mode": "read-only"}),
    ("basic_target", "1 2 3 4", {"reads": 1, "writes": 2, "read_sectors": 3, "write_sectors": 4}),
    # verity before 7.x, then with its FEC field: "-" (7.3 without FEC) or a count
    ("verity", "V", {"state": "V", "fec_corrected": None, "extra": ()}),
    ("verity", "V -", {"state": "V", "fec_corrected": None, "extra": ()}),
    ("verity", "C 3", {"corrupted": True, "fec_corrected": 3, "extra": ()}),
    # lines the guests printed, every field checked where it lands
    ("thin-pool", "5 114/1024 17/1024 36 rw discard_passdown queue_if_no_space - 256 ",
     {"transaction_id": 5, "used_metadata_blocks": 114, "total_metadata_blocks": 1024, "used_data_blocks": 17,
      "total_data_blocks": 1024, "held_metadata_root": 36, "metadata_low_watermark": 256}),
    ("snapshot", "144/2048 16", {"allocated_sectors": 144, "total_sectors": 2048, "metadata_sectors": 16}),
    ("thin", "2048 2047", {"mapped_sectors": 2048, "highest_mapped_sector": 2047}),
    ("writecache", "0 2043 1979 0 1 2 3 4 5 6 7 8 9 10",
     {"total_blocks": 2043, "free_blocks": 1979, "writeback_blocks": 0, "reads": 1, "read_hits": 2, "writes": 3,
      "write_hits_uncommitted": 4, "write_hits_committed": 5, "writes_around": 6, "writes_allocate": 7,
      "writes_blocked_on_freelist": 8, "flushes": 9}),
    ("era", "8 79/1024 2 -", {"metadata_block_size": 8, "used_metadata_blocks": 79, "total_metadata_blocks": 1024}),
    ("cache", "8 27/1024 128 3/128 10 20 30 40 50 60 70 1 writethrough 2 migration_threshold 2048 smq 0 rw - ",
     {"used_metadata_blocks": 27, "cache_block_size": 128, "used_cache_blocks": 3, "total_cache_blocks": 128,
      "read_hits": 10, "read_misses": 20, "write_hits": 30, "write_misses": 40, "demotions": 50,
      "promotions": 60, "dirty": 70}),
    ("integrity", "5 32328 -", {"mismatches": 5, "provided_data_sectors": 32328}),
    ("log-writes", "7 22", {"logged_entries": 7, "highest_sector": 22}),
    ("raid", "raid1 2 AA 14336/14336 idle 12 64 -",
     {"sync_current": 14336, "sync_total": 14336, "mismatch_count": 12, "data_offset": 64}),
])
def test_special_status_forms(ttype, text, expect):
    parsed = t.parse_status(TargetStatus(0, 8, ttype, text))
    for name, value in expect.items():
        assert getattr(parsed, name) == value, name


@pytest.mark.parametrize("ttype, text", [
    ("thin-pool", "1 2/3 4/5 - sideways discard_passdown queue_if_no_space - 1"),
    ("thin-pool", "1 2/3"),
    ("raid", "raid1 2 AX 1/2 idle 0 0 -"),
    ("striped", "2 7:0 7:1 1 A"),
    ("verity", "X"),
    ("multipath", "2 0 0 0 1 1 Z 0 1 0 8:16 A 0"),
    ("cache", "8 1/2 3 4/5 0 0 0 0 0 0 0 1 writeback 2 migration_threshold 2048 smq 0 maybe -"),
])
def test_malformed_status_is_a_typed_error(ttype, text):
    with pytest.raises(t.ParameterError) as err:
        t.parse_status(TargetStatus(0, 8, ttype, text))
    assert err.value.target_type == ttype


def test_documentation_tables_parse():
    # from the kernel's Documentation/admin-guide/device-mapper/*.rst
    for ttype, text in [
        ("thin-pool", "253:0 253:1 128 32768 1 skip_block_zeroing"),
        ("thin", "253:2 0"),
        ("mirror", "core 1 1024 2 253:0 0 253:1 0 1 handle_errors"),
        ("raid", "raid4 1 2048 5 - 8:17 - 8:33 - 8:49 - 8:65 - 8:81"),
        ("raid", "raid4 4 2048 sync min_recovery_rate 20 5 8:17 8:18 8:33 8:34 8:49 8:50 8:65 8:66 8:81 8:82"),
        ("cache", "253:0 253:1 253:2 512 1 writeback default 0"),
        ("switch", "3 128 0 8:16 0 8:32 0 8:48 0"),
        ("unstriped", "4 256 0 8:16 0"),
        ("delay", "8:16 0 500"),
        ("flakey", "8:16 0 4 1 1 drop_writes"),
        ("era", "253:0 253:1 128"),
        ("writecache", "s 253:1 253:2 4096 0"),
        ("verity", ("1 8:1 8:2 4096 4096 262144 1 sha256 "
                   "4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076 "
                   "1234000000000000000000000000000000000000000000000000000000000000")),
        ("integrity", "8:16 0 - J 1 internal_hash:crc32c"),
        ("log-writes", "8:16 8:32"),
    ]:
        params = t.parse(Target(0, 8, ttype, text))
        assert type(params) is t.params_class(ttype)
        assert params.format() == text  # each is already in the kernel's own form
    # and the fields land where the documentation puts them
    raid = t.Raid.parse("raid4 4 2048 sync min_recovery_rate 20 5 8:17 8:18 8:33 8:34 8:49 8:50 8:65 8:66 8:81 8:82")
    assert (raid.chunk_size, raid.sync, raid.min_recovery_rate, raid.devices[1]) == (
        2048, True, 20, t.RaidDevice(DevNo(8, 33), DevNo(8, 34)))
    mirror = t.Mirror.parse("core 1 1024 2 253:0 0 253:1 0 1 handle_errors")
    assert (mirror.region_size, mirror.legs[1], mirror.handle_errors) == (1024, (DevNo(253, 1), 0), True)
    pool = t.ThinPool.parse("253:0 253:1 128 32768 1 skip_block_zeroing")
    assert (pool.metadata_device, pool.data_device, pool.data_block_size, pool.low_water_mark) == (
        DevNo(253, 0), DevNo(253, 1), 128, 32768)
    delay = t.Delay.parse("8:16 0 500 8:32 16 100")
    assert (delay.read, delay.write, delay.flush) == ((DevNo(8, 16), 0, 500), (DevNo(8, 32), 16, 100), None)
    verity = t.Verity.parse("1 8:1 8:2 4096 512 262144 1 sha256 ab -")
    assert (verity.data_block_size, verity.hash_block_size, verity.num_data_blocks, verity.hash_start_block,
            verity.salt) == (4096, 512, 262144, 1, None)


def test_unknown_targets_keep_their_text():
    assert Target(0, 8, "dust", "8:16 0 512").parsed() == t.Unknown("dust", "8:16 0 512")
    assert t.Unknown("dust", "8:16 0 512").target(0, 8) == Target(0, 8, "dust", "8:16 0 512")
    st_ = TargetStatus(0, 8, "dust", "bypass verbose").parsed()
    assert st_ == t.UnknownStatus("dust", "bypass verbose")


# -- validation: refused with the field named, before the kernel sees anything -------

A, B, C = DevNo(7, 0), DevNo(7, 1), DevNo(7, 2)

REFUSED = [
    ("data_block_size", lambda: t.ThinPool(A, B, 100, 0)),
    ("data_block_size", lambda: t.ThinPool(A, B, 64, 0)),
    ("data_block_size", lambda: t.ThinPool(A, B, 2097152 + 128, 0)),
    ("features", lambda: t.ThinPool(A, B, 128, 0, True, True, True, True, True)),
    ("data_device", lambda: t.ThinPool(A, A, 128, 0)),
    ("dev_id", lambda: t.Thin(A, 1 << 24)),
    ("dev_id", lambda: t.ThinPool.create_thin(-1)),
    ("chunk_size", lambda: t.Striped(0, [(A, 0)])),
    ("stripes", lambda: t.Striped(8, [])),
    ("length", lambda: t.Striped(8, [(A, 0), (B, 0)]).target(0, 17)),
    ("length", lambda: t.Striped(8, [(A, 0), (B, 0)]).target(0, 20)),
    ("stripe", lambda: t.Unstriped(2, 8, 2, A)),
    ("down_interval", lambda: t.Flakey(A, 0, 0, 0)),
    ("error_writes", lambda: t.Flakey(A, 0, 1, 1, drop_writes=True, error_writes=True)),
    ("corrupt_bio_byte", lambda: t.Flakey(A, 0, 1, 1, drop_writes=True, corrupt_bio_byte=(1, "w", 0, 0))),
    ("corrupt_bio_byte", lambda: t.Flakey(A, 0, 1, 1, corrupt_bio_byte=(0, "r", 0, 0))),
    ("corrupt_bio_byte", lambda: t.Flakey(A, 0, 1, 1, corrupt_bio_byte=(1, "x", 0, 0))),
    ("flush", lambda: t.Delay((A, 0, 1), None, (B, 0, 1))),
    ("chunk_size", lambda: t.Snapshot(A, B, "P", 12)),
    ("chunk_size", lambda: t.Snapshot(A, B, "N", 0)),
    ("store", lambda: t.Snapshot(A, B, "NO", 8)),
    ("cow", lambda: t.Snapshot(A, A, "P", 8)),
    ("discard_passdown_origin", lambda: t.Snapshot(A, B, "P", 8, discard_passdown_origin=True)),
    ("store", lambda: t.SnapshotMerge(A, B, "N", 8)),
    ("block_size", lambda: t.Cache(A, B, C, 100)),
    ("io_mode", lambda: t.Cache(A, B, C, 128, io_mode="writearound")),
    ("policy_args", lambda: t.Cache(A, B, C, 128, policy_args={"sequential_threshold": 1})),
    ("block_size", lambda: t.Era(A, B, 12)),
    ("block_size", lambda: t.Writecache("s", A, B, 8192)),
    ("low_watermark", lambda: t.Writecache("s", A, B, low_watermark=60)),
    ("fua", lambda: t.Writecache("s", A, B, fua=True)),
    ("pause_writeback", lambda: t.Writecache("p", A, B, pause_writeback=10)),
    ("mode", lambda: t.Writecache("x", A, B)),
    ("raid_type", lambda: t.Raid("raid7", 64, [A, B, C])),
    ("devices", lambda: t.Raid("raid6_zr", 64, [A, B, C])),
    ("devices", lambda: t.Raid("raid5_ls", 64, [A])),
    ("chunk_size", lambda: t.Raid("raid5_ls", 48, [A, B, C])),
    ("chunk_size", lambda: t.Raid("raid1", 64, [A, B])),
    ("nosync", lambda: t.Raid("raid1", 0, [A, B], sync=True, nosync=True)),
    ("nosync", lambda: t.Raid("raid6_zr", 64, [A, B, C, DevNo(7, 3)], nosync=True)),
    ("rebuild", lambda: t.Raid("raid1", 0, [A, B], rebuild=(2,))),
    ("stripe_cache", lambda: t.Raid("raid1", 0, [A, B], stripe_cache=256)),
    ("write_mostly", lambda: t.Raid("raid1", 0, [A, B], write_mostly=(0, 1))),
    ("region_size", lambda: t.Raid("raid1", 0, [A, B], region_size=1000)),
    ("raid10_copies", lambda: t.Raid("raid10", 64, [A, B], raid10_copies=3)),
    ("journal_mode", lambda: t.Raid("raid5_ls", 64, [A, B, C], journal_mode="writeback")),
    ("devices", lambda: t.Raid("raid1", 0, [(A, None), (B, C)])),
    ("region_size", lambda: t.Mirror(1000, [(A, 0), (B, 0)])),
    ("legs", lambda: t.Mirror(1024, [(A, 0)])),
    ("keep_log", lambda: t.Mirror(1024, [(A, 0), (B, 0)], keep_log=True)),
    ("cipher", lambda: t.Crypt("aes-cbc", b"k" * 16, 0, A)),
    ("cipher", lambda: t.Crypt("aes-xts-plain65", b"k" * 32, 0, A)),
    ("cipher", lambda: t.Crypt("aes:3-cbc-plain", b"k" * 32, 0, A)),
    ("cipher", lambda: t.Crypt("aes-cbc-essiv", b"k" * 32, 0, A)),
    ("key", lambda: t.Crypt("aes-xts-plain64", "xyz", 0, A)),
    ("key", lambda: t.Crypt("aes-xts-plain64", ":32:nokind:desc", 0, A)),
    ("sector_size", lambda: t.Crypt("aes-xts-plain64", b"k" * 32, 0, A, sector_size=1000)),
    ("iv_offset", lambda: t.Crypt("aes-xts-plain64", b"k" * 32, 3, A, sector_size=4096)),
    ("length", lambda: t.Crypt("aes-xts-plain64", b"k" * 32, 0, A, sector_size=4096).target(0, 12)),
    ("integrity", lambda: t.Crypt("aes-xts-plain64", b"k" * 32, 0, A, integrity=(500, "aead"))),
    ("version", lambda: t.Verity(2, A, B, 4096, 4096, 1, 0, "sha256", "ab")),
    ("data_block_size", lambda: t.Verity(1, A, B, 8192, 4096, 1, 0, "sha256", "ab")),
    ("digest", lambda: t.Verity(1, A, B, 4096, 4096, 1, 0, "sha256", "xyz")),
    ("fec", lambda: t.Verity(1, A, B, 4096, 4096, 1, 0, "sha256", "ab", fec=(C, 10, 0, 30))),
    ("length", lambda: t.Verity(1, A, B, 4096, 4096, 1, 0, "sha256", "ab").target(0, 16)),
    ("mode", lambda: t.Integrity(A, 0, 4, "X")),
    ("tag_size", lambda: t.Integrity(A, 0, None, "J")),
    ("mode", lambda: t.Integrity(A, 0, 4, "B")),
    ("journal_watermark", lambda: t.Integrity(A, 0, 4, "J", journal_watermark=101)),
    ("initial_group", lambda: t.Multipath([[A]], initial_group=2)),
    ("pg_init_retries", lambda: t.Multipath([[A]], pg_init_retries=51)),
    ("groups", lambda: t.Multipath([([(A, ("2",))], "round-robin")])),
    ("group", lambda: t.Multipath.switch_group(0)),
    ("region_size", lambda: t.Switch(0, [(A, 0)])),
    ("mark", lambda: t.LogWrites.mark("two words")),
    ("log_device", lambda: t.LogWrites(A, A)),
    ("logical_block_size", lambda: t.Vdo("/dev/sdb", 100, 1024)),
    ("length", lambda: t.Vdo("/dev/sdb", 100).target(0, 12)),
    ("sync_action", lambda: t.Raid.sync_action("reshape")),
    ("max_write_behind", lambda: t.Raid("raid1", 0, [A, B], max_write_behind=32768)),
    ("delta_disks", lambda: t.Raid("raid1", 0, [A, B], delta_disks=252)),
    ("policy_args", lambda: t.Cache(A, B, C, 128, policy="mq", policy_args={"random_threshold": "x"})),
    ("policy_args", lambda: t.Cache(A, B, C, 128, policy="mq", policy_args={"foo": "1"})),
    ("hw_handler", lambda: t.Multipath([[A]], queue_mode="bio", hw_handler="alua")),
    ("allow_discards_keyed", lambda: t.Integrity(A, 0, 4, "J", allow_discards_keyed=True, internal_hash="crc32c")),
    ("meta_device", lambda: t.Integrity(A, 0, 4, "I", meta_device=B, internal_hash="crc32c")),
    ("internal_hash", lambda: t.Integrity(A, 0, 4, "I")),
    ("offset", lambda: t.Linear(A, "8")),
    ("drop_writes", lambda: t.Flakey(A, 0, 1, 1, drop_writes=1)),
    ("device", lambda: t.Linear("/nonexistent/device", 0)),
    ("device", lambda: t.Linear("7:x", 0)),
    ("device", lambda: t.Linear(object(), 0)),
]


@pytest.mark.parametrize("field, build", REFUSED, ids=[f"{i}-{f}" for i, (f, _) in enumerate(REFUSED)])
def test_validation_names_the_field(field, build):
    with pytest.raises(t.ParameterError) as err:
        build()
    assert err.value.field == field
    assert isinstance(err.value, ValidationError)


def test_refused_parameters_send_nothing(kernel, ctl):
    with pytest.raises(t.ParameterError):
        ctl.load("vol", Table.single(100, t.Striped(8, [(A, 0), (B, 0)])))
    with pytest.raises(t.ParameterError):
        ctl.create_device("vol", Table.single(128, t.ThinPool(A, B, 100, 0)))
    with pytest.raises(t.ParameterError):
        ctl.message("vol", 0, t.ThinPool.create_thin(1 << 24))
    assert kernel.calls == []


def test_a_regular_file_is_not_a_device(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"")
    with pytest.raises(t.ParameterError, match="not a block device"):
        t.Linear(str(path))


def test_typed_tables_are_as_short_as_text():
    assert Table.single(2048, t.Linear(A, 0)) == Table.single(2048, "linear", "7:0 0")
    assert t.Linear(A).target(2048, 8) == Target(2048, 8, "linear", "7:0 0")
    assert t.Linear(B, 8) == t.Linear("7:1", 8) == t.Linear((7, 1), 8)


# -- keys ---------------------------------------------------------------------------

KEY = bytes(range(32))
KEY_HEX = KEY.hex()


def test_keys_never_show():
    crypt = t.Crypt("aes-xts-plain64", KEY, 0, A)
    target = crypt.target(0, 8)
    shown = [repr(crypt), str(crypt), repr(target), repr(Table([target])), repr(crypt.to_dict()),
             repr(t.Crypt.key_set(KEY)), str(t.Crypt.key_set(KEY)),
             repr(t.Integrity(A, 0, 32, "J", internal_hash=("hmac(sha256)", KEY)))]
    for text in shown:
        assert KEY_HEX not in text and KEY_HEX[:16] not in text, text
    assert KEY_HEX in crypt.format()  # what the kernel is sent
    assert t.Crypt.key_set(KEY).text() == f"key set {KEY_HEX}"


def test_kernel_forms_the_review_found():
    # crypt IV options may hold '-' (split as dm-crypt splits them)
    for cipher in ("aes-cbc-essiv:sha3-256", "capi:cbc(aes)-essiv:sha3-256", "capi:ecb(aes)"):
        assert t.Crypt(cipher, KEY, 0, A).cipher == cipher
    # historical-service-time keeps its group arguments; mq/rq print as nothing
    text = "0 0 1 1 historical-service-time 2 972 0 2 1 8:16 0 8:32 0"
    mp = t.Multipath.parse(text)
    assert mp.groups[0].selector_args == ("972", "0") and mp.format() == text
    assert t.Multipath([[A]], queue_mode="mq") == t.Multipath([[A]])
    # integrity: allow_discards_keyed (6.12.115+), and internal_hash written as the kernel writes it
    keyed = t.Integrity(A, 0, 32, "J", allow_discards_keyed=True, internal_hash=f"hmac(sha256):{KEY_HEX}")
    assert keyed.internal_hash == t.Algorithm("hmac(sha256)", t.Secret(KEY_HEX))
    assert t.Integrity.parse(keyed.format()) == keyed
    with pytest.raises(t.ParameterError, match="Fail"):
        t.Thin.parse("Fail")


def test_bad_keys_are_not_quoted_in_errors():
    with pytest.raises(t.ParameterError) as err:
        t.Crypt("aes-xts-plain64", "0123456789abcdefg", 0, A)
    assert "0123456789" not in str(err.value)
    with pytest.raises(ValidationError) as err2:
        Table([Target(0, 8, "crypt", f"aes-xts-plain64 {KEY_HEX}\n 0 7:0 0")])
    assert KEY_HEX not in str(err2.value)
    # misplaced words of a keyed table are not quoted either
    for text in (f"7:0 0 32 J 1 journal_sectors:100 internal_hash:hmac(sha256):{KEY_HEX}",
                 f"7:0 0 32 J internal_hash:hmac(sha256):{KEY_HEX}",
                 f"aes-xts-plain64 0 {KEY_HEX} 7:0 0",
                 f"aes-xts-plain64 {KEY_HEX} 0 7:0 0 extra {KEY_HEX}"):
        ttype = "integrity" if text.startswith("7:0") else "crypt"
        with pytest.raises(t.ParameterError) as err3:
            t.parse(Target(0, 8, ttype, text))
        assert KEY_HEX not in str(err3.value) and KEY_HEX[:16] not in str(err3.value), str(err3.value)


def test_key_messages_go_out_as_secure_data(kernel, ctl):
    from pydevmapper._dm import lib

    ctl.message("vol", 0, t.Crypt.key_set(KEY))
    ctl.message("vol", 0, t.ThinPool.create_thin(1))
    secure, plain = kernel.of("DM_TARGET_MSG")
    assert secure.flags & lib.DM_SECURE_DATA_FLAG and KEY_HEX.encode() in secure.payload
    assert not plain.flags & lib.DM_SECURE_DATA_FLAG
    with pytest.raises(ValidationError) as err:
        ctl.message("vol", 0, t.Message("key", "set", t.Secret(KEY_HEX + "\n")))
    assert KEY_HEX not in str(err.value)


def test_vdo_stats_answer_parses():
    text = "{ version : 36, dataBlocksUsed : 120, mode : normal, index : { entriesIndexed : 5, }, }"
    assert t.vdo.parse_stats(text) == {"version": 36, "dataBlocksUsed": 120, "mode": "normal",
                                       "index": {"entriesIndexed": 5}}


def test_a_key_message_written_as_text_is_secure_data_too(kernel, ctl):
    """dm-crypt's ``key set <key>`` sent as a plain string: the kernel is
    told to wipe its copy, and a refused one is not quoted."""
    from pydevmapper._dm import lib

    ctl.message("vol", 0, f"key set {KEY_HEX}")
    ctl.message("vol", 0, f" KEY Set {KEY_HEX}")  # dm-crypt takes the words in any case
    ctl.message("vol", 0, "@stats_list")
    keyed, upper, plain = kernel.of("DM_TARGET_MSG")
    assert keyed.flags & lib.DM_SECURE_DATA_FLAG and upper.flags & lib.DM_SECURE_DATA_FLAG
    assert not plain.flags & lib.DM_SECURE_DATA_FLAG
    with pytest.raises(ValidationError) as err:
        ctl.message("vol", 0, f"key set {KEY_HEX}\n")
    assert KEY_HEX not in str(err.value)
