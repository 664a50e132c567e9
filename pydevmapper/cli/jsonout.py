# SPDX-License-Identifier: LGPL-2.1-or-later
"""``--json``: pydmsetup's machine-readable output (not in dmsetup).

The schema is stable: fields are only ever added.  Every document is one
JSON object followed by a newline.

- ``version``: ``{"library": str, "driver": str | null}``
- ``targets``: ``{"targets": [{"name": str, "version": [int, int, int]}]}``
- ``ls``: ``{"devices": [{"name": str, "major": int, "minor": int,
  "uuid": str | null, "event_nr": int | null}]}`` (null: the kernel is too
  old to report it)
- ``info``: ``{"devices": [DEVICE]}`` where DEVICE is ``{"name", "uuid"
  (str, "" for none), "major", "minor", "open_count", "event_nr",
  "target_count", "read_ahead" (sectors or null), "suspended",
  "read_only", "live_table", "inactive_table", "deferred_remove"
  (booleans)}``
- ``deps``: ``{"devices": [{"name", "uuid", "major", "minor",
  "deps": [{"major": int, "minor": int}]}]}``
- ``table`` / ``status``: ``{"devices": [{"name", "uuid", "major",
  "minor", "targets": [{"start": int, "length": int, "type": str,
  "params": str, "parsed": {...} | null}]}]}`` (``params`` is the status
  line for ``status``; table keys are hidden unless ``--showkeys``, as in
  the text output; ``parsed`` holds every field of the typed parameters or
  status from ``pydevmapper.targets``, null for a target type it does not
  know, with ``parse_error`` when the text does not parse)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydevmapper.cli.keys import hide_keys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pydevmapper.types import DeviceInfo, DevNo, ListedDevice, TargetVersion


def dump(doc: dict[str, object]) -> str:
    import json  # only --json runs pay for it

    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def version(library: str, driver: str | None) -> str:
    return dump({"library": library, "driver": driver})


def targets(found: Iterable[TargetVersion]) -> str:
    return dump({"targets": [{"name": t.name, "version": list(t.version)} for t in found]})


def ls(devices: Iterable[ListedDevice]) -> str:
    return dump({"devices": [{"name": d.name, "major": d.major, "minor": d.minor,
                              "uuid": d.uuid, "event_nr": d.event_nr} for d in devices]})


def _device(dev: DeviceInfo) -> dict[str, object]:
    return {"name": dev.name, "uuid": dev.uuid, "major": dev.major, "minor": dev.minor}


def info(dev: DeviceInfo, read_ahead: int | None) -> dict[str, object]:
    doc = _device(dev)
    doc.update(open_count=dev.open_count, event_nr=dev.event_nr,
               target_count=dev.target_count, read_ahead=read_ahead,
               suspended=dev.suspended, read_only=dev.read_only,
               live_table=dev.live_table, inactive_table=dev.inactive_table,
               deferred_remove=dev.deferred_remove)
    return doc


def deps(dev: DeviceInfo, used: Iterable[DevNo]) -> dict[str, object]:
    doc = _device(dev)
    doc["deps"] = [{"major": d.major, "minor": d.minor} for d in used]
    return doc


def targets_of(dev: DeviceInfo, lines: Sequence[tuple[int, int, str, str]], cmd: str,
               showkeys: bool = False) -> dict[str, object]:
    """One device of ``table``/``status``: ``lines`` are (start, length, type,
    params-or-status); table keys are zeroed unless ``showkeys``."""
    doc = _device(dev)
    doc["targets"] = [{"start": s, "length": n, "type": t,
                       "params": hide_keys(t, p) if cmd == "table" and not showkeys else p,
                       **_parsed(t, p, cmd, showkeys)}
                      for s, n, t, p in lines]
    return doc


def _parsed(ttype: str, text: str, cmd: str, showkeys: bool) -> dict[str, object]:
    """``"parsed"``: every field of the typed parameters or status
    (pydevmapper.targets), or null for a target it does not know; keys show
    as "<secret>" unless ``showkeys``.  Text that does not parse gives null
    and ``"parse_error"``."""
    from pydevmapper import targets

    cls = targets.params_class(ttype)
    if cls is None:
        return {"parsed": None}
    try:
        typed = cls.parse(text) if cmd == "table" else cls.Status.parse(text)
    except targets.ParameterError as exc:
        return {"parsed": None, "parse_error": str(exc)}
    return {"parsed": typed.to_dict(reveal=showkeys)}


def devices(rows: list[dict[str, object]]) -> str:
    return dump({"devices": rows})
