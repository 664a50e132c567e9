# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pytest plugin minds its own business: another project's tests, with
their own ``root`` marker and ``loop_device`` fixture, run untouched where
pydevmapper is installed, and a broken binding troubles only the tests
that use the kit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CONFTEST = '''
import os, sys
import pytest

BLOCK_BINDING = os.environ.get("FOREIGN_BLOCK_BINDING") == "1"

class _Broken:
    """Stands for a binding built for another Python, or not built."""
    def find_spec(self, name, path=None, target=None):
        if name == "pydevmapper._dm_cffi":
            raise ImportError("simulated broken binding")
        return None

if BLOCK_BINDING:
    sys.meta_path.insert(0, _Broken())

def pytest_configure(config):
    config.addinivalue_line("markers", "root: the foreign project's own meaning")

@pytest.fixture
def loop_device():
    return "theirs"
'''

TESTS = '''
import sys
import pytest

@pytest.mark.root
def test_their_root_marker_runs():
    assert True

def test_their_loop_device_fixture(loop_device):
    assert loop_device == "theirs"

def test_nothing_of_ours_was_imported():
    ours = sorted(m for m in sys.modules if m.startswith("pydevmapper"))
    assert ours == ["pydevmapper", "pydevmapper.testing", "pydevmapper.testing.kernel",
                    "pydevmapper.testing.plugin"]
'''

USES_KIT = '''
def test_uses_the_kit(dm_control):
    assert dm_control is not None
'''


def _run(tmp_path, *, block_binding=False, with_kit_test=False):
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -p no:cacheprovider\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_foreign.py").write_text(TESTS)
    if with_kit_test:
        (tmp_path / "test_kit_user.py").write_text(USES_KIT)
    # A modprobe that leaves a mark: the plugin must not load modules for
    # tests that never asked for the kit.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "modprobe-ran"
    (bin_dir / "modprobe").write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\n")
    (bin_dir / "modprobe").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYDM_")}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    env["FOREIGN_BLOCK_BINDING"] = "1" if block_binding else "0"
    out = subprocess.run([sys.executable, "-m", "pytest", "-rs", "-q", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return out, marker


def test_a_foreign_project_runs_untouched(tmp_path):
    out, marker = _run(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout and "skipped" not in out.stdout, out.stdout
    assert not marker.exists()


def test_a_broken_binding_troubles_only_the_tests_that_use_the_kit(tmp_path):
    out, _ = _run(tmp_path, block_binding=True, with_kit_test=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed, 1 skipped" in out.stdout, out.stdout
    expected = "pydevmapper cannot be imported" if os.geteuid() == 0 else "needs root"
    assert expected in out.stdout, out.stdout


def test_the_kits_own_names_are_prefixed():
    from pydevmapper.testing import plugin

    fixtures = [name for name, value in vars(plugin).items()
                if hasattr(value, "_pytestfixturefunction") or type(value).__name__ == "FixtureFunctionDefinition"]
    assert fixtures and all(name.startswith("dm_") for name in fixtures), fixtures
    assert plugin.ROOT_MARKER.startswith("dm_") and plugin.BASIC_MARKER.startswith("dm_")
    assert textwrap.dedent(plugin.__doc__ or "")  # documented
