# SPDX-License-Identifier: LGPL-2.1-or-later
"""The peers' scripts as fetched: the version they are fetched for, and the
``differ`` tool built beside them (``compat-test`` skips without it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pydevmapper.sandbox import peers
from pydevmapper.sandbox.errors import SandboxError


def test_upstream_version_drops_epoch_and_debian_revision() -> None:
    assert peers.upstream("2:2.6.1-4~deb12u2") == "2.6.1"
    assert peers.upstream("2.7.0-1") == "2.7.0"


def test_differ_is_built_from_its_source_once(tmp_path: Path) -> None:
    (tmp_path / "differ.c").write_text('#include <stdio.h>\nint main(void) { puts("differ"); return 0; }\n')
    peers._build_differ(tmp_path)
    out = subprocess.run([str(tmp_path / "differ")], capture_output=True, text=True, check=True)
    assert out.stdout == "differ\n"
    built = (tmp_path / "differ").stat().st_mtime_ns
    peers._build_differ(tmp_path)
    assert (tmp_path / "differ").stat().st_mtime_ns == built


def test_differ_that_does_not_build_is_an_error_naming_the_compiler_s_words(tmp_path: Path) -> None:
    (tmp_path / "differ.c").write_text("int main(void) { return no_such_thing; }\n")
    with pytest.raises(SandboxError, match="no_such_thing"):
        peers._build_differ(tmp_path)
    assert not (tmp_path / "differ").exists()


def test_no_differ_source_no_differ(tmp_path: Path) -> None:
    peers._build_differ(tmp_path)
    assert list(tmp_path.iterdir()) == []
