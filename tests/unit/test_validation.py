# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every input rule is enforced before anything reaches the kernel."""

from __future__ import annotations

import os

import pytest

from pydevmapper import validate
from pydevmapper.errors import ValidationError
from pydevmapper.tables import Table, TableSyntaxError, Target, as_table, parse_targets
from pydevmapper.types import DevNo, Uuid, address, check_id


def test_validation_error_is_a_value_error():
    assert issubclass(ValidationError, ValueError)


# -- device names -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "vol-1", "x" * 127, "é" * 63 + "x", "with space", "a.b"])
def test_device_name_accepted(name):
    assert validate.device_name(name) == name.encode()


@pytest.mark.parametrize(
    "name, word",
    [
        ("x" * 128, "bytes"),
        ("é" * 64, "bytes"),           # 64 characters, 128 bytes
        ("€" * 43, "bytes"),           # 43 characters, 129 bytes
        ("", "empty"),
        ("a/b", "'/'"),
        ("/", "'/'"),
        ("a\0b", "NUL"),
        (".", "reserved"),
        ("..", "reserved"),
        ("control", "reserved"),
        ("\udcff", "UTF-8"),           # lone surrogate: cannot be encoded
    ],
)
def test_device_name_rejected(name, word):
    with pytest.raises(ValidationError, match=word):
        validate.device_name(name)


def test_device_name_exactly_127_bytes_multibyte():
    name = "é" * 63 + "x"  # 127 bytes
    assert len(name.encode()) == 127
    validate.device_name(name)
    with pytest.raises(ValidationError, match="128 bytes"):
        validate.device_name(name + "x")


@pytest.mark.parametrize("value", [None, b"vol", 5, ["vol"]])
def test_device_name_not_str(value):
    with pytest.raises(ValidationError, match="str"):
        validate.device_name(value)


# -- uuids --------------------------------------------------------------------------


@pytest.mark.parametrize("uuid", ["LVM-abc", "u" * 128, "é" * 64, "a/b", "control"])
def test_uuid_accepted(uuid):
    assert validate.device_uuid(uuid) == uuid.encode()


@pytest.mark.parametrize(
    "uuid, word",
    [("u" * 129, "bytes"), ("é" * 64 + "x", "bytes"), ("", "empty"), ("a\0b", "NUL")],
)
def test_uuid_rejected(uuid, word):
    with pytest.raises(ValidationError, match=word):
        validate.device_uuid(uuid)


@pytest.mark.parametrize("value", [None, b"u", 1])
def test_uuid_not_str(value):
    with pytest.raises(ValidationError, match="str"):
        validate.device_uuid(value)


# -- device addresses ---------------------------------------------------------------


def test_check_id_accepts_each_address_kind():
    assert check_id("vol") == "vol"
    assert check_id(Uuid("LVM-x")) == Uuid("LVM-x")
    assert check_id(DevNo(253, 0)) == DevNo(253, 0)


@pytest.mark.parametrize(
    "device, word",
    [
        (DevNo(-1, 0), "device number"),
        (DevNo(253, True), "device number"),
        (DevNo(253, 1.0), "device number"),
        (DevNo(4096, 0), "device number"),  # the kernel's major has 12 bits
        (DevNo(253, 1 << 20), "device number"),  # and its minor 20
        ((253, -1), "device number"),
        ([253, 0], "address"),
        (Uuid("u" * 129), "bytes"),
        ("a/b", "'/'"),
        (3, "address"),
        (None, "address"),
        (b"vol", "address"),
    ],
)
def test_check_id_rejects(device, word):
    for _ in range(2):  # a refused address is refused again (never cached as good)
        with pytest.raises(ValidationError, match=word):
            check_id(device)


def test_address_fields_per_kind():
    # What each kind puts in the request header; the check is cached per
    # type, so the name "x" and Uuid("x") stay apart.
    assert address("x") == (b"x", b"", 0)
    assert address(Uuid("x")) == (b"", b"x", 0)
    assert address("x") == (b"x", b"", 0)
    assert address(DevNo(253, 5)) == (b"", b"", os.makedev(253, 5))
    assert address((7, 300)) == (b"", b"", os.makedev(7, 300))


# -- sectors ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, (1 << 64) - 1])
def test_sector_count_accepted(value):
    assert validate.sector_count(value, "start") == value


@pytest.mark.parametrize(
    "value, word",
    [(-1, "negative"), (1 << 64, "64 bits"), (True, "int"), (False, "int"), (1.0, "int"),
     ("5", "int"), (None, "int")],
)
def test_sector_count_rejected(value, word):
    with pytest.raises(ValidationError, match=word):
        validate.sector_count(value, "start")


# -- target types and parameters -----------------------------------------------------


@pytest.mark.parametrize("ttype", ["linear", "thin-pool", "a" * 15, "dm_basic_1"])
def test_target_type_accepted(ttype):
    assert validate.target_type(ttype) == ttype.encode()


@pytest.mark.parametrize(
    "ttype, word",
    [
        ("a" * 16, "at most"),
        ("é" * 8, "at most"),     # 8 characters, 16 bytes
        ("", "empty"),
        ("lin ear", "whitespace"),
        ("lin\tear", "whitespace"),
        ("linear\n", "whitespace"),
        ("lin\0ear", "NUL"),
        (7, "str"),
    ],
)
def test_target_type_rejected(ttype, word):
    with pytest.raises(ValidationError, match=word):
        validate.target_type(ttype)


@pytest.mark.parametrize("params", ["", "7:0 0", "a  b\tc", "é"])
def test_parameter_string_accepted(params):
    assert validate.parameter_string(params) == params.encode()


@pytest.mark.parametrize(
    "params, word",
    [("7:0 0\n", "line break"), ("a\nb", "line break"), ("a\rb", "line break"),
     ("a\0b", "NUL"), (None, "str"), (b"7:0 0", "str")],
)
def test_parameter_string_rejected(params, word):
    with pytest.raises(ValidationError, match=word):
        validate.parameter_string(params)


# -- targets and tables -----------------------------------------------------------------


def test_table_accepts_contiguous_targets_and_tuples():
    table = Table([Target(0, 10, "zero"), (10, 5, "error", "")])
    assert len(table) == 2 and table.size == 15
    assert table[1] == Target(10, 5, "error", "")


@pytest.mark.parametrize(
    "targets, word",
    [
        ([], "at least one"),
        ([Target(1, 10, "zero")], "gap"),
        ([Target(0, 10, "zero"), Target(11, 1, "zero")], "gap"),
        ([Target(0, 10, "zero"), Target(9, 1, "zero")], "overlap"),
        ([Target(0, 10, "zero"), Target(0, 10, "zero")], "overlap"),
        ([Target(0, 0, "zero")], "zero length"),
        ([Target(0, 10, "zero"), Target(10, 0, "zero")], "zero length"),
        ([Target(-1, 10, "zero")], "negative"),
        ([Target(0, -10, "zero")], "negative"),
        ([Target(0, True, "zero")], "int"),
        ([Target(False, 1, "zero")], "int"),
        ([Target(0.0, 1, "zero")], "int"),
        ([Target(0, 1.5, "zero")], "int"),
        ([Target(0, 1, "linear", "7:0 0\n")], "line break"),
        ([Target(0, 1, "linear", "7:0\r0")], "line break"),
        ([Target(0, 1, "linear", "7:0\x000")], "NUL"),
        ([Target(0, 1, "a-very-long-type-name")], "at most"),
        ([Target(0, 1, "two words")], "whitespace"),
        ([Target(0, 1, "")], "empty"),
    ],
)
def test_table_rejected(targets, word):
    with pytest.raises(ValidationError, match=word):
        Table(targets)


def test_table_gap_message_names_sectors():
    with pytest.raises(ValidationError, match="starts at sector 12, the previous one ends at 10"):
        Table([Target(0, 10, "zero"), Target(12, 1, "error")])


# -- Table.parse ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, word",
    [
        ("+5 10 zero", "start"),
        ("0 +10 zero", "length"),
        ("0x10 10 zero", "start"),
        ("0 0x10 zero", "length"),
        ("-1 10 zero", "start"),
        ("1_0 10 zero", "start"),
        ("0 1e3 zero", "length"),
        ("0 ١٢ zero", "length"),       # Arabic-Indic digits: isdigit() but not ASCII
        ("0 10", "expected"),
        ("0", "expected"),
        ("zero", "expected"),
        ("", "at least one"),
        ("# only a comment\n\n", "at least one"),
        ("0 10 zero\n20 10 zero", "gap"),
        ("0 10 zero\n5 10 zero", "overlap"),
        ("0 0 zero", "zero length"),
        ("0 10 a-very-long-type-name", "at most"),
    ],
)
def test_table_parse_rejected(text, word):
    with pytest.raises(ValidationError, match=word):
        Table.parse(text)


def test_table_parse_error_names_line_number():
    with pytest.raises(ValidationError, match="line 3"):
        Table.parse("0 10 zero\n# comment\n10 x zero\n")


def test_table_parse_skips_comments_and_blank_lines():
    text = "\n# a comment\n   \n0 10 zero\n  # indented comment\n\n10 5 linear 7:0 0\n\n"
    assert Table.parse(text) == Table([Target(0, 10, "zero"), Target(10, 5, "linear", "7:0 0")])


def test_table_parse_tolerates_surrounding_whitespace_and_crlf():
    assert Table.parse("  0   10   linear   7:0 0  \r\n") == Table.single(10, "linear", "7:0 0")


def test_as_table_accepts_text_table_and_iterable():
    table = Table.single(8, "zero")
    assert as_table(table) is table
    assert as_table("0 8 zero") == table
    assert as_table([Target(0, 8, "zero")]) == table
    with pytest.raises(ValidationError):
        as_table([])


def test_parse_targets_checks_syntax_only_and_names_the_line():
    # A gap is the Table's business (and dmsetup's kernel's); syntax is not.
    assert parse_targets("0 10 zero\n20 5 zero") == [Target(0, 10, "zero"), Target(20, 5, "zero")]
    with pytest.raises(TableSyntaxError) as exc:
        parse_targets("0 10 zero\n\n# c\n10 +5 zero\n")
    assert exc.value.lineno == 4
    assert isinstance(exc.value, ValidationError)


def test_parse_targets_dmsetup_mode_strips_comments():
    text = "0 10 linear 7:0 0 # the loop device\n"
    assert parse_targets(text, dmsetup=True) == [Target(0, 10, "linear", "7:0 0 ")]
    assert Table.parse(text)[0].params == "7:0 0 # the loop device"


@pytest.mark.parametrize(
    "line, target",
    [
        # glibc's sscanf("%llu %llu %s %n"), as dmsetup reads a line
        ("0 +8 zero", Target(0, 8, "zero", "")),
        ("0 -8 zero", Target(0, (1 << 64) - 8, "zero", "")),  # strtoull wraps
        ("0 99999999999999999999 zero", Target(0, (1 << 64) - 1, "zero", "")),  # saturates
        ("10 5x zero", Target(10, 5, "x", "zero")),  # fields may touch
        ("0\t8\vzero  a  b ", Target(0, 8, "zero", "a  b")),
    ],
)
def test_parse_targets_dmsetup_mode_reads_like_sscanf(line, target):
    assert parse_targets(line, dmsetup=True) == [target]


@pytest.mark.parametrize("line", ["0 10", "x 10 zero", "0 + zero", "0x10 10 zero"])
def test_parse_targets_dmsetup_mode_refuses_what_sscanf_refuses(line):
    with pytest.raises(TableSyntaxError):
        parse_targets(line, dmsetup=True)


# -- names and uuids a device is given: no control characters -----------------------

CONTROL_CHARACTERS = [chr(c) for c in [*range(1, 0x20), *range(0x7F, 0xA0)]]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=lambda c: f"{ord(c):#04x}")
def test_a_new_name_or_uuid_with_a_control_character_is_refused_before_the_kernel(ctl, kernel, char):
    sent = list(kernel.commands())
    for call, word in [
        (lambda: ctl.create(f"x{char}y"), "device name"),
        (lambda: ctl.create("x", uuid=f"u{char}"), "uuid"),
        (lambda: ctl.rename("x", f"x{char}y"), "device name"),
        (lambda: ctl.set_uuid("x", f"u{char}"), "uuid"),
    ]:
        with pytest.raises(ValidationError, match=f"{word} .* control character {ord(char):#04x}"):
            call()
    assert kernel.commands() == sent


@pytest.mark.parametrize("name", ["ümlaut", "a\u00a0b", "zero\u200bwidth", "a b"])
def test_printable_and_other_non_control_names_are_accepted(name):
    assert validate.new_device_name(name) == name.encode()


def test_an_existing_device_with_a_control_character_can_still_be_addressed(ctl, kernel):
    """A name another tool gave stays usable: only new names are checked."""
    ctl.info("x\ny")
    assert kernel.of("DM_DEV_STATUS")[-1].name == b"x\ny"


# -- numbers that fill fixed-size fields: a ValidationError, not struct.error ------

@pytest.mark.parametrize("event_nr", [-1, 1 << 32, 1 << 40, True, "1", 1.0])
def test_wait_event_nr_out_of_range_is_refused(ctl, kernel, event_nr):
    sent = list(kernel.commands())
    with pytest.raises(ValidationError, match="event_nr"):
        ctl.wait("x", event_nr=event_nr)
    assert kernel.commands() == sent


@pytest.mark.parametrize("size", [-1, 1 << 32, 1 << 40, 256 * 1024 * 1024 + 1, None, 8.0])
def test_message_reply_size_out_of_range_is_refused(ctl, kernel, size):
    sent = list(kernel.commands())
    with pytest.raises(ValidationError, match="reply_size"):
        ctl.message("x", 0, "hello", reply_size=size)
    assert kernel.commands() == sent
