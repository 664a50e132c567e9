# SPDX-License-Identifier: LGPL-2.1-or-later
"""The root tier's end-of-session summary of the reliability cases."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.root.helpers import RELIABILITY

    if not RELIABILITY:
        return
    terminalreporter.section("reliability")
    for section, (tried, held) in RELIABILITY.items():
        verdict = "all held" if tried == held else f"{tried - held} FAILED"
        terminalreporter.write_line(f"{section}: {tried} cases, {verdict}")
