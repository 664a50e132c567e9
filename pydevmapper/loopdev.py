# SPDX-License-Identifier: LGPL-2.1-or-later
"""Loop devices over files, for tests and the walkthrough.

Uses /dev/loop-control and LOOP_CONFIGURE (Linux 5.8+), with constants and
struct layouts from the compiled binding.
"""

from __future__ import annotations

import errno
import os
import time

from pydevmapper._dm import ffi, lib


class LoopDevice:
    """An attached loop device; ``detach()`` or use as a context manager."""

    __slots__ = ("path", "backing_file")

    def __init__(self, path: str, backing_file: str) -> None:
        self.path = path
        self.backing_file = backing_file

    def __repr__(self) -> str:
        return f"<LoopDevice {self.path} -> {self.backing_file}>"

    @property
    def devno(self) -> tuple[int, int]:
        """``(major, minor)`` of the loop device."""
        st = os.stat(self.path)
        return os.major(st.st_rdev), os.minor(st.st_rdev)

    @property
    def devno_str(self) -> str:
        """``"major:minor"``, as a table line names the device."""
        major, minor = self.devno
        return f"{major}:{minor}"

    def detach(self) -> None:
        """Detach the backing file (a loop device already detached is fine)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if lib.ioctl(fd, lib.LOOP_CLR_FD, ffi.cast("int", 0)) < 0:
                err = ffi.errno
                if err != errno.ENXIO:  # already detached
                    raise OSError(err, os.strerror(err), self.path)
        finally:
            os.close(fd)

    def __enter__(self) -> LoopDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


def attach(backing_file: str, *, read_only: bool = False, direct_io: bool = False,
           attempts: int = 10) -> LoopDevice:
    """Attach a file to a free loop device."""
    flags = os.O_RDONLY if read_only else os.O_RDWR
    backing_fd = os.open(backing_file, flags | os.O_CLOEXEC)
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(attempts):
                number = lib.ioctl(ctl, lib.LOOP_CTL_GET_FREE)
                if number < 0:
                    err = ffi.errno
                    raise OSError(err, os.strerror(err), "/dev/loop-control")
                path = f"/dev/loop{number}"
                if _configure(path, backing_fd, backing_file, read_only, direct_io):
                    return LoopDevice(path, backing_file)
                # Another process took it between GET_FREE and CONFIGURE.
                time.sleep(0.01)
        finally:
            os.close(ctl)
    finally:
        os.close(backing_fd)
    raise OSError(errno.EBUSY, "no free loop device after retries")


def _configure(path: str, backing_fd: int, backing_file: str, read_only: bool,
               direct_io: bool) -> bool:
    # devtmpfs creates the node before LOOP_CTL_GET_FREE returns.
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        config = ffi.new("struct loop_config *")
        config.fd = backing_fd
        lo_flags = 0
        if read_only:
            lo_flags |= lib.LO_FLAGS_READ_ONLY
        if direct_io:
            lo_flags |= lib.LO_FLAGS_DIRECT_IO
        config.info.lo_flags = lo_flags
        # Informational only (losetup shows it); the kernel keeps 63 bytes.
        name = os.path.abspath(backing_file).encode()[:63]
        ffi.memmove(config.info.lo_file_name, name, len(name))
        if lib.ioctl(fd, lib.LOOP_CONFIGURE, config) < 0:
            err = ffi.errno
            if err == errno.EBUSY:
                return False
            raise OSError(err, os.strerror(err), path)
        return True
    finally:
        os.close(fd)


def backing_file_of(path: str) -> str | None:
    """The file behind a loop device, from sysfs; None if unattached."""
    name = os.path.basename(path)
    try:
        with open(f"/sys/block/{name}/loop/backing_file") as f:
            return f.read().strip()
    except OSError:
        return None
