# SPDX-License-Identifier: LGPL-2.1-or-later
"""dmsetup's name commands: splitname (user space only) and mangle.

Each parses its arguments, calls the API and formats; see commands.py for
the calling convention.
"""

from __future__ import annotations

from pydevmapper import mangling
from pydevmapper.cli import names
from pydevmapper.cli.query_commands import for_all
from pydevmapper.cli.session import Failed, Session


def splitname(s: Session, args: list[str], multiple: bool) -> None:
    s.report_rows.append(names.split_name(args[0], args[1] if len(args) == 2 else "LVM"))


def mangle(s: Session, args: list[str], multiple: bool) -> None:
    if not args and not s.has("uuid") and not s.has("major"):
        return for_all(s, mangle, [])
    device = s.device(args[0] if args else None)
    dev = s.info(device)
    name = args[0] if args else dev.name
    # The target form: --manglename, else libdm's built-in default (the
    # environment is not read here); the lookups above were not mangled.
    mode = (s.value("manglename") or "auto").lower() if s.has("manglename") else "auto"
    if mode == "auto":
        for what, text in (("name", name), ("UUID", dev.uuid)):
            if "\\x5cx" in text:
                extra = ("rename the device" if what == "name" else "correct the device UUID")
                s.error(f'The {what} "{text}" seems to be mangled more than once. '
                        f"Manual intervention required to {extra}.")
                raise Failed()
    new_name, new_uuid = _fixed(s, name, "name", mode), _fixed(s, dev.uuid, "UUID", mode)
    if new_uuid != dev.uuid:
        s.error(f"{name}: {dev.uuid}: UUID in incorrect form. ")
        s.error("Unable to change device UUID. The device must be deactivated first.")
        raise Failed()
    if new_name == name:
        uuid = dev.uuid or "[no UUID]"
        s.write(f"{name}: {uuid}: name {'and UUID ' if dev.uuid else ''}already in correct form\n")
        return
    s.write(f"{name}: renaming to {new_name}\n")
    s.call("rename", device, lambda: s.control.rename(device, new_name))


def _fixed(s: Session, text: str, what: str, mode: str) -> str:
    """The form ``mode`` wants: unmangled for none, else mangled as auto
    mangles (libdm mangles for this command as auto, even for hex)."""
    if mode == "none":
        return mangling.unmangle(text, "none")
    return s.mangled(text, "none", what)
