# SPDX-License-Identifier: LGPL-2.1-or-later
"""Loading and unloading kernel modules (basic_target) without kmod tools.

finit_module(2) and delete_module(2) have no glibc wrappers; the syscall
numbers come from the compiled binding.  Dependencies are not resolved: load
``dm-mod`` first (``modprobe dm_mod``) — basic_target needs its symbols.
"""

from __future__ import annotations

import errno
import os

from pydevmapper._dm import ffi, lib


class ModuleError(OSError):
    """A module could not be loaded or unloaded; keeps the errno."""

    def __init__(self, err: int, action: str, module: str, detail: str) -> None:
        super().__init__(err, detail)
        self.action = action
        self.module = module

    def __str__(self) -> str:
        return f"{self.action} {self.module}: {self.strerror} [Errno {self.errno}]"


class ModuleAlreadyLoadedError(ModuleError):
    pass


class ModuleInUseError(ModuleError):
    pass


class ModuleNotLoadedError(ModuleError):
    pass


class ModuleWrongKernelError(ModuleError):
    """Built for another kernel (vermagic or symbol versions differ)."""


def _why(err: int, action: str) -> tuple[type[ModuleError], str]:
    if err in (errno.EPERM, errno.EACCES):
        return ModuleError, "not permitted: loading modules needs root (CAP_SYS_MODULE)"
    if action == "load":
        if err == errno.EEXIST:
            return ModuleAlreadyLoadedError, "a module of that name is already loaded"
        if err in (errno.ENOEXEC, errno.EINVAL):
            return ModuleWrongKernelError, (
                f"{os.strerror(err)}: not a module for the running kernel "
                f"({os.uname().release}); rebuild it against that kernel's headers")
        if err == errno.ENOENT:
            return ModuleError, "unknown symbol: load dm_mod first (modprobe dm_mod)"
    else:
        if err in (errno.EBUSY, errno.EAGAIN):
            return ModuleInUseError, "the module is in use (devices still use its target?)"
        if err == errno.ENOENT:
            return ModuleNotLoadedError, "no such module is loaded"
    return ModuleError, os.strerror(err)


def load_module(path: str, params: str = "") -> None:
    """Insert the module file at ``path`` (like insmod)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if lib.syscall(lib.SYS_finit_module, ffi.cast("int", fd),
                       ffi.new("char[]", params.encode()), ffi.cast("int", 0)) < 0:
            err = ffi.errno
            cls, detail = _why(err, "load")
            raise cls(err, "load", path, detail)
    finally:
        os.close(fd)


def unload_module(name: str) -> None:
    """Remove a loaded module (like rmmod); fails at once if it is in use."""
    if lib.syscall(lib.SYS_delete_module, ffi.new("char[]", name.encode()),
                   ffi.cast("unsigned int", os.O_NONBLOCK)) < 0:
        err = ffi.errno
        cls, detail = _why(err, "unload")
        raise cls(err, "unload", name, detail)


def is_loaded(name: str) -> bool:
    return os.path.isdir(f"/sys/module/{name.replace('-', '_')}")
