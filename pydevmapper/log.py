# SPDX-License-Identifier: LGPL-2.1-or-later
"""The library's log: the ``pydevmapper`` logger and its children.

``pydevmapper.ioctl``
    DEBUG: every command sent (device, flags in and out, buffer size, the
    reply's data size or the errno, the time it took), buffers grown and
    asked again, and the kernel-log lines a failure was explained with.
``pydevmapper.udev``
    DEBUG: each wait on a udev cookie and how it ended; WARNING: a wait
    that timed out.

Enable it as any library's: ``logging.basicConfig(level=logging.DEBUG)`` or
``logging.getLogger("pydevmapper").setLevel(logging.DEBUG)`` with a handler.
The library never imports ``logging`` itself (it costs pydmsetup's start
a tenth of its imports): a program that has not imported it cannot have
asked for records, and pays one dictionary lookup per ioctl.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from logging import Logger

NAME = "pydevmapper"
DEBUG = 10  # logging.DEBUG, WARNING, without importing logging
WARNING = 30

_loggers: dict[str, Logger] = {}


def logger(child: str, level: int = DEBUG) -> Logger | None:
    """The ``pydevmapper.<child>`` logger if it would emit ``level`` records, else None."""
    found = _loggers.get(child)
    if found is None:
        logging = sys.modules.get("logging")
        if logging is None:
            return None
        found = _loggers[child] = logging.getLogger(f"{NAME}.{child}")
    return found if found.isEnabledFor(level) else None
