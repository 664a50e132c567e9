# SPDX-License-Identifier: LGPL-2.1-or-later
"""Build csrc/'s basic_target.ko for a guest kernel.

The module is built with ``W=1`` and a build that prints any compiler
warning fails: it must build warning-free on every kernel the sandbox boots.
A kernel of the host's Debian release is built for on the host; any other
is built inside its build root (its own release's userland with its headers
at their usual /usr/src paths, made by :func:`.debian.bootstrap`), entered
with ``unshare --root`` and a /proc of its own (objtool reads it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Generator
from pathlib import Path

from .debian import cache_dir
from .errors import Log, SandboxError, require_tool

REPO = Path(__file__).resolve().parents[2]
# What csrc/Makefile needs to build the module (the copy in a build root).
MODULE_SOURCES = ("Makefile", "Kbuild", "basic_target.c", "compat.h")
# What the compiler (file:line[:col]: warning:), objtool (x.o: warning:
# objtool: ...) and modpost (WARNING: modpost: ...) say about the module.
# Not make's own notes, nor kbuild's about the build set-up (a compiler or
# pahole of another point release than the kernel's).
_WARNING = re.compile(
    r"^(?:\S+?:\d+(?::\d+)?: (?:fatal )?(?:warning|error):"
    r"|\S+\.o: (?:warning|error): objtool:"
    r"|(?:WARNING|ERROR): modpost:).*$",
    re.M,
)


def compiler_warnings(output: str) -> list[str]:
    """The compiler's, objtool's and modpost's warning and error lines in *output*."""
    return [m.group(0).strip() for m in _WARNING.finditer(output)]


@contextlib.contextmanager
def built_module(
    kdir: Path,
    kver: str,
    *,
    buildroot: Path | None = None,
    csrc: Path = REPO / "csrc",
    log: Log = print,
) -> Generator[Path | None, None, None]:
    """basic_target.ko built for *kver*, in a directory of this run's own
    under ${PYDM_CACHE}/build/, removed when the ``with`` block ends.

    *kdir* is the headers tree on the host; with *buildroot*, the build
    runs in there against ``/usr/src/linux-headers-<kver>`` instead.
    Yields the .ko path, or None (with a message) when csrc/ has no
    Makefile.  Raises SandboxError if the build fails or warns.

    Every run builds its own (a second or two): an incremental build would
    reuse an object that warned and print nothing, and runs side by side
    for one kernel must not rebuild or remove the module another's guest
    is loading.
    """
    if not (csrc / "Makefile").is_file():
        log(f"sandbox: {csrc}/Makefile not found; not building basic_target.ko (PYDM_BASIC_TARGET_KO unset)")
        yield None
        return
    base = cache_dir() / "build"
    base.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f"{kver}-", dir=base))
    try:
        _build(kdir, kver, out, buildroot=buildroot, csrc=csrc)
        yield out / "basic_target.ko"
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _build(kdir: Path, kver: str, out: Path, *, buildroot: Path | None, csrc: Path) -> None:
    ko = out / "basic_target.ko"
    if buildroot is None:
        argv = [require_tool("make"), "-C", str(csrc), f"KDIR={kdir}", f"BUILD_DIR={out}", "W=1", "modules"]
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        env["PWD"] = str(csrc)  # some Makefiles use $(PWD) for M=
        _make(argv, env, kver, ko)
        return
    if os.geteuid() != 0:
        raise SandboxError(f"building for {kver} enters its build root {buildroot}: run as root")
    work = Path(tempfile.mkdtemp(prefix="build-", dir=buildroot))
    try:
        inside = "/" + work.name
        (work / "csrc").mkdir()
        for name in MODULE_SOURCES:
            shutil.copy2(csrc / name, work / "csrc" / name)
        # --kill-child: make goes with unshare if the run is stopped, and
        # cannot write into the directory after it is removed.
        argv = [require_tool("unshare"), "--mount", "--pid", "--fork", "--kill-child", "--mount-proc=/proc",
                f"--root={buildroot}",
                "make", "-C", f"{inside}/csrc", f"KDIR=/usr/src/linux-headers-{kver}", f"BUILD_DIR={inside}/out",
                "W=1", "modules"]  # fmt: skip
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
        _make(argv, env, kver, work / "out" / "basic_target.ko")
        shutil.copy2(work / "out" / "basic_target.ko", ko)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _make(argv: list[str], env: dict[str, str], kver: str, built: Path) -> None:
    """Run the build; it must exit 0, warn about nothing and leave *built*."""
    res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    output = res.stdout + res.stderr
    problems = compiler_warnings(output)
    if res.returncode != 0 or problems or not built.is_file():
        what = "failed" if res.returncode != 0 or not problems else "warned"
        raise SandboxError(
            f"building basic_target.ko for {kver} {what} ({shlex.join(argv)}):\n"
            + ("\n".join(problems) + "\n" if problems else "")
            + output[-4000:]
        )
