"""dmsetup's command table: each command's function and argument counts.

Every function takes the Session and the arguments left for it (for
repeatable commands, the current device first) and ``multiple`` (whether
output lines carry a ``name: `` prefix); it raises Failed after printing why.
The functions live by kind: device_commands (change devices),
query_commands (read them), udev_commands, name_commands.
"""

from __future__ import annotations

from collections.abc import Callable

from pydevmapper._namedtuple import NamedTuple
from pydevmapper.cli.session import Failed, Session


class Command(NamedTuple):
    target: str | Callable  # "module.function" under pydevmapper.cli, imported on use
    min_args: int
    max_args: int  # -1: any
    repeatable: int  # 0 no, 1 one device per argument, 2 and -S works

    @property
    def fn(self) -> Callable:
        if callable(self.target):
            return self.target
        module, _, name = self.target.rpartition(".")
        # start-up time: a run imports only the module of its own command.  __import__,
        # unlike importlib.import_module, shows in `python -X importtime`.
        return getattr(__import__(f"pydevmapper.cli.{module}", fromlist=[name]), name)


def help_(s: Session, args: list[str], multiple: bool) -> None:
    from pydevmapper.cli import texts

    s.error(texts.USAGE)
    if s.has("columns"):
        s.error(texts.FIELD_HELP)


def not_implemented(name: str):
    def run(s: Session, args: list[str], multiple: bool) -> None:
        s.error(f"pydmsetup: {name} is not implemented")
        raise Failed()
    return run


COMMANDS: dict[str, Command] = {
    "help": Command(help_, 0, 0, 0),
    "create": Command("device_commands.create", 0, 2, 0),
    "remove": Command("device_commands.remove", 0, -1, 2),
    "remove_all": Command("device_commands.remove_all", 0, 0, 0),
    "suspend": Command("device_commands.suspend", 0, -1, 2),
    "resume": Command("device_commands.resume", 0, -1, 2),
    "load": Command("device_commands.load", 0, 2, 0),
    "clear": Command("device_commands.clear", 0, -1, 2),
    "reload": Command("device_commands.load", 0, 2, 0),
    "wipe_table": Command("device_commands.wipe_table", 0, -1, 2),
    "rename": Command("device_commands.rename", 1, 2, 0),
    "measure": Command(not_implemented("measure"), 0, -1, 2),
    "message": Command("device_commands.message", 2, -1, 0),
    "ls": Command("query_commands.ls", 0, 0, 0),
    "info": Command("query_commands.info", 0, -1, 1),
    "deps": Command("query_commands.deps", 0, -1, 2),
    "stats": Command(not_implemented("stats"), 1, -1, 1),
    "status": Command("query_commands.status", 0, -1, 2),
    "table": Command("query_commands.status", 0, -1, 2),
    "wait": Command("device_commands.wait", 0, 2, 0),
    "mknodes": Command("udev_commands.mknodes", 0, -1, 1),
    "mangle": Command("name_commands.mangle", 0, -1, 1),
    "udevcreatecookie": Command("udev_commands.udevcreatecookie", 0, 0, 0),
    "udevreleasecookie": Command("udev_commands.udevreleasecookie", 0, 1, 0),
    "udevflags": Command("udev_commands.udevflags", 1, 1, 0),
    "udevcomplete": Command("udev_commands.udevcomplete", 1, 1, 0),
    "udevcomplete_all": Command("udev_commands.udevcomplete_all", 0, 1, 0),
    "udevcookies": Command("udev_commands.udevcookies", 0, 0, 0),
    "target-version": Command("query_commands.target_version", 1, -1, 1),
    "targets": Command("query_commands.targets", 0, 0, 0),
    "version": Command("query_commands.version", 0, 0, 0),
    "setgeometry": Command("device_commands.setgeometry", 5, 5, 0),
    "splitname": Command("name_commands.splitname", 1, 2, 0),
}
