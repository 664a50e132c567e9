# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydevmapper.mangling against libdm's own expectations
(lvm2's test/shell/name-mangling.sh and libdm-common.c's rules)."""

from __future__ import annotations

import pytest

import pydevmapper as dm
from pydevmapper import mangling

MIXED = "contains mixed mangled and unmangled characters"
TWICE = "seems to be mangled more than once"
BLACK = "should be mangled but it contains blacklisted characters"

# (mode, given) -> what create sends, or the error's words
SENT = {
    ("auto", "a b"): "a\\x20b", ("auto", "a\\x20b"): "a\\x20b",
    ("auto", "a b\\x20c"): MIXED, ("auto", "a\\x5cx20b"): TWICE,
    ("hex", "a b"): "a\\x20b", ("hex", "a\\x20b"): "a\\x5cx20b",
    ("hex", "a b\\x20c"): "a\\x20b\\x5cx20c", ("hex", "a\\x5cx20b"): "a\\x5cx5cx20b",
    # none is the form dmsetup reports as mangled_name: auto without the twice check
    ("none", "a b"): "a\\x20b", ("none", "a\\x5cx20b"): "a\\x5cx20b", ("none", "a b\\x20c"): MIXED,
}
# (mode, the kernel's name) -> as shown
SHOWN = {
    ("none", "a b"): "a b", ("none", "a\\x20b"): "a b", ("none", "a b\\x20c"): "a b c",
    ("none", "a\\x5cx20b"): "a\\x20b",
    ("auto", "a b"): BLACK, ("auto", "a b\\x20c"): BLACK, ("auto", "a\\x20b"): "a b",
    ("auto", "a\\x5cx20b"): TWICE,
    ("hex", "a b"): BLACK, ("hex", "a\\x20b"): "a b", ("hex", "a\\x5cx20b"): "a\\x20b",
}


@pytest.mark.parametrize(("mode", "given"), list(SENT))
def test_mangle(mode, given):
    expected = SENT[mode, given]
    if expected in (MIXED, TWICE):
        with pytest.raises(dm.ValidationError, match=expected):
            mangling.mangle(given, mode)
    else:
        assert mangling.mangle(given, mode) == expected


@pytest.mark.parametrize(("mode", "kernel"), list(SHOWN))
def test_unmangle(mode, kernel):
    expected = SHOWN[mode, kernel]
    if expected in (BLACK, TWICE):
        with pytest.raises(dm.ValidationError, match=expected):
            mangling.unmangle(kernel, mode)
    else:
        assert mangling.unmangle(kernel, mode) == expected


def test_every_byte_outside_the_set_is_two_lowercase_hex_digits():
    safe = "09AZaz#+-.:=@_"
    assert mangling.mangle(safe) == safe
    assert mangling.mangle("é/\\\"'\t") == "\\xc3\\xa9\\x2f\\x5c\\x22\\x27\\x09"
    assert mangling.unmangle("\\xC3\\xA9") == "é"  # either case decodes


def test_round_trip_of_non_utf8_bytes():
    raw = b"x\xff y".decode("utf-8", "surrogateescape")
    assert mangling.mangle(raw) == "x\\xff\\x20y"
    assert mangling.unmangle(mangling.mangle(raw)) == raw


def test_decoding_stops_at_a_broken_escape():
    # Nothing decoded yet: the name as it is; else what was decoded so far.
    assert mangling.unmangle("ab\\x4", "none") == "ab\\x4"
    assert mangling.unmangle("ab\\xzz1", "auto") == "ab\\xzz1"
    assert mangling.unmangle("a\\x20b\\xzz1", "none") == "a b"
    # libdm checks characters in order and stops at the broken escape.
    assert mangling.unmangle("a\\xZZ b", "hex") == "a\\xZZ b"


def test_the_mangled_form_must_fit_the_ioctl():
    assert mangling.mangle("a" * 127) == "a" * 127
    with pytest.raises(dm.ValidationError, match="Mangled form of the name too long"):
        mangling.mangle(" " * 32)  # 128 bytes once mangled
    assert len(mangling.mangle(" " * 32, what="UUID")) == 128


def test_unknown_mode_is_refused():
    with pytest.raises(dm.ValidationError, match="unknown name mangling mode"):
        mangling.mangle("x", "base64")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "mode"), [("HEX", "hex"), ("none", "none"), ("bogus", "auto"), ("", "auto")])
def test_default_mode_from_the_environment(monkeypatch, value, mode):
    monkeypatch.setenv(mangling.ENVIRONMENT, value)
    assert mangling.default_mode() == mode
