# SPDX-License-Identifier: LGPL-2.1-or-later
"""Which devices use which: the dependency graph of every mapped device::

    import pydevmapper as dm

    with dm.Control() as ctl:
        graph = dm.dependency_graph(ctl)
        for devno in graph.top:             # devices no mapped device uses
            print(graph[devno].name, graph.children(devno))

The graph is built the way libdevmapper's ``dm_tree`` builds it for
``dmsetup ls --tree``: devices in the kernel's listing order, each one's live
table dependencies (DM_TABLE_DEPS) in the kernel's order, walked depth first.
Every order below follows from that walk, so tools that print the graph
print it in dmsetup's order.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydevmapper.types import DeviceInfo, DevNo

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.control import Control


class DeviceNode:
    """One block device in the graph."""

    __slots__ = ("devno", "info", "uses", "used_by")

    def __init__(self, devno: DevNo, info: DeviceInfo | None) -> None:
        self.devno = devno
        #: the mapped device's state; None for a device that is not a mapped
        #: device (a loop device, a disk) or a mapped device that vanished
        self.info = info
        #: devices this one's live table uses, in the kernel's order
        self.uses: list[DevNo] = []
        #: mapped devices whose live tables use this one, in the order found
        self.used_by: list[DevNo] = []

    @property
    def name(self) -> str:
        """The mapped device's name; "" for anything else."""
        return self.info.name if self.info is not None else ""

    def __repr__(self) -> str:
        return f"DeviceNode({self.devno}, {self.name!r}, uses={self.uses}, used_by={self.used_by})"


class DeviceGraph:
    """Mapped devices and the block devices under them.

    ``top``: devices no mapped device uses, in listing order.  ``bottom``:
    devices that use nothing (plain block devices, mapped devices whose
    tables name no device), in the order they were found.
    """

    def __init__(self) -> None:
        self.nodes: dict[DevNo, DeviceNode] = {}
        self.top: list[DevNo] = []
        self.bottom: list[DevNo] = []

    def __getitem__(self, devno: DevNo) -> DeviceNode:
        return self.nodes[devno]

    def __contains__(self, devno: object) -> bool:
        return devno in self.nodes

    def __iter__(self) -> Iterator[DeviceNode]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def roots(self, inverted: bool = False) -> list[DevNo]:
        """Where a walk starts: ``top``, or ``bottom`` walking upwards."""
        return list(self.bottom if inverted else self.top)

    def children(self, devno: DevNo, inverted: bool = False) -> list[DevNo]:
        """The next level of a walk: what ``devno`` uses (or, inverted, what
        uses it); empty at the end of the walk's direction."""
        node = self.nodes[devno]
        if inverted:
            return [] if devno in self.top else list(node.used_by)
        return [] if devno in self.bottom else list(node.uses)


def dependency_graph(ctl: Control) -> DeviceGraph:
    """Every mapped device and what it uses, from the kernel, now.

    Two ioctls per mapped device (status and deps).  A device removed while
    the graph is built stays in it with ``info`` None.
    """
    from pydevmapper.errors import DeviceNotFoundError

    listed = ctl.list_devices(uuids=False)
    dm_majors = {d.major for d in listed}
    graph = DeviceGraph()

    def add(devno: DevNo, parent: DeviceNode | None) -> None:
        node = graph.nodes.get(devno)
        new = node is None
        deps: list[DevNo] = []
        if node is None:
            info = None
            if devno.major in dm_majors:
                try:
                    info = ctl.info(devno)
                    deps = ctl.deps(devno)
                except DeviceNotFoundError:
                    info, deps = None, []
            node = graph.nodes[devno] = DeviceNode(devno, info)
        if parent is None:
            # From the listing: a top-level device unless something uses it.
            if not node.used_by and devno not in graph.top:
                graph.top.append(devno)
        else:
            if devno in graph.top:
                graph.top.remove(devno)
            if parent.devno in graph.bottom:
                graph.bottom.remove(parent.devno)
            if devno not in parent.uses:
                parent.uses.append(devno)
                node.used_by.append(parent.devno)
        if not new:
            return
        if node.info is None or not deps:
            graph.bottom.append(devno)
            return
        for dep in deps:
            add(DevNo(*dep), node)

    for dev in listed:
        add(DevNo(dev.major, dev.minor), None)
    return graph
