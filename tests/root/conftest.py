# SPDX-License-Identifier: LGPL-2.1-or-later
"""The root tier's per-test watchdog and its end-of-session summary of the
reliability cases."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys

import pytest

# A test (setup and teardown included) that runs longer than this fails with
# every thread's stack, instead of stalling the session until the guest is
# killed and its output says nothing of where.  The slowest legitimate test
# takes a few minutes under emulation.
TEST_TIMEOUT = float(os.environ.get("PYDM_TEST_TIMEOUT", "600"))


class WatchdogExpired(BaseException):
    """Raised in the main thread when a test outlives TEST_TIMEOUT.  A
    BaseException, so that a test's own ``except Exception`` cannot take it."""


def _expired(signum, frame):
    sys.stderr.write(f"\n== {TEST_TIMEOUT:.0f} s watchdog: every thread's stack\n")
    faulthandler.dump_traceback(all_threads=True)
    raise WatchdogExpired(f"the test ran over {TEST_TIMEOUT:.0f} s (PYDM_TEST_TIMEOUT); stacks above")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    previous = signal.signal(signal.SIGALRM, _expired)
    # Not faulthandler's timer, which would also see a wait in the kernel:
    # a child forked while it is armed deadlocks arming its own.
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.root.helpers import RELIABILITY

    if not RELIABILITY:
        return
    terminalreporter.section("reliability")
    for section, (tried, held) in RELIABILITY.items():
        verdict = "all held" if tried == held else f"{tried - held} FAILED"
        terminalreporter.write_line(f"{section}: {tried} cases, {verdict}")
