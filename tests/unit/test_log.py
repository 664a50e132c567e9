# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``pydevmapper`` logger: what each ioctl and udev wait records, that
nothing is recorded unless asked, and pydmsetup's -vv/-vvv."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading

import pytest
from fake_kernel import fail, put_data

from pydevmapper import channel, log, udev
from pydevmapper.errors import DeviceNotFoundError


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.DEBUG, logger="pydevmapper")  # restored after the test
    return caplog


def test_each_ioctl_is_recorded_with_its_flags_size_and_reply(kernel, ctl, records):
    ctl.info("vol")
    (rec,) = [r for r in records.records if r.name == "pydevmapper.ioctl"]
    text = rec.getMessage()
    assert rec.levelno == logging.DEBUG
    assert text.startswith("DM_DEV_STATUS vol flags=0x0 size=") and "data_size=" in text and " us" in text


def test_a_failure_is_recorded_with_its_errno(kernel, ctl, records):
    kernel.handlers["DM_DEV_STATUS"] = fail(errno.ENXIO)
    with pytest.raises(DeviceNotFoundError):
        ctl.info("vol")
    assert any("DM_DEV_STATUS vol" in r.getMessage() and "ENXIO" in r.getMessage()
               for r in records.records)


def test_a_regrown_buffer_is_recorded(kernel, ctl, records):
    data = b"x" * 20000
    kernel.handlers["DM_TABLE_STATUS"] = lambda c, hdr, buf: put_data(hdr, buf, data)
    ctl.channel.call(channel.TABLE_STATUS, "vol")
    assert any("size=8192: the reply did not fit; asking again with 16384" in r.getMessage()
               for r in records.records)


def test_nothing_is_recorded_unless_asked(kernel, ctl, caplog):
    caplog.set_level(logging.WARNING, logger="pydevmapper")
    ctl.info("vol")
    assert log.logger("ioctl") is None
    assert not [r for r in caplog.records if r.name.startswith("pydevmapper")]


def test_the_library_does_not_import_logging():
    code = "import sys, pydevmapper.control, pydevmapper.udev; print('logging' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_udev_waits_and_their_outcome_are_recorded(records):
    with udev.cookie() as ck:
        done = threading.Thread(target=udev.complete, args=(ck.value,))
        done.start()
        ck.wait(30, "DM_DEV_SUSPEND", "x")
        done.join()
    texts = [r.getMessage() for r in records.records if r.name == "pydevmapper.udev"]
    assert texts[0].startswith("DM_DEV_SUSPEND x: waiting up to 30s for udev to release cookie")
    assert "udev released cookie" in texts[1]


def test_a_udev_timeout_is_a_warning(records):
    with pytest.raises(udev.UdevTimeoutError), udev.cookie() as ck:
        ck.wait(0.05, "DM_DEV_REMOVE", "vol")
    (warned,) = [r for r in records.records if r.levelno == logging.WARNING]
    assert "udev never answered" in warned.getMessage()


@pytest.mark.parametrize("verbose, shown", [(2, {"pydevmapper.udev"}),
                                             (3, {"pydevmapper.udev", "pydevmapper.ioctl"})])
def test_pydmsetup_verbosity_configures_the_log_and_undoes_it(verbose, shown):
    from pydevmapper import cli

    names = ("pydevmapper.udev", "pydevmapper.ioctl")
    root = logging.getLogger("pydevmapper")
    handlers = list(root.handlers)
    undo = cli._log_to_stderr(verbose)
    try:
        assert {n for n in names if logging.getLogger(n).isEnabledFor(logging.DEBUG)} == shown
        assert len(root.handlers) == len(handlers) + 1
    finally:
        undo()
    assert root.handlers == handlers
    assert not any(logging.getLogger(n).isEnabledFor(logging.DEBUG) for n in names)


def test_pydmsetup_v_alone_logs_nothing():
    code = ("import sys\nfrom pydevmapper import cli\ncli.main(['-v', 'help'])\n"
            "print('logging' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "False"


def test_an_unconfigured_program_prints_nothing(tmp_path):
    # logging imported but never configured: a udev timeout (a WARNING
    # record) must not reach stderr through logging's last-resort handler.
    code = ("import logging\nfrom pydevmapper import udev\n"
            "try:\n    with udev.cookie() as ck:\n        ck.wait(0.05, 'DM_DEV_REMOVE', 'vol')\n"
            "except udev.UdevTimeoutError:\n    print('timed out')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout == "timed out\n" and out.stderr == ""
