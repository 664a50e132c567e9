# SPDX-License-Identifier: LGPL-2.1-or-later
"""``-S/--select``: libdm-report's selection grammar, messages included.

The grammar (libdm-report.c, lvm2 2.03.16 / libdm 1.02.185)::

    OR  := AND (("||" | "#") AND)*
    AND := EX  (("&&" | ",") EX)*
    EX  := "!" "(" OR ")" | "(" OR ")" | FIELD OP VALUE

FIELD is ``[A-Za-z0-9_-]+`` matched like -o names (underscores and case
ignored).  OP is one of =~ !~ = != >= > <= < since after until before; the
ordering ones need a number field, the time words a time field (dmsetup
has none).  VALUE is a string (quoted by ' or ", or running up to a space
or a logical operator), a number (digits with at most one '.', no unit and
no '%' for number fields), or for =~ / !~ a regular expression quoted by
' " ( [ { or bare.  dmsetup's fields are strings and numbers only (the
size fields belong to ``stats``), and it registers no reserved values, so
string lists, percents, times and reserved names never reach a match.
Regular expressions follow libdm's own dialect (``parse_rx.c``): . [] [^]
* + ? | () ^ $ and backslash escapes, matched anywhere in the value.

Errors print libdm's lines to stderr and raise ReportError; dmsetup then
exits 1 without "Command failed.".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from pydevmapper.cli import texts
from pydevmapper.cli.report import FIELDS, Keyed, ReportError, sort_key
from pydevmapper.cparse import UINT64_MAX

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import NoReturn

    from pydevmapper.cli.report import Row

    _Test = Callable[[Row], bool]

STRING, NUMBER, SIZE = "string", "number", "size"
_ID_LEN = 32  # DM_REPORT_FIELD_TYPE_ID_LEN

# dmsetup's non-string fields; every other field in the help text is a string.
_NUMBER_FIELDS = frozenset(
    "read_ahead major minor open segments events device_count device_ref_count read_count "
    "reads_merged_count read_sector_count read_time write_count writes_merged_count "
    "write_sector_count write_time in_progress_count io_ticks queue_ticks read_ticks "
    "write_ticks reads_merged_per_sec writes_merged_per_sec reads_per_sec writes_per_sec read_size_per_sec "
    "write_size_per_sec avg_request_size queue_size await read_await write_await throughput "
    "service_time util interval_ns interval region_id area_id area_count group_id".split())
_SIZE_FIELDS = frozenset("region_start region_len area_start area_len area_offset".split())
_IMPLICIT = (("selected", NUMBER), ("help", None), ("?", None))  # None: uncomparable

_CMP_OPS = ("=~", "!~", "=", "!=", ">=", ">", "<=", "<", "since", "after", "until", "before")
_ORDERING, _TIME_ONLY = (">=", ">", "<=", "<"), ("since", "after", "until", "before")
_AND, _OR, _VALUE_END = ("&&", ","), ("||", "#"), ("&&", ",", "||", "#", ")")
_UNITS = "hHrRbBsSkmgtpeKMGTPE"
_SYNTAX = "Selection syntax error at '{}'.\nUse 'help' for selection to get more help.\n"


def _field_help_lines() -> list[tuple[str, str]]:
    """(field id, help line) for every field dmsetup knows, in help order."""
    out: list[tuple[str, str]] = []
    for line in texts.FIELD_HELP.splitlines():
        m = re.match(r"  (\S+) +- ", line)
        if m and not line.endswith(" - All fields in this section."):
            out.append((m.group(1), line))
    return out


def typed_field_help() -> str:
    """libdm's field list as -S prints it: no *_all lines, each with its type."""
    lines: list[str] = []
    for line in texts.FIELD_HELP.splitlines():
        m = re.match(r"  (\S+) +- ", line)
        if m and line.endswith(" - All fields in this section."):
            continue
        if m:
            kind = _field_type(m.group(1))
            line += f" [{kind or 'unselectable number'}]"
        lines.append(line + "\n")
    return "".join(lines)


def _field_type(field_id: str) -> str | None:
    implicit = dict(_IMPLICIT)
    if field_id in implicit:
        return implicit[field_id]
    if field_id in _NUMBER_FIELDS:
        return NUMBER
    return SIZE if field_id in _SIZE_FIELDS else STRING


class _Failed(Exception):
    """A parse step failed; its lines are already written."""


class Selection:
    """A parsed -S: call it with a report row to know whether it is kept."""

    def __init__(self, test: _Test | None,
                 fields: tuple[str, ...], help_only: bool = False) -> None:
        self._test = test
        self.fields = fields  # field ids the selection reads, in order of first use
        self.help_only = help_only  # `-S help`: nothing is reported

    def __call__(self, row: Row) -> bool:
        if self.help_only:
            return False
        return self._test is None or self._test(row)


def parse(text: str, prefix: str, err: Callable[[str], None]) -> Selection:
    """Parse ``text`` as dmsetup does for a report whose field prefix is ``prefix``."""
    if text.lower() == "help" or text == "?":
        err(typed_field_help() + texts.SELECTION_HELP)
        return Selection(None, (), help_only=True)
    if not text or text.lower() == "all":
        return Selection(None, ())
    parser = _Parser(text, prefix, err)
    try:
        test, pos = parser.or_ex(0)
        rest = _skip_space(text, pos)
        if rest < len(text):
            err("Expecting logical operator\n" + _SYNTAX.format(text[rest:]))
            raise _Failed()
    except _Failed:
        raise ReportError() from None
    unknown = sorted(f for f in parser.used if f != "selected" and f not in {x.id for x in FIELDS})
    if unknown:
        raise ReportError(f"pydmsetup: selection on field {unknown[0]} is not supported.")
    return Selection(test, tuple(parser.used))


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\v\f\r":
        pos += 1
    return pos


def _tok_op(text: str, pos: int, ops: Iterable[str]) -> tuple[str | None, int]:
    """The first of ``ops`` after any spaces at ``pos``, and where it ends."""
    pos = _skip_space(text, pos)
    for op in ops:
        if text.startswith(op, pos):
            return op, pos + len(op)
    return None, pos


class _Node:
    """One selection node; libdm marks "!" on the node itself, so "!(!(x))" is "!(x)"."""

    def __init__(self, test: _Test) -> None:
        self.test, self.negated = test, False

    def __call__(self, row: Row) -> bool:
        return self.test(row) != self.negated


class _Parser:
    def __init__(self, text: str, prefix: str, err: Callable[[str], None]) -> None:
        self.text, self.prefix, self.err = text, prefix, err
        self.used: list[str] = []  # in order of first use, like libdm's hidden fields

    def _use(self, field_id: str) -> None:
        if field_id not in self.used:
            self.used.append(field_id)

    def fail(self, message: str, term_start: int | None = None) -> NoReturn:
        if term_start is not None:
            message += _SYNTAX.format(self.text[term_start:])
        self.err(message)
        raise _Failed()

    def or_ex(self, pos: int) -> tuple[_Node, int]:
        return self._joined(pos, self.and_ex, _OR, any)

    def and_ex(self, pos: int) -> tuple[_Node, int]:
        return self._joined(pos, self.ex, _AND, all)

    def _joined(self, pos: int, part: Callable[[int], tuple[_Node, int]], ops: tuple[str, ...],
                combine: Callable[[Iterable[bool]], bool]) -> tuple[_Node, int]:
        """``part (op part)*``; one part stays itself, as libdm keeps the node."""
        parts: list[_Node] = []
        while True:
            node, pos = part(pos)
            parts.append(node)
            op, after = _tok_op(self.text, pos, ops)
            if op is None:
                break
            pos = after
        return (parts[0] if len(parts) == 1 else _Node(lambda r: combine(p(r) for p in parts))), pos

    def ex(self, pos: int) -> tuple[_Node, int]:
        text = self.text
        op, after = _tok_op(text, pos, ("!", "("))
        if op == "!":
            paren, inner = _tok_op(text, after, ("(",))
            if paren is None:
                self.fail(f"Syntax error: left parenthesis expected at '{text[after:]}'\n")
            test, end = self.or_ex(inner)
            close, after = _tok_op(text, end, (")",))
            if close is None:
                self.fail(f"Syntax error: right parenthesis expected at '{text[end:]}'\n")
            test.negated = True
            return test, after
        if op == "(":
            test, end = self.or_ex(after)
            close, after = _tok_op(text, end, (")",))
            if close is None:
                self.fail(f"Syntax error: right parenthesis expected at '{text[after:]}'\n")
            return test, after
        return self.item(_skip_space(text, pos))

    def _lookup(self, name: str, start: int) -> tuple[str, str | None] | None:
        canon = ""
        for i, ch in enumerate(name):
            if ch == "_":
                continue
            if len(canon) + 1 >= _ID_LEN:
                self.err(f"{self.text[start + i:]}: field name too long.\n")
                return None
            canon += ch
        canon = canon.lower()
        cut = self.prefix.replace("_", "").lower() if self.prefix else None
        for field_id, kind in list(_IMPLICIT) + [(f, _field_type(f)) for f, _ in _field_help_lines()
                                                 if f not in dict(_IMPLICIT)]:
            own = field_id.replace("_", "").lower()
            if own == canon or (cut and own.startswith(cut) and own[len(cut):] == canon):
                return field_id, kind
        return None

    def item(self, start: int) -> tuple[_Node, int]:
        text = self.text
        end = start
        while end < len(text) and ((text[end].isalnum() and text[end].isascii()) or text[end] in "_-"):
            end += 1
        if end == start:
            self.fail("Expecting field name\n", start)
        name = text[start:end]
        found = self._lookup(name, start) if name else None
        if found is None:
            self.fail(typed_field_help() + f"Unrecognised selection field: {name}\n", start)
        field_id, kind = found
        if kind is None:
            self.fail(typed_field_help() + f"Selection field is uncomparable: {name}.\n", start)
        op, pos = _tok_op(text, end, _CMP_OPS)
        if op is None:
            self.fail(texts.SELECTION_HELP + f"Unrecognised comparison operator: {text[end:]}\n", start)
        if op in ("=~", "!~"):
            value, pos = self._regex_value(field_id, pos, start)
            if kind != STRING:
                self.fail(f"dm_report: incompatible comparison type for selection field {field_id}\n")
            matcher = _compile_regex(value, field_id, self.err)
            negate = op == "!~"
            self._use(field_id)
            return _Node(lambda r: matcher(_text(r, field_id)) != negate), _skip_space(text, pos)
        if op in _ORDERING and kind == STRING:
            self.fail(texts.SELECTION_HELP + "Operator can be used only with number, size, "
                      f"time or percent fields: {text[start:]}\n", start)
        if op in _TIME_ONLY:
            self.fail(texts.SELECTION_HELP + f"Operator can be used only with time fields: {text[start:]}\n",
                      start)
        pos = _skip_space(text, pos)
        if kind == STRING:
            value, pos = self._string_value(pos, f"Failed to parse string value for selection field {field_id}.\n",
                                            start)
            self._use(field_id)
            same = op == "="
            return _Node(lambda r: (_text(r, field_id) == value) == same), _skip_space(text, pos)
        number, pos = self._number_value(field_id, kind, pos, start)
        self._use(field_id)
        compare = _NUMERIC[op]
        return _Node(lambda r: compare(_number(r, field_id), number)), _skip_space(text, pos)

    def _string_value(self, pos: int, failed: str, start: int) -> tuple[str, int]:
        text = self.text
        quote = text[pos] if pos < len(text) and text[pos] in "\"'" else ""
        if quote:
            close = text.find(quote, pos + 1)
            if close < 0:
                self.fail("Missing end quote.\n" + failed, start)
            return text[pos + 1:close], close + 1
        end = pos
        while end < len(text) and text[end] != " " and _tok_op(text, end, _VALUE_END)[0] is None:
            end += 1
        return text[pos:end], end

    def _regex_value(self, field_id: str, pos: int, start: int) -> tuple[str, int]:
        text = self.text
        pos = _skip_space(text, pos)
        if pos >= len(text):
            self.fail(f"Regular expression expected for selection field {field_id}\n", start)
        close = {"(": ")", "{": "}", "[": "]", '"': '"', "'": "'"}.get(text[pos])
        if close is None:
            return self._string_value(pos, "", start)
        end = text.find(close, pos + 1)
        if end < 0:
            self.fail(f"Missing end quote.\nFailed to parse regex value for selection field {field_id}.\n",
                      start)
        return text[pos + 1:end], end + 1

    def _number_value(self, field_id: str, kind: str, pos: int, start: int) -> tuple[float, int]:
        text = self.text
        end, dot = pos, False
        while end < len(text) and ((text[end].isdigit() and text[end].isascii()) or (text[end] == "." and not dot)):
            dot = dot or text[end] == "."
            end += 1
        if end == pos:
            self.fail(f"Failed to parse numeric value for selection field {field_id}.\n", start)
        token, after = text[pos:end], end
        expected = "numeric" if kind == NUMBER else "size"
        factor = 1024 * 1024 if kind == SIZE else 0
        if text[after:after + 1] == "%":
            self.fail(f"Found percent value but {expected} value expected for selection field {field_id}.\n",
                      start)
        unit = text[after:after + 1]
        if unit and unit in _UNITS:
            if kind != SIZE:
                self.fail("Found size unit specifier but numeric value expected for selection "
                          f"field {field_id}.\n", start)
            factor = _unit_factor(unit)
            after += 1
        if kind == NUMBER:
            whole = token.split(".")[0]
            value = int(whole) if whole else 0
            if value > UINT64_MAX:
                self.fail(f"Field selection value {token} out of supported range for field {field_id}.\n")
            return value, after
        return float(token) * (factor or 1) / 512, after  # sizes compare in sectors


def _unit_factor(unit: str) -> int:
    if unit in "hHrRbB":
        return 1
    if unit in "sS":
        return 512
    base = 1024 if unit.islower() else 1000
    factor: int = base ** ("kmgtpe".index(unit.lower()) + 1)  # a positive power: an int
    return factor


def _text(row: Row, field_id: str) -> str:
    if field_id == "selected":
        return "1"
    value = row[field_id]
    # libdm matches a string field's sort value, which for two of dmstats'
    # (precise, hist_bins) is a number's bytes, not its text.
    return value.key if isinstance(value, Keyed) and isinstance(value.key, str) else str(value)


def _number(row: Row, field_id: str) -> float:
    if field_id == "selected":
        return 1  # every row counts as selected while it is being tested
    # libdm compares a number field's sort value as a uint64 (int32 values
    # too), a size field's as a double in sectors.
    key = sort_key(row[field_id])
    assert not isinstance(key, str), field_id  # the parser lets only number and size fields here
    return key


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


# -- libdm's regular expressions (libdm/regex/parse_rx.c) ---------------------
#
# libdm wraps each pattern as "(.*(PATTERN)\0)" and runs a DFA over
# HAT + value + DOLLAR; reaching the \0 transition is a match.  The parser
# below walks that same wrapped text with parse_rx.c's recursive descent
# (so it fails, and says so, exactly where libdm does) and builds a Python
# bytes pattern from it.

_HAT, _DOLLAR, _TARGET = 2, 3, 0


class _Rx:
    def __init__(self, source: bytes, err: Callable[[str], None]) -> None:
        self.src, self.err = source, err
        self.pos: int = 0
        self.type: object = None
        self.charset: frozenset[int] = frozenset()
        self.next_token()

    def next_token(self) -> None:
        src, ptr = self.src, self.pos
        if ptr >= len(src):
            self.type = -1
            return
        ch = src[ptr]
        if ch == ord("["):
            ptr += 1
            neg = ptr < len(src) and src[ptr] == ord("^")
            chars: set[int] = set(range(1, 256)) if neg else set()
            if neg:
                ptr += 1
            last = 0
            while ptr < len(src) and src[ptr] != ord("]"):
                ranged = False
                if src[ptr] == ord("\\"):
                    ptr += 1
                    c = _ESCAPES.get(src[ptr], src[ptr]) if ptr < len(src) else 0
                elif src[ptr] == ord("-") and last:
                    ranged = True
                    ptr += 1
                    if ptr >= len(src):
                        self.err("Incomplete rangespecification\n")
                        self.type = -1
                        return
                    c = src[ptr]
                else:
                    c = src[ptr]
                span = range(min(last, c), max(last, c) + 1) if ranged else (c,)
                for x in span:
                    (chars.discard if neg else chars.add)(x)
                ptr += 1
                last = c
            if ptr >= len(src):
                self.type = -1
                return
            self.type, self.charset, self.pos = 0, frozenset(chars), ptr + 1
        elif chr(ch) in "()*+?|":
            self.type, self.pos = chr(ch), ptr + 1
        elif ch == ord("."):
            self.type, self.pos = 0, ptr + 1
            self.charset = frozenset(range(256)) - {ord("\n"), ord("\r"), 0}
        elif ch == ord("\\"):
            ptr += 1
            if ptr >= len(src):
                self.err("Badly quoted character at end of expression\n")
                self.type = -1
                return
            self.type, self.pos = 0, ptr + 1
            self.charset = frozenset({_ESCAPES.get(src[ptr], src[ptr])})
        else:
            special = {ord("^"): _HAT, ord("$"): _DOLLAR}.get(ch, ch)
            self.type, self.pos, self.charset = 0, ptr + 1, frozenset({special})

    def term(self) -> str | None:
        if self.type == 0:
            chars = self.charset
            self.next_token()
            if chars == {_TARGET}:
                return "(?P<target>)"
            return _char_class(chars)
        if self.type == "(":
            self.next_token()
            inner = self.or_term()
            # The checkers keep self.type as "(" from above: next_token() changed it.
            if self.type != ")":  # type: ignore[comparison-overlap]
                self.err("missing ')' in regular expression\n")
                return None
            self.next_token()
            return None if inner is None else f"(?:{inner})"
        return None

    def closure_term(self) -> str | None:
        node = self.term()
        if node is None:
            return None
        while self.type in ("*", "+", "?"):
            node = f"(?:{node}){self.type}"
            self.next_token()
        return node

    def cat_term(self) -> str | None:
        left = self.closure_term()
        if left is None:
            return None
        if self.type == "|":
            return left
        right = self.cat_term()
        return left if right is None else left + right

    def or_term(self) -> str | None:
        left = self.cat_term()
        if left is None or self.type != "|":
            return left
        self.next_token()
        right = self.or_term()
        if right is None:
            self.err("Badly formed 'or' expression\n")
            return None
        return f"(?:{left}|{right})"


_ESCAPES = {ord("n"): ord("\n"), ord("r"): ord("\r"), ord("t"): ord("\t")}


def _char_class(chars: frozenset[int]) -> str:
    if not chars:
        return "(?!)"
    return "[" + "".join(f"\\x{c:02x}" for c in sorted(chars)) + "]"


def _compile_regex(pattern: str, field_id: str, err: Callable[[str], None]) -> Callable[[str], bool]:
    raw = os.fsencode(pattern)
    parsed = _Rx(b"(.*(" + raw + b")\0)", err).or_term()
    if parsed is None:
        err("Parse error in regex\nCouldn't parse regex\n"
            f"dm_report: failed to create regex matcher for selection field {field_id}\n")
        raise _Failed()
    compiled = re.compile(parsed.encode("ascii"))
    if "target" not in compiled.groupindex:  # the parse never reached the accepting \0
        return lambda value: False

    def matches(value: str) -> bool:
        data = bytes([_HAT]) + os.fsencode(value).split(b"\0")[0] + bytes([_DOLLAR])
        found = compiled.match(data)
        return found is not None and found.group("target") is not None

    return matches
