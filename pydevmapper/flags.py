# SPDX-License-Identifier: LGPL-2.1-or-later
"""The dm_ioctl flag bits, as IntFlags whose values come from the compiler."""

from __future__ import annotations

import enum

from pydevmapper._dm import lib


class DMFlag(enum.IntFlag):
    """Bits of ``struct dm_ioctl.flags`` (see <linux/dm-ioctl.h>)."""

    READONLY = lib.DM_READONLY_FLAG
    SUSPEND = lib.DM_SUSPEND_FLAG
    PERSISTENT_DEV = lib.DM_PERSISTENT_DEV_FLAG
    STATUS_TABLE = lib.DM_STATUS_TABLE_FLAG
    ACTIVE_PRESENT = lib.DM_ACTIVE_PRESENT_FLAG
    INACTIVE_PRESENT = lib.DM_INACTIVE_PRESENT_FLAG
    BUFFER_FULL = lib.DM_BUFFER_FULL_FLAG
    SKIP_BDGET = lib.DM_SKIP_BDGET_FLAG
    SKIP_LOCKFS = lib.DM_SKIP_LOCKFS_FLAG
    NOFLUSH = lib.DM_NOFLUSH_FLAG
    QUERY_INACTIVE_TABLE = lib.DM_QUERY_INACTIVE_TABLE_FLAG
    UEVENT_GENERATED = lib.DM_UEVENT_GENERATED_FLAG
    UUID = lib.DM_UUID_FLAG
    SECURE_DATA = lib.DM_SECURE_DATA_FLAG
    DATA_OUT = lib.DM_DATA_OUT_FLAG
    DEFERRED_REMOVE = lib.DM_DEFERRED_REMOVE
    INTERNAL_SUSPEND = lib.DM_INTERNAL_SUSPEND_FLAG
    # Zero when the build headers predate IMA; such a member is an alias of
    # nothing and is never sent (Control checks the kernel version first).
    IMA_MEASUREMENT = lib.DM_IMA_MEASUREMENT_FLAG


# Flags that describe a device's state in replies (DEV_STATUS and friends).
STATE_FLAGS = (
    DMFlag.READONLY
    | DMFlag.SUSPEND
    | DMFlag.ACTIVE_PRESENT
    | DMFlag.INACTIVE_PRESENT
    | DMFlag.DEFERRED_REMOVE
    | DMFlag.INTERNAL_SUSPEND
)

NAME_LIST_HAS_UUID: int = lib.DM_NAME_LIST_FLAG_HAS_UUID
NAME_LIST_DOESNT_HAVE_UUID: int = lib.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID
