# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run the root test tier inside a throwaway QEMU guest (virtme-ng).

The host this project is developed on has no device-mapper and no module
loading, so root tests boot a cached Debian kernel under QEMU and run there.
This package is stdlib-only and imports nothing else from pydevmapper, so it
works before the core (or its compiled extension) is built.

CLI: ``python -m pydevmapper.sandbox {fetch,run,info} ...``.
"""

from .errors import SandboxError
from .guest import GuestResult, host_has_device_mapper, run_in_guest, run_native
from .kernels import DEFAULT_SERIES, SERIES, Kernel, Series, ensure_kernel, fetch, find_cached

__all__ = [
    "DEFAULT_SERIES",
    "SERIES",
    "GuestResult",
    "Kernel",
    "SandboxError",
    "Series",
    "ensure_kernel",
    "fetch",
    "find_cached",
    "host_has_device_mapper",
    "run_in_guest",
    "run_native",
]
