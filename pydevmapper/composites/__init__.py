# SPDX-License-Identifier: LGPL-2.1-or-later
"""Devices built of several mapped devices, each owning its sub-devices:
made, adopted, changed and torn down as one.

- ``ThinPoolStack``: a thin pool on its metadata and data devices, with
  thin volumes and snapshots (``pydevmapper.composites.thin``).
"""

from __future__ import annotations

from pydevmapper.composites.thin import Segment, ThinPoolStack, ThinVolume

__all__ = ["Segment", "ThinPoolStack", "ThinVolume"]
