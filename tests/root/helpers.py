# SPDX-License-Identifier: LGPL-2.1-or-later
"""Small helpers shared by the root tests (reading the kernel's own view)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, Tuple

import pytest

# A root test's set-up, call or clean-up that runs longer than this fails
# with every thread's stack (conftest's watchdog), instead of stalling the
# session until the guest is killed and its output says nothing of where.
# The slowest legitimate test takes a few minutes under emulation.
TEST_TIMEOUT = float(os.environ.get("PYDM_TEST_TIMEOUT", "600"))

NOBODY = 65534  # the unprivileged user both tools run as in the permission cases


def kernel_at_least(major: int, minor: int) -> bool:
    """Whether the running kernel is Linux major.minor or newer."""
    return tuple(int(n) for n in os.uname().release.split(".")[:2]) >= (major, minor)


# Before 5.15 a mapped device's disk (and its sysfs entry, read-ahead and
# holders) exists from its creation; since, from its first table load.
DISK_AT_CREATE = not kernel_at_least(5, 15)


def sysfs_dm_devices() -> Dict[str, Tuple[str, int, int]]:
    """name -> (uuid, major, minor) straight from /sys/block/dm-*/."""
    found = {}
    for entry in os.listdir("/sys/block"):
        if not entry.startswith("dm-"):
            continue
        base = f"/sys/block/{entry}"
        with open(f"{base}/dm/name") as f:
            name = f.read().rstrip("\n")
        with open(f"{base}/dm/uuid") as f:
            uuid = f.read().rstrip("\n")
        with open(f"{base}/dev") as f:
            major, minor = (int(x) for x in f.read().split(":"))
        found[name] = (uuid, major, minor)
    return found


def sectors_of(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END) // 512
    finally:
        os.close(fd)


def dm_block_node(devno) -> str:
    """devtmpfs's node for a dm device: /dev/dm-<minor>, with or without udev."""
    return f"/dev/dm-{devno[1]}"


def wait_for_dm_event(ctl, predicate, timeout: float = 30.0) -> bool:
    """Wait until predicate() holds, waking on device-mapper events.

    Arms DM_DEV_ARM_POLL and polls the control node instead of sleeping;
    the kernel raises an event for every create, remove, rename and table
    event.  Returns predicate() at the deadline.
    """
    import select
    import time

    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    while True:
        ctl.arm_poll()
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return predicate()
        poller.poll(int(left * 1000))


_CLI_IMPORTED = []


def _import_cli():
    """The modules pydmsetup may load, imported once here: a forked child
    inherits them, where it would otherwise read each again (0.5 s a run
    under TCG)."""
    if _CLI_IMPORTED:
        return
    _CLI_IMPORTED.append(True)
    import importlib
    import pkgutil

    import pydevmapper
    import pydevmapper.cli

    for package, skip in ((pydevmapper, {"__main__", "walkthrough", "uevents"}), (pydevmapper.cli, set())):
        for info in pkgutil.iter_modules(package.__path__):
            if not info.ispkg and info.name not in skip:
                importlib.import_module(f"{package.__name__}.{info.name}")


def forked_main(argv, stdin=b"", unprivileged=False, prog="dmsetup"):
    """pydmsetup's main() in a forked child, on real descriptors 0, 1 and 2
    (``prog``: the name it runs under, as argv[0] would give it).

    The bytes and exit status are what a separate process gives, without
    starting an interpreter per call (seconds each under emulation).  Runs
    that must prove the installed program itself use PY instead.
    """
    import io
    import tempfile
    import traceback

    from pydevmapper.cli import main

    _import_cli()

    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, \
            tempfile.TemporaryFile() as ferr:
        fin.write(stdin)
        fin.seek(0)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                for fd, f in ((0, fin), (1, fout), (2, ferr)):
                    os.dup2(f.fileno(), fd)
                if unprivileged:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                text = dict(encoding="utf-8", errors="surrogateescape", write_through=True)
                sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                             encoding="utf-8", errors="surrogateescape")
                sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), **text)
                sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), **text)
                try:
                    code = main(list(argv), prog=prog)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
                except BaseException:  # noqa: BLE001 - reported as the process would report it
                    traceback.print_exc()
                    code = 1
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)
        _, status = os.waitpid(pid, 0)
        fout.seek(0)
        ferr.seek(0)
        return os.waitstatus_to_exitcode(status), fout.read(), ferr.read()


def gone(dm_control, name):
    """Remove a device if it exists (a comparison's reset)."""
    from pydevmapper.errors import DeviceNotFoundError

    try:
        dm_control.remove(name, retry=5.0)
    except DeviceNotFoundError:
        pass


@pytest.fixture
def dmsetup_installed() -> None:
    """The comparisons need Debian's dmsetup: without it a test skips, or
    fails when the tier must run (PYDM_REQUIRE_KERNEL=1)."""
    if shutil.which("dmsetup") is None:
        from pydevmapper.testing import kernel

        if kernel.require_kernel():
            pytest.fail(f"dmsetup is not installed ({kernel.REQUIRE_ENV} is set: this tier must run)",
                        pytrace=False)
        pytest.skip("needs dmsetup")


# The reliability tier's counts, printed at the end of the session
# (tests/root/conftest.py): section -> [cases tried, cases that held].
RELIABILITY: dict[str, list[int]] = {}


def record_cases(section: str, tried: int, held: int) -> None:
    counts = RELIABILITY.setdefault(section, [0, 0])
    counts[0] += tried
    counts[1] += held


def _proc_stat(path: str | Path) -> tuple[str, list[str]]:
    """A ``/proc`` stat file: the command name and the fields after it
    (state, parent pid, ...).  The name may hold spaces and parentheses:
    it ends at the last ``)``."""
    stat = Path(path).read_text()
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 1:].split()


def kernel_stacks(pids: Iterable[int] = ()) -> str:
    """Where in the kernel tasks wait: every thread of ``pids`` and every
    task in uninterruptible sleep (D), with its state, wait channel and
    kernel stack.  A Python stack ends at the system call; this goes on
    from there (an ioctl waiting on a lock, udev's blkid on queued I/O).
    Needs root; what cannot be read (a task that ended) is left out."""
    wanted = {str(p) for p in pids}
    out = []
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        try:
            tids = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
        except OSError:
            continue
        for tid in tids:
            task = Path(f"/proc/{pid}/task/{tid}")
            try:
                comm, fields = _proc_stat(task / "stat")
                state = fields[0]
                if pid not in wanted and state != "D":
                    continue
                wchan = (task / "wchan").read_text() or "-"
                stack = (task / "stack").read_text()
            except (OSError, ValueError, IndexError):
                continue
            out.append(f"-- {pid}/{tid} {comm}: state {state}, waits in {wchan}\n{stack}")
    return "".join(out) or "(no such task)\n"


def _udevd_manager() -> int:
    """The pid of udevd's manager: the udevd whose parent is no udevd (its
    workers have the same name)."""
    parents = {}
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            comm, fields = _proc_stat(f"/proc/{pid}/stat")
        except OSError:
            continue
        if comm in ("systemd-udevd", "udevd"):
            parents[int(pid)] = int(fields[1])
    managers = [pid for pid, parent in parents.items() if parent not in parents]
    assert len(managers) == 1, f"not one udevd manager: {managers}"
    return managers[0]


@contextlib.contextmanager
def udev_paused():
    """udevd runs no rules until the block ends: its manager is stopped
    (SIGSTOP), so uevents wait in its socket and no cookie is released;
    udevd goes on with them once continued.  Not ``udevadm control
    --stop-exec-queue``: under TCG udevd (252) now and then still ran the
    rules of uevents raised after that command had returned (the cookies
    of a create released in 0.6 s, its queue empty)."""
    pid = _udevd_manager()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def cookie_keys() -> set[int]:
    """The keys of every udev cookie semaphore now."""
    from pydevmapper import udev

    return {c.cookie for c in udev.list_cookies()}


@contextlib.contextmanager
def pydmsetup_as_dmsetup():
    """The installed pydmsetup script bound over dmsetup: run as dmsetup, or
    through the dmstats link, it takes that name from argv[0] as dmsetup does."""
    script = Path(sys.executable).with_name("pydmsetup")
    assert script.is_file(), f"{script}: pydmsetup is not installed"
    bound = []
    try:
        for place in ("/sbin/dmsetup", "/usr/sbin/dmsetup"):
            if os.path.exists(place):
                subprocess.run(["mount", "--bind", str(script), place], check=True)
                bound.append(place)
        assert bound, "no dmsetup to stand in for"
        out = subprocess.run(["/sbin/dmsetup", "version"], capture_output=True, text=True, check=True)
        assert "pydevmapper" in out.stdout  # the stand-in is what runs
        yield
    finally:
        for place in reversed(bound):
            subprocess.run(["umount", place], check=False)
