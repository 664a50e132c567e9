# SPDX-License-Identifier: LGPL-2.1-or-later
"""The walkthrough: basic_target over a loop file, through the API, step by step.

    python -m pydevmapper.walkthrough [--module PATH/basic_target.ko]

Needs root and a kernel with device-mapper (``scripts/run-walkthrough.sh``
boots a guest when this host has none).  It loads basic_target, attaches a
loop file, creates a device over it, moves data through it, shows it with the
CLI, and removes everything again, also when a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import subprocess
import sys
import tempfile
from collections.abc import Generator

import pydevmapper as dm
from pydevmapper import kmod, loopdev, targets

MIB = 1024 * 1024
OFFSET = 2048  # sectors: the device begins 1 MiB into the loop file


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(text: str) -> None:
    print(f"   {text}", flush=True)


@contextlib.contextmanager
def basic_target_loaded(path: str) -> Generator[None, None, None]:
    if kmod.is_loaded("basic_target"):
        show("basic_target is already loaded; leaving it as found")
        yield
        return
    kmod.load_module(path)
    show(f"loaded {path}")
    try:
        yield
    finally:
        kmod.unload_module("basic_target")
        show("unloaded basic_target")


@contextlib.contextmanager
def loop_file(size_mib: int) -> Generator[loopdev.LoopDevice, None, None]:
    with tempfile.TemporaryDirectory(prefix="pydm-walkthrough-") as tmp:
        path = os.path.join(tmp, "backing.img")
        with open(path, "wb") as f:
            f.truncate(size_mib * MIB)  # sparse
        with loopdev.attach(path) as loop:
            show(f"{loop.path} ({loop.devno_str}) over a sparse {size_mib} MiB file {path}")
            yield loop
        show(f"detached {loop.path}")


def counters(dev: dm.Device) -> str:
    st = dev.status()[0].parsed()
    assert isinstance(st, targets.BasicTargetStatus)
    return f"reads={st.reads} writes={st.writes} read_sectors={st.read_sectors} write_sectors={st.write_sectors}"


def move_data(dev: dm.Device) -> None:
    node = f"/dev/dm-{dev.devno.minor}"
    pattern = os.urandom(MIB)
    out, back = mmap.mmap(-1, MIB), mmap.mmap(-1, MIB)  # page-aligned for O_DIRECT
    out.write(pattern)
    fd = os.open(node, os.O_RDWR | os.O_DIRECT)
    try:
        os.pwrite(fd, out, 0)
        os.preadv(fd, [back], 0)
    finally:
        os.close(fd)
    if bytes(back) != pattern:
        raise SystemExit("   the data read back differs from what was written")
    show(f"wrote and read back 1 MiB of random data with O_DIRECT through {node}: identical")
    show(f"basic_target counters: {counters(dev)}")


def show_with_cli(name: str) -> None:
    for args in (["info", name], ["table", name], ["status", name], ["ls"]):
        show("$ pydmsetup " + " ".join(args))
        result = subprocess.run([sys.executable, "-m", "pydevmapper", *args],
                                capture_output=True, text=True)
        for line in (result.stdout + result.stderr).splitlines():
            show("  " + line)
        if result.returncode != 0:
            raise SystemExit(f"   pydmsetup {args[0]} failed with {result.returncode}")


def main(argv: list[str] | None = None) -> int:
    # __doc__ is None only under python -OO, which this script is not run with.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])  # pyright: ignore[reportOptionalMemberAccess]
    parser.add_argument("--module", default=os.environ.get("PYDM_BASIC_TARGET_KO"),
                        help="basic_target.ko built for this kernel (default: $PYDM_BASIC_TARGET_KO)")
    parser.add_argument("--name", default="pydm-walkthrough")
    args = parser.parse_args(argv)
    if not args.module:
        parser.error("no basic_target.ko: pass --module or set PYDM_BASIC_TARGET_KO")

    step("device-mapper in this kernel")
    with dm.Control() as ctl:
        show(f"kernel {os.uname().release}, DM ioctl interface {'.'.join(map(str, ctl.version()))}")

        step("load the basic_target module")
        with basic_target_loaded(args.module):
            show(f"kernel now offers basic_target {ctl.target_version('basic_target').version}")

            step("attach a loop device over a sparse file")
            with loop_file(64) as loop:
                size = (64 * MIB) // 512 - OFFSET
                params = targets.BasicTarget(targets.as_devno(loop.path), OFFSET)  # the loop's maj:min
                table = dm.Table.single(size, params)

                step(f"create {args.name} with one call (create + load + resume)")
                show(f"parameters: {params!r}")
                show(f"table: {table.format().strip()}")
                with ctl.create_device(args.name, table) as dev:
                    info = dev.info()
                    show(f"{info.name} is {info.major}:{info.minor}, "
                         f"live table: {info.live_table}, suspended: {info.suspended}")
                    live = dev.table()
                    assert live is not None  # created with one
                    show(f"the table read back, parsed, equals the parameters: {live[0].parsed() == params}")

                    step("move data through it")
                    dev.message(targets.BasicTarget.reset())
                    move_data(dev)

                    step("look at it with the CLI")
                    show_with_cli(args.name)

                    step(f"remove {args.name}")
                show(f"{args.name} exists: {ctl.exists(args.name)}")
    step("done: no device, loop device or module of the walkthrough remains")
    return 0


if __name__ == "__main__":
    sys.exit(main())
