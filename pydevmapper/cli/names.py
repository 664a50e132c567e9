# SPDX-License-Identifier: LGPL-2.1-or-later
"""Name handling dmsetup does in user space: LVM name splitting (mangling
is the library's: pydevmapper.mangling).

``split_lvm_name`` follows libdm's rule: a single '-' separates VG, LV and
layer, and '--' stands for a '-' inside a component.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.cli.report import Row


def _unquote(text: str) -> tuple[str, str]:
    """The first component (with '--' unescaped) and the rest after its '-'."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "-" and i + 1 < len(text):
            if text[i + 1] != "-":
                return "".join(out), text[i + 1:]
            i += 1  # '--' is a literal '-'
        out.append(text[i])
        i += 1
    return "".join(out), ""


def split_lvm_name(name: str) -> tuple[str, str, str]:
    vg, rest = _unquote(name)
    lv, rest = _unquote(rest)
    layer, _ = _unquote(rest)
    return vg, lv, layer


def split_name(name: str, subsystem: str) -> Row:
    """The splitname report row: LVM names split, others left empty."""
    vg = lv = layer = ""
    if subsystem == "LVM":
        vg, lv, layer = split_lvm_name(name)
    return {"subsystem": subsystem, "vg_name": vg, "lv_name": lv, "lv_layer": layer}


def uuid_prefix(uuid: str) -> str:
    """The subsystem of a device: its uuid up to the first '-' ("" without one)."""
    head, sep, _ = uuid.partition("-")
    return head if sep else ""
