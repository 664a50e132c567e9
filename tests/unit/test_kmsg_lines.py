# SPDX-License-Identifier: LGPL-2.1-or-later
"""Which kernel-log lines a failed command's error keeps (kmsg.about)."""

from pydevmapper import kmsg


def test_a_line_about_another_device_is_dropped():
    assert not kmsg.about("device-mapper: table: 254:1: linear: Device lookup failed", "254:0")


def test_a_line_about_this_device_is_kept():
    assert kmsg.about("device-mapper: table: 254:0: linear: Device lookup failed", "254:0")


def test_lines_naming_no_device_are_kept():
    for line in ("device-mapper: ioctl: error adding target to table",
                 "device-mapper: core: 254:0 without the colon after it",
                 "device-mapper: table: x:y: not a device number",
                 "device-mapper: table: 254:0:"):
        assert kmsg.about(line, "254:1"), line


def test_without_a_device_number_everything_is_kept():
    assert kmsg.about("device-mapper: table: 254:1: linear: Device lookup failed", None)
