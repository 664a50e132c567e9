# SPDX-License-Identifier: LGPL-2.1-or-later
"""Code as a user of the package writes it, for the type checkers only.

scripts/check-types.sh runs mypy --strict and pyright (strict) over this
file as over the package: it must type-check from the public names alone
(``import pydevmapper as dm``, ``dm.targets``).  Nothing here is run, and
nothing here needs a kernel.
"""

from __future__ import annotations

import pydevmapper as dm
from pydevmapper import targets as t


def describe(ctl: dm.Control, name: str) -> dm.DeviceInfo:
    info = ctl.info(name)
    flags: dm.DMFlag = info.flags
    state = "suspended" if info.suspended else "active"
    print(f"{info.name} {info.major}:{info.minor} {state} {flags!r} open={info.open_count}")
    return info


def list_all(ctl: dm.Control) -> dict[str, dm.DevNo]:
    found: dict[str, dm.DevNo] = {}
    for listed in ctl.list_devices():
        item: dm.ListedDevice = listed
        found[item.name] = dm.DevNo(item.major, item.minor)
        event: int | None = item.event_nr
        uuid: str | None = item.uuid
        print(event, uuid)
    version: tuple[int, int, int] = ctl.version()
    print(version, [(v.name, v.version) for v in ctl.targets()])
    return found


def tables(length: int, under: dm.DevNo) -> list[dm.Table]:
    zero = dm.Table.single(length, "zero")
    linear = dm.Table.single(length, t.Linear(under, 2048))
    text = dm.Table.parse(f"0 {length} linear {under} 0\n")
    two = dm.Table([dm.Target(0, 8, "zero"), t.Linear(under).target(8, length - 8)])
    first: dm.Target = two[0]
    rest: tuple[dm.Target, ...] = two[1:]
    size: int = zero.size
    print(first.start, first.length, first.type, first.params, len(rest), size, zero.format())
    targets: list[dm.Target] = dm.parse_targets(str(linear))
    print(targets, text == linear)
    return [zero, linear, text, two]


def thin_pool(ctl: dm.Control, meta: dm.DevNo, data: dm.DevNo, sectors: int) -> int | None:
    pool = t.ThinPool(meta, data, data_block_size=128, low_water_mark=64)
    with ctl.create_device("pool", dm.Table.single(sectors, pool)) as dev:
        ctl.message(dev.devno, 0, t.ThinPool.create_thin(1))
        thin = dm.targets.Thin(dev.devno, 1)
        ctl.create_device("thin", dm.Table([thin.target(0, sectors)])).remove()
        status = dev.status()[0].parsed()
        if isinstance(status, t.ThinPoolStatus) and not status.failed:
            return status.used_data_blocks
    return None


def read_back(dev: dm.Device) -> list[t.Params]:
    live = dev.table()
    if live is None:
        return []
    parsed: list[t.Params] = [target.parsed() for target in live]
    for params in parsed:
        if isinstance(params, t.Linear):
            device: dm.DevNo = params.device
            print(device.major, device.minor, params.offset)
        elif isinstance(params, t.Crypt):
            print(params.cipher, params.key, params.to_dict())
        elif isinstance(params, t.Unknown):
            print(params.type, params.params)
    statuses: list[t.Status] = [line.parsed() for line in dev.status()]
    for status in statuses:
        if isinstance(status, t.SnapshotStatus):
            print(status.state, status.allocated_sectors, status.total_sectors)
        elif isinstance(status, t.UnknownStatus):
            print(status.type, status.status)
    return parsed


def typed_parameters(a: dm.DevNo, b: dm.DevNo) -> list[t.Params]:
    key = t.Secret("00" * 32)
    return [
        t.Striped(64, (t.Stripe(a, 0), t.Stripe(b, 0))),
        t.Crypt("aes-xts-plain64", key, 0, a, 0, allow_discards=True),
        t.Flakey(a, 0, up_interval=5, down_interval=1, error_reads=True),
        t.Snapshot(a, b, "P", 8),
        t.Raid("raid1", 0, (t.RaidDevice(None, a), t.RaidDevice(None, b))),
        t.Multipath((t.PathGroup((t.MultipathPath(a), t.MultipathPath(b))),)),
        t.Linear(t.as_devno("/dev/loop0")),
        t.ThinPool.parse(f"{a} {b} 128 64 0"),
    ]


def messages(ctl: dm.Control, pool: dm.DevNo) -> str | None:
    msg: t.Message = t.ThinPool.create_snap(2, 1)
    reply: str | None = ctl.message(pool, 0, msg)
    print(msg.text(), msg.secure, reply)
    return dm.message(pool, 0, "release_metadata_snap")


def errors(ctl: dm.Control, name: str) -> str:
    try:
        ctl.remove(name, retry=5.0)
    except dm.DeviceNotFoundError:
        return "gone already"
    except dm.DeviceBusyError as exc:
        return f"busy: {exc.errno} {exc.command} {exc.device}"
    except dm.DMError as exc:
        kernel: str | None = exc.kernel_message
        return f"{exc}: {kernel}"
    except dm.ValidationError as exc:
        return f"bad name: {exc}"
    try:
        t.Linear(t.as_devno("not a device"))
    except t.ParameterError as exc:
        return f"{exc.target_type} {exc.field}"
    try:
        dm.Table.parse("0 x zero")
    except dm.TableSyntaxError as exc:
        return f"line {exc.lineno}"
    return "removed"


def module_functions(name: str) -> list[dm.TargetStatus]:
    ctl: dm.Control = dm.default_control()
    print(dm.version(), dm.list_devices(), dm.target_versions(), ctl.node_path(name))
    dev: dm.Device = dm.create_device(name, "0 8 zero", readonly=True)
    dm.reload(dev.devno, dm.Table.single(16, "zero"), noflush=True)
    table: dm.Table | None = dm.table(name)
    print(table, dm.info(dm.Uuid("LVM-x")), dm.info(dm.Name(name)))
    statuses = dm.status(name)
    dm.remove(name, deferred=True)
    return statuses


def graph(ctl: dm.Control) -> list[str]:
    tree: dm.DeviceGraph = dm.dependency_graph(ctl)
    names: list[str] = []
    for root in tree.roots():
        node: dm.DeviceNode = tree[root]
        names.append(node.name)
        names += [tree[child].name for child in tree.children(root)]
    return names


def main() -> None:
    with dm.Control() as ctl:
        under = dm.DevNo(7, 0)
        describe(ctl, "x")
        list_all(ctl)
        tables(2048, under)
        print(thin_pool(ctl, under, dm.DevNo(7, 1), 1 << 20), typed_parameters(under, dm.DevNo(7, 1)))
        print(messages(ctl, under), errors(ctl, "x"), graph(ctl), module_functions("y"))
        print(read_back(ctl.device("x")), dm.__version__, dm.default_dev_dir())
