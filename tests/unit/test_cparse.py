# SPDX-License-Identifier: LGPL-2.1-or-later
"""cparse against the C library itself: the same text gives the same number,
the same end and the same overflow as glibc's strtol and strtoul."""

from __future__ import annotations

import ctypes

from hypothesis import example, given
from hypothesis import strategies as st

from pydevmapper import cparse

libc = ctypes.CDLL(None, use_errno=True)
libc.strtol.restype = ctypes.c_long
libc.strtol.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
libc.strtoul.restype = ctypes.c_ulong
libc.strtoul.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
ERANGE = 34

texts = st.text(alphabet=" \t\n+-0123456789xXabcdefgz8", max_size=30)


def _c(fn, text: str, base: int):
    raw = ctypes.create_string_buffer(text.encode())
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    value = fn(raw, ctypes.byref(end), base)
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(raw)
    return value, consumed, ctypes.get_errno() == ERANGE


@given(texts, st.sampled_from([0, 8, 10, 16]))
@example("99999999999999999999999", 10)
@example("-99999999999999999999999", 10)
@example("0x", 16)
@example(" -0x1f", 0)
def test_strtoul_is_glibcs(text, base):
    value, end, erange = cparse.strtoul(text, base)
    assert (value, end, erange) == _c(libc.strtoul, text, base)


@given(texts, st.sampled_from([8, 10]))
@example("9223372036854775808", 10)
@example("-9223372036854775809", 10)
def test_strtol_is_glibcs(text, base):
    value, rest, erange = cparse.strtol(text, base)
    c_value, consumed, c_erange = _c(libc.strtol, text, base)
    assert (value, len(text) - len(rest), erange) == (c_value, consumed, c_erange)


@given(texts)
def test_atoi_is_glibcs(text):
    libc.atoi.restype = ctypes.c_int
    assert cparse.atoi(text) == libc.atoi(text.encode())
