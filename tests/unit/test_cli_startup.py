# SPDX-License-Identifier: LGPL-2.1-or-later
"""pydmsetup's start-up stays lazy: `version` imports no module it does not use.

Start-up time matters to scripts (each pydmsetup call is a new interpreter),
so the modules a plain `version` run must not load are checked, not timed:
a fresh interpreter without site (so nothing is preloaded) imports the CLI,
runs `version` (on a host without device-mapper it fails after opening the
control node, through the same imports) and reports what got imported.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import _cffi_backend
import pytest

import pydevmapper

REPO = os.path.dirname(os.path.dirname(pydevmapper.__file__))
CFFI_DIR = os.path.dirname(_cffi_backend.__file__)

PROBE = """
import io, sys
sys.path[:0] = {paths!r}
from pydevmapper.cli import main
sys.stdout, sys.stderr = (io.TextIOWrapper(io.BytesIO()) for _ in "12")
try:
    main({argv!r}, prog="dmsetup")
finally:
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
print(sorted(sys.modules))
"""

# Never needed to print versions, list or inspect devices.  typing, re,
# contextlib and importlib (with warnings) were a third of the start-up's
# imports: annotations are never evaluated, records come from _namedtuple.
# grp (the nodes' group, through NSS) only when a node is made.
HEAVY = {"json", "asyncio", "pyroute2", "subprocess", "pathlib", "urllib", "tempfile", "shutil",
         "typing", "re", "contextlib", "importlib", "warnings", "grp"}
# pydmsetup's own modules that only other commands or options need.
OTHER_COMMANDS = {"pydevmapper.cli.device_commands", "pydevmapper.cli.udev_commands",
                  "pydevmapper.cli.name_commands", "pydevmapper.cli.selection",
                  "pydevmapper.api", "pydevmapper.events", "pydevmapper.loopdev"}


def _heavy():
    """HEAVY less what the modules pydmsetup cannot do without (threading,
    enum, struct) import themselves on this Python: 3.13's threading
    imports warnings."""
    code = "import sys, threading, enum, struct, functools; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    return HEAVY - set(ast.literal_eval(out.stdout))


def _imported(argv):
    code = PROBE.format(paths=[REPO, CFFI_DIR], argv=argv)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    return set(ast.literal_eval(out.stdout.splitlines()[-1]))


def test_version_imports_nothing_heavy():
    modules = _imported(["version"])
    assert "pydevmapper.control" in modules  # the probe really reached the kernel call
    top = {m.split(".")[0] for m in modules}
    assert not _heavy() & (modules | top)
    assert not OTHER_COMMANDS & modules


def test_info_and_ls_import_nothing_heavy():
    for argv in (["ls"], ["info", "no-such-device"]):
        modules = _imported(argv)
        assert not _heavy() & (modules | {m.split(".")[0] for m in modules}), argv
        assert not OTHER_COMMANDS & modules, argv


def test_json_loads_only_for_json_output():
    assert "json" in _imported(["--json", "version"])


def test_every_command_resolves_to_a_function():
    # The table's entries import their module when run: each must name a
    # function that exists (a typo would only show when that command runs).
    from pydevmapper.cli.commands import COMMANDS

    for name, command in COMMANDS.items():
        assert callable(command.fn), name


@pytest.mark.parametrize("script, argv, out, err, code", [
    ("pydmsetup", ["splitname", "vg-lv"], "VG   LV   LVLayer\nvg   lv          \n", "", 0),
    ("pydmstats", ["list", "--units", "x"], "", "Invalid --units argument.\n", 1),
    ("pydmstats", ["--help"], "", "Usage:\n\ndmstats\n", 0),
])
def test_the_console_scripts_flush_before_they_end_at_once(script, argv, out, err, code):
    """``console()`` leaves with os._exit: what was written must be out first."""
    path = os.path.join(os.path.dirname(sys.executable), script)
    assert os.path.exists(path), f"{script} is not installed next to {sys.executable} (pip install -e .)"
    done = subprocess.run([path, *argv], capture_output=True, text=True, timeout=60)
    assert (done.stdout, done.stderr[:len(err)], done.returncode) == (out, err, code)
