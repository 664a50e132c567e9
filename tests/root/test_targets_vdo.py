# SPDX-License-Identifier: LGPL-2.1-or-later
"""vdo against the real kernel, as far as this machine allows: the target is
in 6.12 and later (dm-vdo, 6.9+) and not in 5.10 or 6.1, and without
vdoformat (not packaged in Debian 12) or room for the kernel to format one
itself no volume is usable, so a load stops at the metadata - after the
kernel has taken every parameter of the typed table."""

from __future__ import annotations

import errno

import pytest

import pydevmapper as dm
from pydevmapper import targets as t
from tests.root.helpers import kernel_at_least, sectors_of

pytestmark = pytest.mark.dm_root


def _vdo_version(ctl):
    try:
        return ctl.target_version("vdo").version
    except dm.DMError as exc:
        assert exc.errno == errno.ENOENT
        return None


def test_vdo_is_gated_on_the_kernel(dm_control):
    version = _vdo_version(dm_control)
    if kernel_at_least(6, 9):
        assert version is not None and version >= (9, 0, 0)
    else:
        assert version is None


def test_vdo_table_reaches_the_metadata(dm_control, dm_make_loop, dm_name):
    loop = dm_make_loop(64)
    params = t.Vdo(loop.path, sectors_of(loop.path) // 8, 4096, 32768, 16380,
                   (("deduplication", "on"), ("compression", "off")))
    with pytest.raises(dm.InvalidTableError) as exc:
        dm_control.create_device(dm_name, dm.Table.single(8 * 1024, params))
    assert not dm_control.exists(dm_name)
    if _vdo_version(dm_control) is None:  # 6.1: no such target
        assert "unknown target type" in (exc.value.kernel_message or "").lower()
        return
    # vdo logs the table line it parsed; the unformatted volume is what
    # stops it: dm-vdo of 6.12 finds no geometry block, newer ones (seen
    # on 7.3) format a blank volume themselves and find 64 MiB too small.
    said = exc.value.kernel_message or ""
    assert f"table line: {params.format()}" in said
    assert ("Could not load geometry block" in said
            or "Could not allocate enough space for VDO during format (-ENOSPC)" in said)
