# SPDX-License-Identifier: LGPL-2.1-or-later
"""The root tier's per-test watchdog, its end-of-session summary of the
reliability cases, and the split of a udev boot's tests (PYDM_UDEV_SHARE)."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import zlib

import pytest

from pydevmapper import udev
from tests.root.helpers import TEST_TIMEOUT, kernel_stacks

UDEV_SHARE_ENV = "PYDM_UDEV_SHARE"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "udev: the test is about udev (its nodes, cookies, uevents and rules); every "
        f"udev boot runs it, whatever ${UDEV_SHARE_ENV} says")


def udev_share(value):
    """``"k/n"`` -> (k, n), 1 <= k <= n; a pytest.UsageError otherwise."""
    k, sep, n = value.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise pytest.UsageError(f"${UDEV_SHARE_ENV} wants k/n with 1 <= k <= n, got {value!r}")
    return int(k), int(n)


def pytest_collection_modifyitems(config, items):
    # The test command boots udev on two kernels.  Each runs every test
    # marked udev and one share of the others, which each kernel's no-udev
    # boot runs whole: every test runs under udev on one kernel, and on
    # every kernel without udev.  crc32 of the test's id: the same split in
    # every run.
    value = os.environ.get(UDEV_SHARE_ENV)
    if not value:
        return
    k, n = udev_share(value)
    if not udev.udev_running():
        raise pytest.UsageError(f"${UDEV_SHARE_ENV} splits the tests of a udev boot; udevd does not run here")
    keep, other = [], []
    for item in items:
        mine = item.get_closest_marker("udev") or zlib.crc32(item.nodeid.encode()) % n == k - 1
        (keep if mine else other).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = keep
    config.pydm_udev_share = (k, n, len(other))


class WatchdogExpired(BaseException):
    """Raised in the main thread when a test outlives TEST_TIMEOUT.  A
    BaseException, so that a test's own ``except Exception`` cannot take it."""


def _expired(signum, frame):
    # The real stderr (descriptor 2, which pytest captures per test): a
    # test's own capture of sys.stderr may not take a file descriptor.
    err = sys.__stderr__
    err.write(f"\n== {TEST_TIMEOUT:.0f} s watchdog: every thread's stack\n")
    err.flush()
    faulthandler.dump_traceback(file=err, all_threads=True)
    err.write("== in the kernel: this process's threads and every task in D state\n"
              f"{kernel_stacks([os.getpid()])}")
    err.flush()
    raise WatchdogExpired(f"the test ran over {TEST_TIMEOUT:.0f} s (PYDM_TEST_TIMEOUT); stacks above")


@contextlib.contextmanager
def _watchdog():
    # Not faulthandler's timer, which would also see a wait in the kernel:
    # a child forked while it is armed deadlocks arming its own.
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Armed for each phase apart, inside pytest's own handling of the phase,
# so an expiry is that phase's failure and never the session's.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _watchdog():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _watchdog():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _watchdog():
        yield


def _interface_line():
    try:
        from pydevmapper import Control

        with Control() as ctl:
            version = ".".join(map(str, ctl.version()))
    except Exception as e:  # noqa: BLE001 - the session has failed or skipped with the reason
        return f"pydevmapper-guest-kernel: {os.uname().release}, DM interface not readable ({e})"
    return f"pydevmapper-guest-kernel: {os.uname().release}, DM interface {version}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.root.helpers import RELIABILITY

    # Read by scripts/run-all-tests.sh for its summary.
    terminalreporter.write_line(_interface_line())
    share = getattr(config, "pydm_udev_share", None)
    if share:
        k, n, other = share
        terminalreporter.write_line(
            f"pydevmapper-udev-share: {k} of {n}: the udev tests and one share of the others; {other} "
            "left to the other udev boots (every kernel's no-udev boot runs them)")
    if not RELIABILITY:
        return
    terminalreporter.section("reliability")
    for section, (tried, held) in RELIABILITY.items():
        verdict = "all held" if tried == held else f"{tried - held} FAILED"
        terminalreporter.write_line(f"{section}: {tried} cases, {verdict}")
