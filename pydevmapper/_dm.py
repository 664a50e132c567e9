# SPDX-License-Identifier: LGPL-2.1-or-later
"""The one door to the compiled binding.

Only this module imports ``pydevmapper._dm_cffi``; everything else takes
``ffi`` and ``lib`` from here, so a missing or stale build fails in one place
with one clear message.
"""

from __future__ import annotations

try:
    from pydevmapper._dm_cffi import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "pydevmapper's compiled binding (pydevmapper._dm_cffi) is missing: "
        "reinstall the wheel, or build from source on a machine with gcc, "
        "the Python headers and <linux/types.h> (Debian: linux-libc-dev)"
    ) from exc

# Must equal PYDM_BINDING_ABI in build_support/dm_build.py.
_EXPECTED_ABI = 9
if lib.PYDM_BINDING_ABI != _EXPECTED_ABI:  # pragma: no cover
    raise ImportError(
        f"pydevmapper's compiled binding is stale (ABI {lib.PYDM_BINDING_ABI}, "
        f"package expects {_EXPECTED_ABI}): rebuild with `pip install .`"
    )

HEADER_SIZE: int = ffi.sizeof("struct dm_ioctl")
# The kernel rejects a data_size below the fixed part of struct dm_ioctl.
MIN_DATA_SIZE: int = lib.PYDM_OFFSETOF_IOCTL_DATA
# Names and uuids travel NUL-terminated in fixed arrays of these sizes.
NAME_MAX_BYTES: int = lib.DM_NAME_LEN - 1
UUID_MAX_BYTES: int = lib.DM_UUID_LEN - 1
TARGET_TYPE_MAX_BYTES: int = lib.DM_MAX_TYPE_NAME - 1
# The interface version of the (vendored) headers we were compiled against.
HEADER_VERSION = (lib.DM_VERSION_MAJOR, lib.DM_VERSION_MINOR, lib.DM_VERSION_PATCHLEVEL)

__all__ = ["ffi", "lib", "HEADER_SIZE", "MIN_DATA_SIZE", "NAME_MAX_BYTES",
           "UUID_MAX_BYTES", "TARGET_TYPE_MAX_BYTES", "HEADER_VERSION"]
