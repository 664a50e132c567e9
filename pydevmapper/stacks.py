# SPDX-License-Identifier: LGPL-2.1-or-later
"""Whole stacks of mapped devices, in the order device-mapper needs::

    import pydevmapper as dm

    with dm.Control() as ctl:
        dm.suspend_stack(ctl, "vol")       # vol, then what is under it
        dm.resume_stack(ctl, "vol")        # the other way round
        dm.reload_stack(ctl, {"vol": new_top, "vol-data": new_data})
        dm.remove_stack(ctl, "vol")        # vol and what only it used

A device's *stack* is the device and every mapped device beneath it that
nothing outside the stack uses: a thin volume's pool, the pool's metadata
and data devices, but not a device another stack shares.  The order is the
one libdevmapper's ``dm_tree`` keeps:

- suspend top-down: a device is quiesced before the device under it, so a
  lower suspend never waits on I/O an upper device still sends it;
- resume bottom-up: a device comes back only onto live devices;
- remove top-down: a device is busy while a table above it uses it.

Each operation changes nothing when it is refused (a device not found, a
table that does not parse, a device used from outside), and puts back what
it changed when a step fails, except ``remove_stack``: a removed device
cannot be put back, so it leaves in place a lower device it finds held
(and what is under that) instead of failing half-way.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from pydevmapper import log
from pydevmapper._namedtuple import NamedTuple
from pydevmapper.channel import DEV_REMOVE, DEV_STATUS
from pydevmapper.deptree import DeviceGraph, dependency_graph
from pydevmapper.errors import (
    DeviceBusyError,
    DeviceNotFoundError,
    DMError,
    RollbackError,
    StackConflictError,
    ValidationError,
)
from pydevmapper.operations import create_device, put_back, quietly, remove, remove_quietly
from pydevmapper.tables import Table, Target, as_table
from pydevmapper.types import DevNo, check_id, describe

if TYPE_CHECKING:
    from typing import Any, Union

    from pydevmapper.control import Control
    from pydevmapper.types import DeviceId, DeviceInfo

    #: what a declared device's table may be
    TableSpec = Union[str, Table, Iterable[Target],
                      Callable[[dict[str, DevNo]], Union[str, Table, Iterable[Target]]]]


def stack_members(ctl: Control, device: DeviceId, *, graph: DeviceGraph | None = None) -> list[DevNo]:
    """The device and the mapped devices of its stack, top-down: each after
    every member whose live table uses it.  ``graph``: a graph already read
    (``dependency_graph``), else one is read now."""
    graph, top = _read(ctl, device, graph)
    return _members(graph, top)


def _read(ctl: Control, device: DeviceId, graph: DeviceGraph | None = None) -> tuple[DeviceGraph, DevNo]:
    """The graph (read now unless given) and the device's number in it."""
    top = ctl.info(check_id(device)).devno
    if graph is None:
        graph = dependency_graph(ctl)
    if top not in graph or graph[top].info is None:
        # Removed between the two reads, or made after the given graph.
        raise DeviceNotFoundError(errno.ENXIO, DEV_STATUS.name, describe(device), None,
                                  "not in the dependency graph")
    return graph, top


def _members(graph: DeviceGraph, top: DevNo) -> list[DevNo]:
    # Every mapped device reachable below the top, then a topological walk
    # (a device is reached only once every user of it below the top has
    # been), keeping a device only if all its users were kept.
    below: list[DevNo] = []
    todo = [top]
    while todo:
        devno = todo.pop()
        if devno in below or devno not in graph or graph[devno].info is None:
            continue
        below.append(devno)
        todo.extend(reversed(graph[devno].uses))
    users_left = {d: sum(1 for u in graph[d].used_by if u in below) for d in below}
    kept: list[DevNo] = []
    ready = [top]
    while ready:
        devno = ready.pop(0)
        node = graph[devno]
        if devno == top or all(u in kept for u in node.used_by):
            kept.append(devno)
        for dep in node.uses:
            if dep in users_left:
                users_left[dep] -= 1
                if users_left[dep] == 0:
                    ready.append(dep)
    return kept


def suspend_stack(ctl: Control, device: DeviceId, *, noflush: bool = False,
                  nolockfs: bool = False) -> list[DeviceInfo]:
    """Suspend the device and its stack, top-down; a member already
    suspended is left as it is.  If a suspend fails, those this call
    suspended are resumed (bottom-up, a table waiting inactive kept
    inactive) before the error is raised.  Returns each member's state,
    top-down."""
    graph, top = _read(ctl, device)
    order = _members(graph, top)
    states: dict[DevNo, DeviceInfo] = {}
    done: list[DevNo] = []
    try:
        for devno in order:
            info = graph[devno].info
            if info is not None and info.suspended:
                states[devno] = info
                continue
            states[devno] = ctl.suspend(devno, noflush=noflush, nolockfs=nolockfs)
            done.append(devno)
    except BaseException:
        for devno in reversed(done):
            quietly(_resume_keeping_inactive, ctl, devno, states[devno])
        raise
    return [states[d] for d in order]


def _resume_keeping_inactive(ctl: Control, devno: DevNo, info: DeviceInfo) -> None:
    # A resume swaps in the inactive table: set it aside and load it again.
    if not info.inactive_table:
        ctl.resume(devno)
        return
    waiting = ctl.table(devno, inactive=True)
    readonly = ctl.info(devno, inactive=True).read_only
    ctl.clear(devno)
    ctl.resume(devno)
    if waiting is not None:
        ctl.load(devno, waiting, readonly=readonly)


def resume_stack(ctl: Control, device: DeviceId, *, noflush: bool = False,
                 nolockfs: bool = False) -> list[DeviceInfo]:
    """Resume the device and its stack, bottom-up: each member that is
    suspended or has a table waiting (which goes live; ``noflush`` and
    ``nolockfs`` apply to the suspend that swap implies on a running
    device).  A failed resume is raised; the members below it stay
    resumed.  Returns each member's state, bottom-up."""
    graph, top = _read(ctl, device)
    order = _members(graph, top)
    states: list[DeviceInfo] = []
    for devno in reversed(order):
        info = graph[devno].info
        if info is not None and not (info.suspended or info.inactive_table):
            states.append(info)
            continue
        states.append(ctl.resume(devno, noflush=noflush, nolockfs=nolockfs))
    return states


def remove_stack(ctl: Control, device: DeviceId, *, retry: float = 5.0) -> list[str]:
    """Remove the device, then each mapped device beneath it that nothing
    else holds, top-down; returns the names removed, in that order.

    Refused before anything is removed if another mapped device uses the
    device.  A lower device that is still held once the devices above it
    are gone (open by a mount or a program, or used by a device outside the
    stack) stays, with everything beneath it, and is named in the
    ``pydevmapper.stacks`` log.  Each removal retries for up to ``retry``
    seconds while the device is busy (udev's workers open new and closed
    devices briefly).
    """
    graph, top = _read(ctl, device)
    users = sorted(graph[u].name or str(u) for u in graph[top].used_by)
    if users:
        raise DeviceBusyError(errno.EBUSY, DEV_REMOVE.name, describe(device), None,
                              f"used by {', '.join(users)}: remove those first")
    order = _members(graph, top)
    removed: list[DevNo] = []
    names: list[str] = []
    for devno in order:
        node = graph[devno]
        info = node.info
        assert info is not None  # members are mapped devices that were read
        if devno != top:
            why = None
            if not all(u in removed for u in node.used_by):
                why = "a device above it stayed"
            else:
                # Every user is gone, and they were all in the stack: an
                # open now is a holder from outside.
                held = ctl.info(devno).open_count
                if held:
                    why = f"open {held} time(s) from outside the stack"
            if why is None:
                try:
                    remove(ctl, devno, retry=retry)
                except DeviceBusyError:
                    why = f"still busy after {retry} s"
            if why is not None:
                _note(f"remove_stack({describe(device)}): {info.name} stays: {why}")
                continue
        else:
            remove(ctl, devno, retry=retry)
        removed.append(devno)
        names.append(info.name)
    return names


def _opens_within(ctl: Control, graph: DeviceGraph, devnos: list[DevNo]) -> dict[DevNo, int]:
    """How often each of ``devnos`` is opened by the others' tables: once per
    mapped device that uses it, in its live table, its inactive one or
    both (the kernel opens a device once per mapped device and shares the
    open between its tables).  An open count above that is a holder from
    outside: a mount, a program, a device not among them."""
    opens = dict.fromkeys(devnos, 0)
    for devno in devnos:
        info = graph[devno].info
        uses = set(graph[devno].uses)
        if info is not None and info.inactive_table:
            uses.update(ctl.deps(devno, inactive=True))
        for dep in uses:
            if dep in opens:
                opens[dep] += 1
    return opens


def reload_stack(ctl: Control, tables: Mapping[DeviceId, Table | str | Iterable[Target]], *,
                 readonly: bool = False, noflush: bool = False,
                 nolockfs: bool = False) -> list[DeviceInfo]:
    """Give several devices of a stack new tables as one operation.

    Every table is checked and every device looked up (each must have a
    live table) before anything is sent; then each new table is loaded
    (``readonly``: all of them read-only), the devices are suspended
    top-down and resumed bottom-up (the order taken from the live tables
    and the new ones).  On any failure the old tables, and read-only
    flags, are live again on every device and nothing waits inactive, or
    ``RollbackError`` says what could not be put back.  Returns each
    device's state, bottom-up.
    """
    wanted = [(check_id(d), as_table(t)) for d, t in tables.items()]
    infos = [ctl.info(d) for d, _ in wanted]
    devnos = [i.devno for i in infos]
    if len(set(devnos)) != len(devnos):
        raise ValidationError("reload_stack: two entries name the same device")
    if not devnos:
        return []
    old = {i.devno: (ctl.table(i.devno), i.read_only) for i in infos}
    bare = [i.name for i in infos if old[i.devno][0] is None]
    if bare:
        raise ValidationError(f"reload_stack replaces live tables; {', '.join(bare)} has none "
                              f"(load it and resume it instead)")
    loaded: list[DevNo] = []
    try:
        for devno, (_, table) in zip(devnos, wanted):
            ctl.load(devno, table, readonly=readonly)
            loaded.append(devno)
        graph = dependency_graph(ctl)
        below = {d: list(graph[d].uses) + ctl.deps(d, inactive=True) for d in devnos}
    except BaseException:
        for devno in loaded:
            quietly(ctl.clear, devno)
        raise
    order = top_down(devnos, graph, below)
    states: list[DeviceInfo] = []
    try:
        for devno in order:
            ctl.suspend(devno, noflush=noflush, nolockfs=nolockfs)
        for devno in reversed(order):
            states.append(ctl.resume(devno, noflush=noflush, nolockfs=nolockfs))
    except DMError as exc:
        left = put_back(ctl, order, old, noflush=noflush, nolockfs=nolockfs)
        if left:
            raise RollbackError(exc, left) from exc
        raise
    except BaseException:
        put_back(ctl, order, old, noflush=noflush, nolockfs=nolockfs)
        raise
    return states


def top_down(devnos: list[DevNo], graph: DeviceGraph,
             below: dict[DevNo, list[DevNo]] | None = None) -> list[DevNo]:
    """``devnos`` ordered so that a device comes before every one of them
    it reaches downwards (through any device: by ``below`` where it names
    the device, else by the graph's live tables); otherwise in the given
    order."""
    below = below if below is not None else {}
    def reach(start: DevNo) -> set[DevNo]:
        seen: set[DevNo] = set()
        todo = list(below[start] if start in below else graph[start].uses)
        while todo:
            devno = todo.pop()
            if devno in seen:
                continue
            seen.add(devno)
            if devno in below:
                todo.extend(below[devno])
            elif devno in graph:
                todo.extend(graph[devno].uses)
        return seen

    wanted = set(devnos)
    under = {d: reach(d) & wanted for d in devnos}
    order: list[DevNo] = []
    left = list(devnos)
    while left:
        # The first device nothing left above it reaches; with a cycle
        # (tables that use each other cannot both load) the first left.
        pick = next((d for d in left if not any(d in under[u] for u in left if u != d)), left[0])
        order.append(pick)
        left.remove(pick)
    return order


def _note(text: str) -> None:
    logger = log.logger("stacks", log.WARNING)
    if logger is not None:
        logger.warning("%s", text)


# -- declarative stacks ---------------------------------------------------------

class DeviceSpec(NamedTuple):
    """One mapped device of a declared stack, and the devices it is built on.

    ``table``: table text, a ``Table``, or targets; in text, ``{name}``
    stands for the device number of the device of that name in the same
    declaration (a child, most often), known only once it exists.  Or a
    function given those device numbers by name that returns the table.
    ``messages``: sent to the device, in order, when ``ensure_stack``
    creates it or gives it its first table (a thin pool's ``create_thin``);
    never to a device it adopts, as messages need not be idempotent
    (``create_thin 1`` twice is refused).
    """

    name: str
    table: TableSpec
    uuid: str | None = None
    readonly: bool = False
    children: tuple[DeviceSpec, ...] = ()
    messages: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | DeviceSpec) -> DeviceSpec:
        """From plain data (as JSON or YAML give it): a mapping with ``name``,
        ``table`` and optionally ``uuid``, ``readonly``, ``children`` (a list
        of such mappings) and ``messages`` (a list of strings).  A field of
        the wrong type is a ``ValidationError`` naming it."""
        if isinstance(data, DeviceSpec):
            data = data._asdict()
        if not isinstance(data, Mapping):
            raise ValidationError(f"a device of a stack is a mapping or a DeviceSpec, not {data!r}")
        unknown = set(data) - set(cls._fields)
        if unknown or "name" not in data or "table" not in data:
            raise ValidationError(f"a device of a stack needs 'name' and 'table' and may have "
                                  f"{', '.join(cls._fields[2:])}; got {sorted(data)}")
        name = data["name"]
        if not isinstance(name, str):
            raise ValidationError(f"a device's name is a string, not {name!r}")
        table: TableSpec = data["table"]
        if not (isinstance(data["table"], (str, Table, list, tuple)) or callable(data["table"])):
            raise ValidationError(f"{name}: table is text, a Table, targets or a function, not {table!r}")
        uuid = data.get("uuid")
        if uuid is not None and not isinstance(uuid, str):
            raise ValidationError(f"{name}: uuid is a string, not {uuid!r}")
        readonly = data.get("readonly", False)
        if not isinstance(readonly, bool):
            raise ValidationError(f"{name}: readonly is true or false, not {readonly!r}")
        children = data.get("children", ())
        messages = data.get("messages", ())
        for field, value in (("children", children), ("messages", messages)):
            if not isinstance(value, (list, tuple)):
                raise ValidationError(f"{name}: {field} is a list, not {value!r}")
        if not all(isinstance(m, str) for m in messages):
            raise ValidationError(f"{name}: messages are strings, not {list(messages)!r}")
        return cls(name, table, uuid, readonly, tuple(cls.from_data(c) for c in children), tuple(messages))

    def walk(self) -> Iterator[DeviceSpec]:
        """This device and all below it, each after every device it is built on."""
        for child in self.children:
            yield from child.walk()
        yield self


class Ensured(NamedTuple):
    """What ``ensure_stack`` found and did, by device name, bottom-up."""

    created: list[str]
    #: devices that existed without a live table (a creation cut short) and
    #: were given theirs, or were suspended and resumed
    completed: list[str]
    adopted: list[str]
    devices: dict[str, DevNo]


def ensure_stack(ctl: Control, stack: DeviceSpec | Mapping[str, Any]) -> Ensured:
    """Make the declared stack exist: create the devices that are missing,
    adopt those that match the declaration, bottom-up.

    Refused with ``StackConflictError`` naming every difference, before
    anything is changed, when a device exists with another table, uuid or
    read-only flag, or has a table waiting inactive that is not the
    declared one.  A device left without a live table, or suspended, by
    an interrupted creation is completed.  If a step fails, the devices
    this call created are removed again.  Run twice, the second run adopts
    everything.
    """
    spec = DeviceSpec.from_data(stack)
    order = list(spec.walk())
    names = [s.name for s in order]
    if len(set(names)) != len(names):
        raise ValidationError(f"a stack names a device twice: {names}")
    for s in order:
        check_id(s.name)
    devnos: dict[str, DevNo] = {}
    plans: list[tuple[DeviceSpec, DeviceInfo | None]] = []
    conflicts: list[str] = []
    for s in order:
        try:
            info: DeviceInfo | None = ctl.info(s.name)
        except DeviceNotFoundError:
            info = None
        if info is not None:
            devnos[s.name] = info.devno
        plans.append((s, info))
    # Every existing device checked against what is declared, before any change.
    for s, info in plans:
        if info is not None:
            conflicts += [f"{s.name}: {d}" for d in _conflicts(ctl, s, info, devnos)]
    if conflicts:
        raise StackConflictError(spec.name, conflicts)
    created: list[str] = []
    completed: list[str] = []
    adopted: list[str] = []
    try:
        for s, info in plans:
            if info is None:
                dev = create_device(ctl, s.name, _render(s, devnos), uuid=s.uuid, readonly=s.readonly)
                created.append(s.name)
                devnos[s.name] = dev.devno
                for message in s.messages:
                    ctl.message(dev.devno, 0, message)
            elif not info.live_table:
                if not info.inactive_table:  # else the declared one waits
                    ctl.load(info.devno, _render(s, devnos), readonly=s.readonly)
                ctl.resume(info.devno)
                completed.append(s.name)
                for message in s.messages:
                    ctl.message(info.devno, 0, message)
            elif info.suspended or info.inactive_table:
                ctl.resume(info.devno)
                completed.append(s.name)
            else:
                adopted.append(s.name)
    except BaseException:
        for name in reversed(created):
            remove_quietly(ctl, devnos[name])
        raise
    return Ensured(created, completed, adopted, devnos)


def _conflicts(ctl: Control, spec: DeviceSpec, info: DeviceInfo, devnos: Mapping[str, DevNo]) -> list[str]:
    """How an existing device differs from its declaration."""
    found: list[str] = []
    if spec.uuid is not None and info.uuid != spec.uuid:
        found.append(f"uuid is {info.uuid!r}, declared {spec.uuid!r}")
    if not (info.live_table or info.inactive_table):
        return found  # made, never loaded: completed with the declared table
    missing = [c.name for c in spec.children if c.name not in devnos]
    if missing:
        return [*found, f"exists, but {', '.join(missing)} under it does not"]
    wanted = _render(spec, devnos)
    mode = {False: "read-write", True: "read-only"}
    if info.live_table:
        found += _differences(ctl.table(info.devno), wanted)
        if info.read_only != spec.readonly:
            found.append(f"is {mode[info.read_only]}, declared {mode[spec.readonly]}")
    if info.inactive_table:
        # Completing or resuming the device would make it live.
        waiting = ctl.info(info.devno, inactive=True).read_only
        differs = _differences(ctl.table(info.devno, inactive=True), wanted)
        if waiting != spec.readonly:
            differs.append(f"is {mode[waiting]}, declared {mode[spec.readonly]}")
        found += [f"inactive table: {d}" for d in differs]
    return found


def teardown_stack(ctl: Control, stack: DeviceSpec | Mapping[str, Any], *, retry: float = 5.0) -> list[str]:
    """Remove the declared stack's devices that exist, top-down; returns
    their names.  Exactly those, and only if all can go: refused before
    anything is removed if a device of a declared name has another uuid
    (``StackConflictError``), or a device outside the declaration uses one
    of them or one is open from outside (a mount, a program) for longer
    than ``retry`` seconds (``DeviceBusyError``)."""
    spec = DeviceSpec.from_data(stack)
    declared = {s.name: s for s in spec.walk()}
    graph = dependency_graph(ctl)
    by_name = {n.name: n for n in graph if n.info is not None}
    ours = [by_name[name] for name in reversed(declared) if name in by_name]
    conflicts = [f"{n.name}: uuid is {n.info.uuid!r}, declared {declared[n.name].uuid!r}"
                 for n in ours if n.info is not None and declared[n.name].uuid not in (None, n.info.uuid)]
    if conflicts:
        raise StackConflictError(spec.name, conflicts)
    mine = [n.devno for n in ours]
    for node in ours:
        outside = [graph[u].name or str(u) for u in node.used_by if u not in mine]
        if outside:
            raise DeviceBusyError(errno.EBUSY, DEV_REMOVE.name, node.name, None,
                                  f"used by {', '.join(outside)}, which the stack does not declare")
    wait_unheld(ctl, mine, retry, graph=graph)
    removed: list[str] = []
    for devno in top_down(mine, graph):
        remove(ctl, devno, retry=retry)
        removed.append(graph[devno].name)
    return removed


def wait_unheld(ctl: Control, devnos: list[DevNo], retry: float, *, graph: DeviceGraph | None = None,
                why: str = "from outside the stack") -> None:
    """Wait up to ``retry`` seconds until none of ``devnos`` is open from
    outside them (udev's workers open a device briefly after a change);
    else raise ``DeviceBusyError`` naming the first still held and ``why``
    that matters."""
    if graph is None:
        graph = dependency_graph(ctl)
    opens = _opens_within(ctl, graph, devnos)
    deadline = time.monotonic() + retry
    pause = 0.005
    for devno in devnos:
        while True:
            info = ctl.info(devno)
            held = info.open_count - opens[devno]
            if held <= 0:
                break
            if time.monotonic() + pause > deadline:
                raise DeviceBusyError(errno.EBUSY, DEV_REMOVE.name, info.name, None,
                                      f"open {held} time(s) {why}")
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


_PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")


def _render(spec: DeviceSpec, devnos: Mapping[str, DevNo]) -> Table:
    table = spec.table
    if callable(table):
        return as_table(table(dict(devnos)))
    if isinstance(table, str):
        def devno_of(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in devnos:
                raise ValidationError(f"the table of {spec.name} names {{{name}}}, "
                                      f"which is no device of the stack that exists")
            return str(devnos[name])
        return as_table(_PLACEHOLDER.sub(devno_of, table))
    return as_table(table)


def _differences(live: Table | None, wanted: Table) -> list[str]:
    """How a live table differs from the declared one, a line per target;
    parameters compare in their typed form where the target type is known
    (the kernel prints some normalised)."""
    have = list(live or [])
    found: list[str] = []
    if len(have) != len(wanted):
        found.append(f"{len(have)} target(s) live, {len(wanted)} declared")
    for i, (got, want) in enumerate(zip(have, wanted)):
        same = (got.start, got.length, got.type) == (want.start, want.length, want.type)
        if same and " ".join(got.params.split()) != " ".join(want.params.split()):
            try:
                same = got.parsed() == want.parsed()
            except (ValueError, TypeError):
                same = False
        if not same:
            found.append(f"target {i} is `{got}`, declared `{want}`")
    return found
