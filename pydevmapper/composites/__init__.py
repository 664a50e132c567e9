# SPDX-License-Identifier: LGPL-2.1-or-later
"""Devices built of several mapped devices, each owning its sub-devices:
made, adopted, changed and torn down as one.

- ``ThinPoolStack``: a thin pool on its metadata and data devices, with
  thin volumes and snapshots (``pydevmapper.composites.thin``).
- ``CacheStack``: a cache in front of a live device, with its metadata
  and cache devices, flushed and removed again
  (``pydevmapper.composites.cache``).
- ``SnapshotStack``: a snapshot of a live device, with its COW device, and
  its merge back into the origin (``pydevmapper.composites.snapshot``).
"""

from __future__ import annotations

from pydevmapper.composites.cache import CacheStack
from pydevmapper.composites.segments import Segment
from pydevmapper.composites.snapshot import SnapshotStack
from pydevmapper.composites.thin import ThinPoolStack, ThinVolume

__all__ = ["CacheStack", "Segment", "SnapshotStack", "ThinPoolStack", "ThinVolume"]
