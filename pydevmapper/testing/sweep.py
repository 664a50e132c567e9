# SPDX-License-Identifier: LGPL-2.1-or-later
"""Finding and removing what a test session left behind."""

from __future__ import annotations

import os

from pydevmapper.control import Control
from pydevmapper.deptree import dependency_graph
from pydevmapper.errors import DMError
from pydevmapper.loopdev import LoopDevice, backing_file_of
from pydevmapper.stacks import top_down


def leftover_devices(ctl: Control, prefix: str) -> list[str]:
    return [d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(prefix)]


def remove_devices(ctl: Control, names: list[str]) -> list[str]:
    """Remove the named devices, each after every one that uses it; returns
    those that stayed."""
    wanted = set(names)
    graph = dependency_graph(ctl)
    by_devno = {node.devno: node.name for node in graph if node.name in wanted}
    order = [by_devno[d] for d in top_down(list(by_devno), graph)]
    # Inactive tables hold devices too, and are not in the graph's order.
    for name in order:
        try:
            ctl.clear(name)
        except DMError:
            pass
    stuck: list[str] = []
    for name in order:
        try:
            ctl.remove(name, retry=2.0)
        except DMError:
            stuck.append(name)
    return stuck


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
