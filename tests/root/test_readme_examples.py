# SPDX-License-Identifier: LGPL-2.1-or-later
"""The README's examples run as written, against the real kernel."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

pytestmark = pytest.mark.dm_root

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _block(language: str, starts: str) -> str:
    """The README's code block in ``language`` whose first line starts with ``starts``."""
    found = [block for block in re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.M | re.S)
             if block.startswith(starts)]
    assert len(found) == 1, (language, starts)
    return found[0]


def _gone(ctl, *names: str) -> None:
    for name in names:
        if ctl.exists(name):
            ctl.remove(name, retry=30.0)


def test_the_first_example_runs(dm_control, capsys):
    block = _block("python", "import pydevmapper as dm")
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        _gone(dm_control, "demo", "broken")
    out = [line for line in capsys.readouterr().out.splitlines() if line]  # print(table) ends in a newline
    assert len(out) == 4 and out[2] == "['zero', 'error']" and " DM_TABLE_LOAD " in out[3], out


def test_the_typed_target_example_runs(dm_control, dm_make_loop, capsys):
    block = _block("python", "from pydevmapper import targets as t")
    meta, data = dm_make_loop(64), dm_make_loop(1024)
    # The example names /dev/loop0 and /dev/loop1; the kit hands out the
    # lowest free loop devices, which are those unless something else
    # holds them.
    block = block.replace('"/dev/loop0"', repr(meta.path)).replace('"/dev/loop1"', repr(data.path))
    try:
        exec(compile("import pydevmapper as dm\n" + block, "README.md", "exec"), {})
    finally:
        _gone(dm_control, "pool")
    assert capsys.readouterr().out.split() == ["0", "16384", "True"]


def test_the_stack_example_runs(dm_control, dm_make_loop, capsys):
    block = _block("python", "from pydevmapper import uevents")
    loop = dm_make_loop(4)
    try:
        exec(compile("import pydevmapper as dm\n" + block.replace("7:0", loop.devno_str), "README.md", "exec"), {})
    finally:
        _gone(dm_control, "vol", "data")
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "['vol', 'data']"
    assert [line for line in out[:-1] if line.endswith((" vol", " data"))] == [
        "add data", "change data", "add vol", "change vol"], out


def test_the_shell_example_runs(dm_control):
    lines = [shlex.split(line.split("#")[0]) for line in _block("sh", "pydmsetup create").splitlines() if line.strip()]
    assert [words[:2] for words in lines] == [["pydmsetup", "create"], ["pydmsetup", "status"],
                                              ["pydmstats", "create"], ["pydmstats", "report"]]
    outs = []
    try:
        for words in lines:
            script = os.path.join(os.path.dirname(sys.executable), words[0])
            outs.append(subprocess.run([script, *words[1:]], capture_output=True, text=True, timeout=120))
            assert outs[-1].returncode == 0, outs[-1].stderr
        assert '"parsed"' in outs[1].stdout
        assert outs[2].stdout == "demo: Created new region with 4 area(s) as region ID 0\n"
        assert outs[3].stdout.startswith("Name ") and outs[3].stdout.count("\ndemo ") == 5  # 4 areas, the region
    finally:
        _gone(dm_control, "demo")


def test_the_test_kit_example_runs(tmp_path):
    (tmp_path / "test_example.py").write_text(_block("python", "import pytest"))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout + out.stderr
