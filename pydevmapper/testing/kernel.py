# SPDX-License-Identifier: LGPL-2.1-or-later
"""Can this process drive device-mapper?  One answer, with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess

# Set by the guest runner: the root tier must run, so "unavailable" is a failure.
REQUIRE_ENV = "PYDM_REQUIRE_KERNEL"


def ensure_dm_loaded() -> None:
    """Load dm-mod if it is a module and not loaded yet (needs root)."""
    if os.path.exists("/sys/module/dm_mod"):
        return
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    if os.path.exists(modprobe):
        subprocess.run([modprobe, "dm_mod"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kernel_unavailable_reason() -> str | None:
    """None when root tests can run here; otherwise why not."""
    if os.geteuid() != 0:
        return "needs root (device-mapper requires CAP_SYS_ADMIN)"
    ensure_dm_loaded()
    try:
        from pydevmapper.control import Control
        from pydevmapper.errors import DMError
    except ImportError as exc:  # a missing or stale build of the binding
        return f"pydevmapper cannot be imported: {exc}"

    try:
        with Control() as ctl:
            ctl.version()
    except DMError as exc:
        return f"no usable device-mapper: {exc}"
    return None


def require_kernel() -> bool:
    """Whether ``$PYDM_REQUIRE_KERNEL`` is set (and not 0): root tests then fail instead of
    skipping."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")
