# SPDX-License-Identifier: LGPL-2.1-or-later
"""Peers' own test suites, for the root tier to run with pydmsetup as the
system's dmsetup: cryptsetup's ``tests/`` scripts (GPL-2.0, so fetched, not
shipped), from Debian's source package of the installed cryptsetup-bin,
into ``${PYDM_CACHE}/peers/cryptsetup-<version>/tests``.  The source comes
through a private apt state (``deb-src`` lines), as the kernels do.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .debian import Apt, cache_dir, host_release
from .errors import Log, SandboxError, require_tool


def installed_version(package: str) -> str:
    """The installed Debian version of *package* (epoch included)."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0 or not res.stdout:
        raise SandboxError(f"{package} is not installed (scripts/setup-host.sh installs it)")
    return res.stdout


def upstream(version: str) -> str:
    """``2:2.6.1-4~deb12u2`` -> ``2.6.1``."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def cryptsetup_tests_dir() -> Path:
    """Where the installed cryptsetup's test scripts are (or go)."""
    return cache_dir() / "peers" / f"cryptsetup-{upstream(installed_version('cryptsetup-bin'))}" / "tests"


def fetch_cryptsetup_tests(*, log: Log = print) -> Path:
    """cryptsetup's ``tests/`` for the installed version, fetched once."""
    dest = cryptsetup_tests_dir()
    if (dest / "mode-test").is_file():
        _build_differ(dest)
        return dest
    release = host_release()
    if release is None:
        raise SandboxError("the peers' suites come from Debian's sources: not a Debian host")
    version = installed_version("cryptsetup-bin")
    apt = Apt(release, "deb-src")
    apt.refresh(log=log)
    log(f"peers: fetching cryptsetup {version}'s source for its test scripts")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        staging = Path(tmp)
        apt.download_source(f"cryptsetup={version}", staging)
        [orig] = [p for p in staging.glob(f"cryptsetup_{upstream(version)}.orig.tar.*")
                  if not p.name.endswith(".asc")]
        top = f"cryptsetup-{upstream(version)}/tests/"
        with tarfile.open(orig) as tar:
            # Plain files and directories under tests/ only, nothing that climbs out.
            members = [m for m in tar.getmembers() if m.name.startswith(top)
                       and (m.isfile() or m.isdir()) and ".." not in Path(m.name).parts]
            tar.extractall(staging / "src", members=members)
        _build_differ(staging / "src" / top)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(staging / "src" / top), str(dest))
    log(f"peers: cryptsetup's test scripts in {dest}")
    return dest


def _build_differ(tests: Path) -> None:
    """``differ``, the compare tool ``compat-test`` and ``compat-test2``
    skip without (cryptsetup's ``make check`` builds it from ``differ.c``)."""
    if (tests / "differ").is_file() or not (tests / "differ.c").is_file():
        return
    res = subprocess.run([require_tool("gcc"), "-O2", "-o", str(tests / "differ"), str(tests / "differ.c")],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SandboxError(f"building cryptsetup's tests/differ failed:\n{res.stderr[-2000:]}")
