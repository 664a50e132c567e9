# SPDX-License-Identifier: LGPL-2.1-or-later
"""cryptsetup's own test scripts, which call ``dmsetup`` themselves, run
first with Debian's dmsetup, then with pydmsetup bound over it: each
passes with both.

The scripts are the installed cryptsetup's, from Debian's source package
(``python -m pydevmapper.sandbox fetch-peers``, run by
``scripts/setup-host.sh``: they are GPL-2.0, so fetched, not shipped), run
against the installed ``cryptsetup``, ``veritysetup`` and
``integritysetup`` from a copy of their directory.  ``discards-test``
(dm-crypt's discards, read back with ``dmsetup table``) runs here; the
others take too long under emulation to run twice in every udev boot
(docs/pydmsetup.md lists those that pass both ways and how long each
takes): ``$PYDM_PEER_SCRIPTS`` names them (with ``$PYDM_TEST_TIMEOUT``
raised above the session's 600 s a test for the long ones).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from pydevmapper import udev
from pydevmapper.sandbox.peers import cryptsetup_tests_dir
from tests.root.helpers import TEST_TIMEOUT, pydmsetup_as_dmsetup

pytestmark = [pytest.mark.dm_root, pytest.mark.udev,
              pytest.mark.skipif(not udev.udev_running(), reason="needs udevd running (the udev boot)")]

SCRIPTS = os.environ.get("PYDM_PEER_SCRIPTS", "discards-test").split()


def _run(script, tmp_path, which):
    scripts = cryptsetup_tests_dir()
    assert (scripts / script).is_file(), f"{scripts}: run scripts/setup-host.sh (it fetches cryptsetup's tests)"
    work = tmp_path / which
    shutil.copytree(scripts, work)
    env = {**os.environ, "CRYPTSETUP_PATH": os.path.dirname(shutil.which("cryptsetup") or "/sbin/cryptsetup")}
    # A session of its own, so that a script that runs out of time goes
    # with everything it started.
    proc = subprocess.Popen([f"./{script}"], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # Each test runs a script twice: a raised $PYDM_TEST_TIMEOUT
        # raises each run's share with it.
        out, _ = proc.communicate(timeout=max(1200.0, TEST_TIMEOUT / 2))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{script} ({which}) ran out of time:\n{out[-3000:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return proc.returncode, out


@pytest.mark.parametrize("script", SCRIPTS)
def test_cryptsetup_scripts_end_as_with_debians_dmsetup(script, tmp_path):
    # A script that skips (exit 77: a module or tool missing) proves
    # nothing: with Debian's dmsetup it must pass here.
    debian = _run(script, tmp_path, "debian")
    assert debian[0] == 0, f"{script} does not pass with Debian's dmsetup:\n{debian[1][-3000:]}"
    with pydmsetup_as_dmsetup():
        ours = _run(script, tmp_path, "pydmsetup")
    assert ours[0] == 0, f"{script} passes with Debian's dmsetup, exits {ours[0]} with pydmsetup:\n{ours[1][-3000:]}"
