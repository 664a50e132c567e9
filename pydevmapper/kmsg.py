# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the kernel logged about a failed command.

The kernel explains a rejected table only in its log, e.g.
``device-mapper: table: 254:0: linear: Device lookup failed``.  A cursor is
placed at the end of /dev/kmsg before a command that may fail that way; after
a failure the records written since are read and the device-mapper lines
kept; ``about()`` drops those naming another device number.
"""

from __future__ import annotations

import errno
import os


class KmsgCursor:
    """A position in the kernel log; ``None``-safe when the log is unreadable."""

    __slots__ = ("_fd",)

    def __init__(self, path: str = "/dev/kmsg") -> None:
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self._fd = None  # not root, dmesg_restrict, or no /dev/kmsg
        self.to_end()

    def to_end(self) -> None:
        """Move to the end of the log: later reads see only newer records."""
        if self._fd is not None:
            try:
                os.lseek(self._fd, 0, os.SEEK_END)
            except OSError:
                self.close()

    def __del__(self) -> None:  # per-thread cursors go away with their thread
        self.close()

    def read_dm_lines(self) -> list[str]:
        """Device-mapper messages logged since the cursor was placed."""
        if self._fd is None:
            return []
        lines: list[str] = []
        while True:
            try:
                record = os.read(self._fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten; go on
                    continue
                break  # EAGAIN: nothing more
            if not record:
                break
            _, _, text = record.decode("utf-8", "replace").partition(";")
            text = text.split("\n", 1)[0]
            if text.startswith("device-mapper:"):
                lines.append(text)
        return lines

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> KmsgCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def about(line: str, devno: str | None) -> bool:
    """False only for a line that names a device number other than ``devno``."""
    # "device-mapper: <part>: <major>:<minor>: <text>" names a device.
    # (String methods, not a regex: re is not imported at start-up.)
    parts = line.split(": ", 3)
    if not devno or len(parts) < 4 or parts[0] != "device-mapper":
        return True
    major, sep, minor = parts[2].partition(":")
    named = sep and major.isdecimal() and minor.isdecimal()
    return not named or parts[2] == devno
