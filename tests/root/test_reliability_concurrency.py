# SPDX-License-Identifier: LGPL-2.1-or-later
"""The reliability tier, concurrency: eight threads sharing one ``Control``
and eight processes with their own, each creating and removing its own
devices over one loop device, with udev running or not.

A watchdog thread fails the test when any worker's call outlives its
bound (the udev timeout plus the remove's retry plus a margin), children's
calls included (each writes when its call began into a shared page): it
prints every thread's Python stack and the kernel stacks of the workers
and of every task in uninterruptible sleep, so a wait inside the kernel
(where a child's own alarm cannot run) is named too; each child prints
its own Python stack if it can.  Afterwards no device, /dev/mapper entry
or udev cookie semaphore of the workload may remain.

``PYDM_STRESS_LIFECYCLES`` sets the lifecycles per worker and
``PYDM_STRESS_ROUNDS`` how many times the whole workload runs in one boot
(the test command: 10 lifecycles, 2 rounds; the issue's full run is 50
lifecycles, 5 rounds).
"""

from __future__ import annotations

import faulthandler
import mmap
import os
import signal
import struct
import sys
import threading
import time

import pytest

import pydevmapper as dm
from pydevmapper import udev
from tests.root.helpers import cookie_keys, kernel_stacks, record_cases, udev_paused

pytestmark = [pytest.mark.dm_root, pytest.mark.udev]

LIFECYCLES = int(os.environ.get("PYDM_STRESS_LIFECYCLES", "10"))
ROUNDS = int(os.environ.get("PYDM_STRESS_ROUNDS", "2"))
THREADS = PROCESSES = 8
UDEV_TIMEOUT = 30.0
RETRY = 10.0
BOUND = UDEV_TIMEOUT + RETRY + 60.0  # per call: a wait, a remove's retries, emulation's slack


def _lifecycles(ctl: dm.Control, prefix: str, loop: str, busy: dict, key: object) -> None:
    for i in range(LIFECYCLES):
        name = f"{prefix}-{i}"
        busy[key] = time.monotonic()
        ctl.create_device(name, f"0 64 linear {loop} {i * 64}")
        busy[key] = time.monotonic()
        ctl.remove(name, retry=RETRY)
        busy.pop(key, None)


# The child's own alarm is the fallback: the parent's watchdog, which also
# prints where in the kernel a call waits, reports first.
CHILD_BOUND = BOUND + 30.0
_slot: tuple[mmap.mmap, int] | None = None  # in a child: the shared page and its own place in it


def _began(when: float) -> None:
    """In a child: when its current call began, 0 when none runs."""
    if _slot is not None:
        struct.pack_into("d", _slot[0], 8 * _slot[1], when)


def _overdue(signum: int, frame: object) -> None:  # pragma: no cover - in a forked child
    sys.stderr.write(f"child {os.getpid()}: a call outlived {BOUND:g}s\n")
    faulthandler.dump_traceback(all_threads=True)
    sys.stderr.flush()
    _began(0.0)
    os._exit(3)


def _child(prefix: str, loop: str, page: mmap.mmap, p: int) -> None:  # pragma: no cover - forked child
    global _slot
    _slot = (page, p)
    code = 1
    try:
        # Each call gets its own alarm: past the bound, every thread's stack
        # goes to stderr and the child exits.  Not faulthandler's own timer:
        # a child forked while the parent has one armed (pytest's
        # faulthandler_timeout) deadlocks arming its own.
        signal.signal(signal.SIGALRM, _overdue)
        with dm.Control(udev_timeout=UDEV_TIMEOUT) as ctl:
            for i in range(LIFECYCLES):
                name = f"{prefix}-{i}"
                _began(time.monotonic())
                signal.setitimer(signal.ITIMER_REAL, CHILD_BOUND)
                ctl.create_device(name, f"0 64 linear {loop} {i * 64}")
                _began(time.monotonic())
                signal.setitimer(signal.ITIMER_REAL, CHILD_BOUND)
                ctl.remove(name, retry=RETRY)
                _began(0.0)
            signal.setitimer(signal.ITIMER_REAL, 0)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the exit status and stderr report it
        sys.stderr.write(f"child {prefix}: {type(exc).__name__}: {exc}\n")
    finally:
        _began(0.0)
        sys.stderr.flush()
        os._exit(code)


def _reaped(running: dict[int, int], errors: list[str]) -> None:
    """Take the exit status of every child that ended (``running``: worker
    number -> pid, of children not yet reaped)."""
    for p, pid in list(running.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            del running[p]
            if os.waitstatus_to_exitcode(status) != 0:
                errors.append(f"process {p}: exit {os.waitstatus_to_exitcode(status)} (its stderr above)")


def _reap(running: dict[int, int], errors: list[str], stuck: threading.Event, deadline: float) -> None:
    """Wait for the children until they end, the watchdog reports, or the
    workload's deadline passes."""
    while running:
        _reaped(running, errors)
        if running and (stuck.is_set() or time.monotonic() > deadline):
            if not stuck.is_set():
                errors += [f"process {p}: still running at the workload's deadline" for p in running]
                sys.stderr.write(f"== in the kernel\n{kernel_stacks(running.values())}")
            return
        time.sleep(0.2)


def _kill(running: dict[int, int], errors: list[str]) -> None:
    """End the children still running: SIGALRM first (each prints its own
    stack if it can run), then SIGKILL; one in uninterruptible sleep dies
    only when its call returns, and is reported, not waited for."""
    for pid in running.values():
        os.kill(pid, signal.SIGALRM)
    time.sleep(5)
    _reaped(running, errors)
    for pid in running.values():
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        _reaped(running, errors)
        if not running:
            return
        time.sleep(0.1)
    errors += [f"process {p}: not gone 10 s after SIGKILL (pid {pid})" for p, pid in running.items()]


def _leftovers(ctl: dm.Control, prefix: str, cookies_before: set[int]) -> list[str]:
    left = [d.name for d in ctl.list_devices(uuids=False) if d.name.startswith(prefix)]
    left += [f"/dev/mapper/{e}" for e in os.listdir("/dev/mapper") if e.startswith(prefix)]
    left += [f"cookie {c:#x}" for c in cookie_keys() - cookies_before]
    return left


def _clear(ctl: dm.Control, prefix: str, cookies_before: set[int], errors: list[str]) -> None:
    """Remove what the workload left, after it was counted."""
    for d in ctl.list_devices(uuids=False):
        if d.name.startswith(prefix):
            try:
                ctl.remove(d.devno, force=True, retry=RETRY)
            except dm.DMError as exc:
                errors.append(f"cleanup of {d.name}: {exc}")
    for cookie in cookie_keys() - cookies_before:
        udev.remove_cookie(cookie)


@pytest.mark.parametrize("round_", range(1, ROUNDS + 1), ids=lambda r: f"round{r}")
def test_threads_and_processes_create_and_remove_without_hang_or_leftovers(dm_loop_device, dm_prefix, round_):
    loop = dm_loop_device.devno_str
    prefix = f"{dm_prefix}cc{round_}-"
    cookies_before = cookie_keys()
    busy: dict = {}
    errors: list[str] = []
    stuck = threading.Event()
    done = threading.Event()
    # When each child's current call began (CLOCK_MONOTONIC is the
    # machine's), 0 between calls: shared, so the watchdog sees them too.
    page = mmap.mmap(-1, 8 * PROCESSES)
    running: dict[int, int] = {}  # worker number -> pid, until reaped

    def watchdog() -> None:
        while not done.wait(1.0):
            now = time.monotonic()
            late = [f"thread {k}" for k, since in list(busy.items()) if now - since > BOUND]
            late += [f"process {p}" for p in list(running)
                     if 0 < struct.unpack_from("d", page, 8 * p)[0] < now - BOUND]
            if late:
                errors.extend(f"{w}: in one call for more than {BOUND:g}s (stacks above)" for w in late)
                faulthandler.dump_traceback(all_threads=True)
                sys.stderr.write("== in the kernel: the workers and every task in D state\n"
                                 f"{kernel_stacks([os.getpid(), *running.values()])}")
                sys.stderr.flush()
                stuck.set()
                return

    shared = dm.Control(udev_timeout=UDEV_TIMEOUT)
    try:
        sys.stderr.flush()
        for p in range(PROCESSES):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                _child(f"{prefix}p{p}", loop, page, p)
            running[p] = pid

        def thread_main(t: int) -> None:
            try:
                _lifecycles(shared, f"{prefix}t{t}", loop, busy, t)
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=thread_main, args=(t,), daemon=True) for t in range(THREADS)]
        guard = threading.Thread(target=watchdog, daemon=True)
        guard.start()
        for t in threads:
            t.start()
        deadline = time.monotonic() + BOUND * LIFECYCLES * 2
        for t in threads:
            while t.is_alive() and not stuck.is_set() and time.monotonic() < deadline:
                t.join(1.0)
        _reap(running, errors, stuck, deadline)
        done.set()
        if any(t.is_alive() for t in threads) and not stuck.is_set():
            errors.append("threads still running at the workload's deadline")
            faulthandler.dump_traceback(all_threads=True)
    finally:
        done.set()
        if running:  # reported, or the test's own watchdog cut it short
            _kill(running, errors)
        shared.close()
        with dm.Control() as ctl:
            left = _leftovers(ctl, prefix, cookies_before)
            _clear(ctl, prefix, cookies_before, errors)  # for the next test
    workers = THREADS + PROCESSES
    record_cases(f"concurrency, round {round_} ({THREADS} threads, {PROCESSES} processes, "
                 f"{LIFECYCLES} lifecycles each)",
                 workers, workers - len({e.split(":")[0] for e in errors}))
    assert not errors, "\n".join(errors)
    assert not left, f"left behind: {left}"


@pytest.mark.skipif(not udev.sync_available(), reason="needs udevd with 95-dm-notify.rules (udev boot)")
def test_with_udev_paused_every_call_times_out_within_its_bound_and_nothing_is_left(dm_loop_device,
                                                                                    dm_prefix):
    """udevd hangs for longer than the timeout: every create_device gives
    up within its bound with UdevTimeoutError and takes its device back;
    once udev runs again and settles, nothing of the workload remains."""
    import subprocess

    loop = dm_loop_device.devno_str
    prefix = f"{dm_prefix}paused"
    timeout = 3.0
    # create, load, resume (one wait), and on the timeout the rollback's
    # remove (a second wait), with emulation's slack.
    bound = 2 * timeout + 30.0
    cookies_before = cookie_keys()
    calls: list[tuple[str, str, float]] = []  # worker-call, outcome, seconds
    lock = threading.Lock()

    def worker(ctl: dm.Control, w: int) -> None:
        for i in range(2):
            started = time.monotonic()
            try:
                ctl.create_device(f"{prefix}{w}-{i}", f"0 64 linear {loop} {i * 64}")
                outcome = "created"
            except udev.UdevTimeoutError:
                outcome = "timed out"
            except BaseException as exc:  # noqa: BLE001 - reported
                outcome = f"{type(exc).__name__}: {exc}"
            took = time.monotonic() - started
            with lock:
                calls.append((f"{w}-{i}", outcome, took))

    try:
        with dm.Control(udev_timeout=timeout) as shared:
            assert shared.udev_sync  # else nothing would wait, and all be "created"
            with udev_paused():
                threads = [threading.Thread(target=worker, args=(shared, w), daemon=True) for w in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(bound * 3)
                assert not any(t.is_alive() for t in threads), "a worker is still blocked"
    finally:
        subprocess.run(["udevadm", "settle", "--timeout=300"], check=False, timeout=400)
        with dm.Control() as ctl:
            left = _leftovers(ctl, prefix, cookies_before)
            _clear(ctl, prefix, cookies_before, [])
    outcomes = [outcome if took <= bound else f"{outcome} after {took:.0f}s" for _, outcome, took in calls]
    record_cases("udev paused past the timeout", len(outcomes),
                 outcomes.count("timed out"))
    assert outcomes == ["timed out"] * 8, [f"{call}: {outcome} in {took:.2f}s" for call, outcome, took in calls]
    assert not left, f"left behind: {left}"
