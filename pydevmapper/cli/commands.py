# SPDX-License-Identifier: LGPL-2.1-or-later
"""dmsetup's command table: each command's function and argument counts.

Every function takes the Session and the arguments left for it (for
repeatable commands, the current device first) and ``multiple`` (whether
output lines carry a ``name: `` prefix); it raises Failed after printing why.
The functions live by kind: device_commands (change devices),
query_commands (read them), udev_commands, name_commands.  ``stats`` has
subcommands and its own flow: stats_commands.
"""

from __future__ import annotations

from collections.abc import Callable

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.cli.session import Session

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from types import ModuleType

    # A command's function: (session, arguments, multiple).
    CommandFn = Callable[[Session, list[str], bool], None]


class Command(NamedTuple):
    function: Callable[[], CommandFn]  # returns the function, importing its module on first use
    min_args: int
    max_args: int  # -1: any
    repeatable: int  # 0 no, 1 one device per argument, 2 and -S works

    @property
    def fn(self) -> CommandFn:
        return self.function()


# Each command module is imported by the run that needs it (start-up time:
# tests/unit/test_cli_startup.py), through these.
def _device() -> ModuleType:
    from pydevmapper.cli import device_commands

    return device_commands


def _query() -> ModuleType:
    from pydevmapper.cli import query_commands

    return query_commands


def _udev() -> ModuleType:
    from pydevmapper.cli import udev_commands

    return udev_commands


def _names() -> ModuleType:
    from pydevmapper.cli import name_commands

    return name_commands


def help_(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper.cli import texts

    s.error(texts.USAGE)
    if s.plan.columns:
        s.error(texts.FIELD_HELP)


COMMANDS: dict[str, Command] = {
    "help": Command(lambda: help_, 0, 0, 0),
    "create": Command(lambda: _device().create, 0, 2, 0),
    "remove": Command(lambda: _device().remove, 0, -1, 2),
    "remove_all": Command(lambda: _device().remove_all, 0, 0, 0),
    "suspend": Command(lambda: _device().suspend, 0, -1, 2),
    "resume": Command(lambda: _device().resume, 0, -1, 2),
    "load": Command(lambda: _device().load, 0, 2, 0),
    "clear": Command(lambda: _device().clear, 0, -1, 2),
    "reload": Command(lambda: _device().load, 0, 2, 0),
    "wipe_table": Command(lambda: _device().wipe_table, 0, -1, 2),
    "rename": Command(lambda: _device().rename, 1, 2, 0),
    "measure": Command(lambda: _query().status, 0, -1, 2),
    "message": Command(lambda: _device().message, 2, -1, 0),
    "ls": Command(lambda: _query().ls, 0, 0, 0),
    "info": Command(lambda: _query().info, 0, -1, 1),
    "deps": Command(lambda: _query().deps, 0, -1, 2),
    "status": Command(lambda: _query().status, 0, -1, 2),
    "table": Command(lambda: _query().status, 0, -1, 2),
    "wait": Command(lambda: _device().wait, 0, 2, 0),
    "mknodes": Command(lambda: _udev().mknodes, 0, -1, 1),
    "mangle": Command(lambda: _names().mangle, 0, -1, 1),
    "udevcreatecookie": Command(lambda: _udev().udevcreatecookie, 0, 0, 0),
    "udevreleasecookie": Command(lambda: _udev().udevreleasecookie, 0, 1, 0),
    "udevflags": Command(lambda: _udev().udevflags, 1, 1, 0),
    "udevcomplete": Command(lambda: _udev().udevcomplete, 1, 1, 0),
    "udevcomplete_all": Command(lambda: _udev().udevcomplete_all, 0, 1, 0),
    "udevcookies": Command(lambda: _udev().udevcookies, 0, 0, 0),
    "target-version": Command(lambda: _query().target_version, 1, -1, 1),
    "targets": Command(lambda: _query().targets, 0, 0, 0),
    "version": Command(lambda: _query().version, 0, 0, 0),
    "setgeometry": Command(lambda: _device().setgeometry, 5, 5, 0),
    "splitname": Command(lambda: _names().splitname, 1, 2, 0),
}
