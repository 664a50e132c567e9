"""Small helpers shared by the root tests (reading the kernel's own view)."""

from __future__ import annotations

import os
from typing import Dict, Tuple


def sysfs_dm_devices() -> Dict[str, Tuple[str, int, int]]:
    """name -> (uuid, major, minor) straight from /sys/block/dm-*/."""
    found = {}
    for entry in os.listdir("/sys/block"):
        if not entry.startswith("dm-"):
            continue
        base = f"/sys/block/{entry}"
        with open(f"{base}/dm/name") as f:
            name = f.read().rstrip("\n")
        with open(f"{base}/dm/uuid") as f:
            uuid = f.read().rstrip("\n")
        with open(f"{base}/dev") as f:
            major, minor = (int(x) for x in f.read().split(":"))
        found[name] = (uuid, major, minor)
    return found


def sectors_of(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END) // 512
    finally:
        os.close(fd)


def dm_block_node(devno) -> str:
    """devtmpfs's node for a dm device: /dev/dm-<minor>, with or without udev."""
    return f"/dev/dm-{devno[1]}"


def wait_for_dm_event(ctl, predicate, timeout: float = 30.0) -> bool:
    """Wait until predicate() holds, waking on device-mapper events.

    Arms DM_DEV_ARM_POLL and polls the control node instead of sleeping;
    the kernel raises an event for every create, remove, rename and table
    event.  Returns predicate() at the deadline.
    """
    import select
    import time

    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    while True:
        ctl.arm_poll()
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return predicate()
        poller.poll(int(left * 1000))
