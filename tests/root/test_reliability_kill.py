# SPDX-License-Identifier: LGPL-2.1-or-later
"""The reliability tier, kill -9: a process killed at a random point of
create, reload and remove leaves at most what docs/api.md says it may - its
one device (perhaps suspended, perhaps with an inactive table), one udev
cookie semaphore, one stale /dev/mapper entry - and the library's own
tools clear each of them.

``PYDM_KILL_SEED`` picks the kill points (printed on failure).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

import pydevmapper as dm
from pydevmapper import udev
from tests.root.helpers import cookie_keys, record_cases

pytestmark = [pytest.mark.dm_root, pytest.mark.udev]

ROUNDS = 20
SEED = int(os.environ.get("PYDM_KILL_SEED", "22"))


def _churn(name: str, loop: str) -> None:  # pragma: no cover - runs in a forked child
    try:
        with dm.Control() as ctl:
            while True:
                ctl.create_device(name, f"0 64 linear {loop} 0")
                ctl.reload(name, f"0 64 linear {loop} 64")
                ctl.remove(name, retry=10.0)
    finally:
        os._exit(1)


def test_kill_9_at_random_points_leaves_bounded_state_the_library_clears(dm_control, dm_loop_device,
                                                                         dm_prefix):
    rng = random.Random(SEED)
    loop = dm_loop_device.devno_str
    name = f"{dm_prefix}killed"
    cookies_before = cookie_keys()
    seen: dict[str, int] = {}
    problems: list[str] = []
    for r in range(ROUNDS):
        delay = rng.uniform(0.05, 2.0)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            _churn(name, loop)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

        devices = [d for d in dm_control.list_devices(uuids=False) if d.name.startswith(dm_prefix)]
        cookies = cookie_keys() - cookies_before
        if len(devices) > 1 or len(cookies) > 1:
            problems.append(f"round {r} (after {delay:.2f}s): {devices}, cookies {cookies}")
        for d in devices:
            info = dm_control.info(d.devno)
            kind = ("suspended " if info.suspended else "") + ("device with an inactive table"
                                                             if info.inactive_table else "device")
            seen[kind] = seen.get(kind, 0) + 1
            # force: an error table swapped in and a suspended device resumed
            try:
                dm_control.remove(d.devno, force=True, retry=30.0)
            except dm.DMError as exc:
                problems.append(f"round {r}: remove(force=True) of {d.name}: {exc}")
        for cookie in cookies:
            seen["cookie semaphore"] = seen.get("cookie semaphore", 0) + 1
            udev.remove_cookie(cookie)
        if not dm_control.udev_sync:
            stale = dm_control.sync_nodes()  # dmsetup mknodes: entries without a device go
            if any(e.startswith(dm_prefix) for e in stale.removed):
                seen["stale /dev/mapper entry"] = seen.get("stale /dev/mapper entry", 0) + 1
        else:  # udev's remove event may still be queued
            subprocess.run(["udevadm", "settle", "--timeout=120"], check=False, timeout=180)
        if os.path.lexists(f"/dev/mapper/{name}"):
            problems.append(f"round {r}: /dev/mapper/{name} is still there after clearing")
        if dm_control.exists(name) or cookie_keys() - cookies_before:
            problems.append(f"round {r}: something is left after clearing")
    record_cases(f"kill -9 at random points ({ROUNDS} rounds; left: "
                 f"{', '.join(f'{k} x{v}' for k, v in sorted(seen.items())) or 'nothing'})",
                 ROUNDS, ROUNDS - len({p.split(":")[0].split(" (")[0] for p in problems}))
    assert not problems, f"seed {SEED}: " + "\n".join(problems)
