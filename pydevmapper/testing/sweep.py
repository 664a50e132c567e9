# SPDX-License-Identifier: LGPL-2.1-or-later
"""Finding and removing what a test session left behind."""

from __future__ import annotations

import os

from pydevmapper.control import Control
from pydevmapper.errors import DMError
from pydevmapper.loopdev import LoopDevice, backing_file_of


def leftover_devices(ctl: Control, prefix: str) -> list[str]:
    return [d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(prefix)]


def remove_devices(ctl: Control, names: list[str]) -> list[str]:
    """Remove the named devices (stacked ones first); returns those that stayed."""
    remaining = list(names)
    # A device may sit on top of another of ours: retry in rounds.
    for _ in range(len(remaining) + 1):
        stuck: list[str] = []
        for name in remaining:
            try:
                ctl.clear(name)
            except DMError:
                pass
            try:
                ctl.remove(name, retry=2.0)
            except DMError:
                stuck.append(name)
        if len(stuck) == len(remaining):
            return stuck
        remaining = stuck
    return remaining


def leftover_loops(backing_dir: str) -> list[str]:
    """Loop devices whose backing file lies under backing_dir."""
    found: list[str] = []
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return found
    for name in names:
        if not name.startswith("loop"):
            continue
        backing = backing_file_of(f"/dev/{name}")
        if backing and backing.startswith(backing_dir.rstrip("/") + "/"):
            found.append(f"/dev/{name}")
    return found


def detach_loops(paths: list[str]) -> list[str]:
    stuck: list[str] = []
    for path in paths:
        try:
            LoopDevice(path, "").detach()
        except OSError:
            stuck.append(path)
    return stuck
