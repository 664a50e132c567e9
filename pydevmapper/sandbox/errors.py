# SPDX-License-Identifier: LGPL-2.1-or-later
"""Errors and tool lookup shared by the sandbox modules."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

#: Progress/diagnostic sink (print, or a stderr logger).
Log = Callable[[str], None]


class SandboxError(RuntimeError):
    """Something the sandbox needs is missing or broken; the message says how to fix it."""


# How to get each external tool on Debian 12 (scripts/setup-host.sh does all of it).
INSTALL_HINTS: dict[str, str] = {
    "qemu-system-x86_64": "apt-get install qemu-system-x86",
    "vng": "pip install virtme-ng  (into the same venv/python that runs pydevmapper.sandbox)",
    "modprobe": "apt-get install kmod",
    "depmod": "apt-get install kmod",
    "udevadm": "apt-get install udev",
    "busybox": "apt-get install busybox",
    "make": "apt-get install make gcc",
    "gcc-12": "apt-get install gcc-12  (Debian kernel headers build with gcc-12)",
    "dpkg": "apt-get install dpkg",
}

# Non-root PATHs on Debian lack /sbin, where kmod's tools live.
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _EXTRA_PATH:
        cand = os.path.join(d, name)
        if os.access(cand, os.X_OK):
            return cand
    return None


def require_tool(name: str, hint: str | None = None) -> str:
    path = find_tool(name)
    if path is None:
        how = hint or INSTALL_HINTS.get(name, "")
        raise SandboxError(f"{name} not found" + (f"; install it with: {how}" if how else ""))
    return path
