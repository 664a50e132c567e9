# SPDX-License-Identifier: LGPL-2.1-or-later
"""Targets as Python objects: typed parameters, parsed status, typed messages.

    from pydevmapper import targets as t

    pool = t.ThinPool(meta, data, data_block_size=128, low_water_mark=64)
    table = Table.single(size, pool)            # or pool.target(0, size)
    ctl.message(pool_dev, 0, t.ThinPool.create_thin(1))
    st = ctl.status(pool_dev)[0].parsed()       # a ThinPoolStatus
    st.used_data_blocks, st.total_data_blocks

``Target.parsed()`` and ``TargetStatus.parsed()`` (or ``parse`` and
``parse_status`` here) give the typed form of what ``Control.table`` and
``Control.status`` return; a target type not known here gives ``Unknown``
or ``UnknownStatus``, holding the text.  Devices are taken as a ``DevNo``,
``"major:minor"``, a block device path or a ``Device`` handle.

One module per target family:

- ``basic``: linear, striped, zero, error, unstriped, basic_target
- ``faults``: flakey, delay
- ``snapshot``: snapshot-origin, snapshot, snapshot-merge
- ``thin``: thin-pool, thin
- ``cache``: cache, writecache, era
- ``raid``: raid, mirror
- ``crypt``: crypt, verity, integrity
- ``multipath``: multipath, switch, log-writes
- ``vdo``: vdo
"""

from __future__ import annotations

from pydevmapper.targets._base import (
                                       Message,
                                       NoStatus,
                                       ParameterError,
                                       Params,
                                       Secret,
                                       Status,
                                       Unknown,
                                       UnknownStatus,
                                       as_devno,
                                       known_types,
                                       params_class,
                                       parse,
                                       parse_status,
)
from pydevmapper.targets.basic import (
                                       BasicTarget,
                                       BasicTargetStatus,
                                       Error,
                                       Linear,
                                       Stripe,
                                       Striped,
                                       StripedStatus,
                                       Unstriped,
                                       Zero,
)
from pydevmapper.targets.cache import (
                                       Cache,
                                       CacheStatus,
                                       Era,
                                       EraStatus,
                                       Writecache,
                                       WritecacheStatus,
)
from pydevmapper.targets.crypt import (
                                       Algorithm,
                                       Crypt,
                                       Integrity,
                                       IntegrityStatus,
                                       KeyringKey,
                                       Verity,
                                       VerityFec,
                                       VerityStatus,
)
from pydevmapper.targets.faults import (
                                       CorruptBioByte,
                                       Delay,
                                       DelayClass,
                                       DelayStatus,
                                       Flakey,
)
from pydevmapper.targets.multipath import (
                                       GroupStatus,
                                       LogWrites,
                                       LogWritesStatus,
                                       Multipath,
                                       MultipathPath,
                                       MultipathStatus,
                                       PathGroup,
                                       PathStatus,
                                       Switch,
                                       SwitchPath,
)
from pydevmapper.targets.raid import (
                                       Mirror,
                                       MirrorLeg,
                                       MirrorStatus,
                                       Raid,
                                       RaidDevice,
                                       RaidStatus,
)
from pydevmapper.targets.snapshot import (
                                       Snapshot,
                                       SnapshotMerge,
                                       SnapshotOrigin,
                                       SnapshotStatus,
)
from pydevmapper.targets.thin import Thin, ThinPool, ThinPoolStatus, ThinStatus
from pydevmapper.targets.vdo import Vdo, VdoStatus

__all__ = [
    "Algorithm", "BasicTarget", "BasicTargetStatus", "Cache", "CacheStatus", "CorruptBioByte", "Crypt",
    "Delay", "DelayClass", "DelayStatus", "Era", "EraStatus", "Error", "Flakey", "GroupStatus",
    "Integrity", "IntegrityStatus", "KeyringKey", "Linear", "LogWrites", "LogWritesStatus", "Message",
    "Mirror", "MirrorLeg", "MirrorStatus", "Multipath", "MultipathPath", "MultipathStatus", "NoStatus",
    "ParameterError", "Params", "PathGroup", "PathStatus", "Raid", "RaidDevice", "RaidStatus", "Secret",
    "Snapshot", "SnapshotMerge", "SnapshotOrigin", "SnapshotStatus", "Status", "Stripe", "Striped",
    "StripedStatus", "Switch", "SwitchPath", "Thin", "ThinPool", "ThinPoolStatus", "ThinStatus",
    "Unknown", "UnknownStatus", "Unstriped", "Vdo", "VdoStatus", "Verity", "VerityFec", "VerityStatus",
    "Writecache", "WritecacheStatus", "Zero", "as_devno", "known_types", "params_class", "parse",
    "parse_status",
]
