# SPDX-License-Identifier: LGPL-2.1-or-later
"""The library's log: the ``pydevmapper`` logger and its children.

``pydevmapper.ioctl``
    DEBUG: every command sent (device, flags in and out, buffer size, the
    reply's data size or the errno, the time it took), buffers grown and
    asked again, and the kernel-log lines a failure was explained with.
``pydevmapper.udev``
    DEBUG: each wait on a udev cookie and how it ended; WARNING: a wait
    that timed out.
``pydevmapper.stacks``
    WARNING: a device ``remove_stack`` left in place, and why.

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
        # Its names are missing while another thread is still importing it.
        if logging is None or not hasattr(logging, "NullHandler"):
            return None
        if not _loggers:
            # A library's records go nowhere until the program says where:
            # without this, logging's last-resort handler prints warnings.
            logging.getLogger(NAME).addHandler(logging.NullHandler())
        found = _loggers[child] = logging.getLogger(f"{NAME}.{child}")
    return found if found.isEnabledFor(level) else None
