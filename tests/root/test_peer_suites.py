# SPDX-License-Identifier: LGPL-2.1-or-later
"""cryptsetup's own test scripts, which call ``dmsetup`` themselves, run
first with Debian's dmsetup, then with pydmsetup bound over it: each must
end as it did with Debian's (passed, or skipped for the same reason).

The scripts are the installed cryptsetup's, from Debian's source package
(``python -m pydevmapper.sandbox fetch-peers``, run by
``scripts/setup-host.sh``: they are GPL-2.0, so fetched, not shipped), run
against the installed ``cryptsetup``, ``veritysetup`` and
``integritysetup`` from a copy of their directory.  ``discards-test``
(dm-crypt's discards, read back with ``dmsetup table``) runs here; the
others take too long under emulation to run twice in every udev boot
(``device-test`` five minutes for the pair, ``mode-test`` six a run,
``verity-compat-test`` over ten): ``$PYDM_PEER_SCRIPTS`` names others.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pydevmapper import udev
from pydevmapper.sandbox.peers import cryptsetup_tests_dir
from tests.root.helpers import pydmsetup_as_dmsetup

pytestmark = [pytest.mark.dm_root,
              pytest.mark.skipif(not udev.udev_running(), reason="needs udevd running (the udev boot)")]

SCRIPTS = os.environ.get("PYDM_PEER_SCRIPTS", "discards-test").split()


def _run(script, tmp_path, which):
    scripts = cryptsetup_tests_dir()
    assert (scripts / script).is_file(), f"{scripts}: run scripts/setup-host.sh (it fetches cryptsetup's tests)"
    work = tmp_path / which
    shutil.copytree(scripts, work)
    env = {**os.environ, "CRYPTSETUP_PATH": os.path.dirname(shutil.which("cryptsetup") or "/sbin/cryptsetup")}
    done = subprocess.run([f"./{script}"], cwd=work, env=env, capture_output=True, text=True, timeout=1200,
                          check=False)
    shutil.rmtree(work, ignore_errors=True)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_cryptsetup_scripts_end_as_with_debians_dmsetup(script, tmp_path):
    debian = _run(script, tmp_path, "debian")
    assert debian[0] in (0, 77), f"{script} fails with Debian's dmsetup:\n{debian[1][-3000:]}"
    with pydmsetup_as_dmsetup():
        ours = _run(script, tmp_path, "pydmsetup")
    assert ours[0] == debian[0], (f"{script}: exit {ours[0]} with pydmsetup, {debian[0]} with Debian's\n"
                                  f"{ours[1][-3000:]}")
    if debian[0] == 77:  # skipped: for the same reason
        assert ours[1].strip().splitlines()[-1:] == debian[1].strip().splitlines()[-1:]
