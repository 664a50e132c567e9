# SPDX-License-Identifier: LGPL-2.1-or-later
"""The sandbox's kernel fetching and module building, without the network:
which packages make a kernel, where an unpacked one keeps its image and
modules, where its modules are built, and that a build that warns fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pydevmapper.sandbox import build, debian, kernels
from pydevmapper.sandbox.errors import SandboxError


class FakeApt:
    """An Apt whose ``show`` answers from a table of stanzas."""

    def __init__(self, stanzas: dict[str, dict[str, str]]) -> None:
        self.stanzas = stanzas

    def show(self, pkg: str) -> dict[str, str]:
        return self.stanzas.get(pkg, {})


def test_specs_of_a_kernel_whose_image_is_one_package() -> None:
    kver = "5.10.0-46-amd64"
    apt = FakeApt({
        f"linux-image-{kver}": {"Version": "5.10.262-1", "Depends": "kmod, linux-base (>= 4.3~), initramfs-tools"},
        f"linux-headers-{kver}": {"Version": "5.10.262-1", "Depends": (
            "linux-headers-5.10.0-46-common (= 5.10.262-1), linux-kbuild-5.10 (>= 5.10.262-1), "
            "linux-compiler-gcc-10-x86")},
    })  # fmt: skip
    assert kernels._package_specs(apt, kver) == [  # type: ignore[arg-type]
        f"linux-image-{kver}=5.10.262-1",
        f"linux-headers-{kver}=5.10.262-1",
        "linux-headers-5.10.0-46-common=5.10.262-1",
        "linux-kbuild-5.10",
    ]


def test_specs_of_a_kernel_whose_image_is_a_metapackage() -> None:
    # From 7.x the image depends on -binary (vmlinuz), -modules and -base.
    kver, v = "7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"
    apt = FakeApt({
        f"linux-image-{kver}": {"Version": v, "Depends": (
            f"dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-{kver} (= {v}), "
            f"linux-binary-{kver} (= {v}), linux-modules-{kver} (= {v})")},
        f"linux-headers-{kver}": {"Version": v, "Depends": (
            f"gcc-14-for-host, linux-base (>= 4.12~), linux-base-{kver} (= {v}), "
            f"linux-headers-7.3.4+deb13-common (= {v}), linux-kbuild-7.3.4+deb13")},
    })  # fmt: skip
    specs = kernels._package_specs(apt, kver)  # type: ignore[arg-type]
    assert specs == [
        f"linux-image-{kver}={v}", f"linux-headers-{kver}={v}", f"linux-base-{kver}={v}",
        f"linux-binary-{kver}={v}", f"linux-modules-{kver}={v}",
        f"linux-headers-7.3.4+deb13-common={v}", "linux-kbuild-7.3.4+deb13",
    ]  # fmt: skip


def test_a_kernel_without_headers_or_kbuild_is_not_offered() -> None:
    kver = "6.1.0-9-amd64"
    assert kernels._package_specs(FakeApt({f"linux-image-{kver}": {"Version": "1"}}), kver) == []  # type: ignore[arg-type]
    apt = FakeApt({f"linux-image-{kver}": {"Version": "1"}, f"linux-headers-{kver}": {"Version": "1", "Depends": ""}})
    assert kernels._package_specs(apt, kver) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("series", "name", "matches"),
    [
        ("5.10", "linux-image-5.10.0-46-amd64", True),
        ("5.10", "linux-image-5.10.0-46-cloud-amd64", False),
        ("6.12", "linux-image-6.12.118+deb12-amd64", True),
        ("latest", "linux-image-7.3.4+deb13-amd64", True),
        ("latest", "linux-image-7.3.4+deb13-amd64-unsigned", False),
        ("latest", "linux-image-7.3.4+deb13-rt-amd64", False),
        ("latest", "linux-image-6.12.118+deb12-amd64", False),
    ],
)
def test_series_patterns(series: str, name: str, matches: bool) -> None:
    assert bool(re.match(kernels.SERIES[series].pattern, name)) is matches


def _unpacked(root: Path, kver: str, *, merged_usr: bool) -> None:
    mods = root / ("usr/lib" if merged_usr else "lib") / "modules" / kver
    (mods / "kernel").mkdir(parents=True)
    if merged_usr:
        (mods / "vmlinuz").write_bytes(b"k")
    else:
        (root / "boot").mkdir()
        (root / "boot" / f"vmlinuz-{kver}").write_bytes(b"k")


def test_an_unpacked_kernel_with_boot_and_lib(tmp_path: Path) -> None:
    _unpacked(tmp_path, "6.1.0-9-amd64", merged_usr=False)
    k = kernels.kernel_at("6.1", "6.1.0-9-amd64", tmp_path)
    assert k.vmlinuz == tmp_path / "boot" / "vmlinuz-6.1.0-9-amd64"
    assert k.modules_dir == tmp_path / "lib" / "modules" / "6.1.0-9-amd64"
    assert (k.release, k.line) == ("bookworm", "6.1")


def test_an_unpacked_merged_usr_kernel_gets_its_lib_link(tmp_path: Path) -> None:
    kver = "7.3.4+deb13-amd64"
    _unpacked(tmp_path, kver, merged_usr=True)
    k = kernels.kernel_at("latest", kver, tmp_path)
    assert k.vmlinuz == tmp_path / "usr" / "lib" / "modules" / kver / "vmlinuz"
    kernels._link_merged_usr(k)
    assert (tmp_path / "lib" / "modules" / kver / "kernel").is_dir()  # what depmod -b and virtme-ng read
    again = kernels.kernel_at("latest", kver, tmp_path)
    assert again.vmlinuz.is_file() and again.modules_dir.is_dir()
    assert (again.release, again.line) == ("trixie", "7.3")


def test_only_a_kernel_of_another_release_gets_a_build_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kernels, "host_release", lambda: "bookworm")
    at = kernels.kernel_at
    assert at("6.12", "6.12.118+deb12-amd64", tmp_path / "a" / "root").buildroot is None
    assert at("5.10", "5.10.0-46-amd64", tmp_path / "b" / "root").buildroot == tmp_path / "b" / "buildroot"
    assert at("latest", "7.3.4+deb13-amd64", tmp_path / "c" / "root").buildroot == tmp_path / "c" / "buildroot"
    monkeypatch.setattr(kernels, "host_release", lambda: "trixie")
    assert at("latest", "7.3.4+deb13-amd64", tmp_path / "c" / "root").buildroot is None


def test_the_private_apt_state_stays_in_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYDM_CACHE", str(tmp_path))
    opts = debian.Apt("bullseye").options()
    values = [o.split("=", 1)[1] for o in opts[1::2] if o.startswith("Dir")]
    assert values and all(v.startswith(str(tmp_path / "apt" / "bullseye")) for v in values)
    assert debian.source_lines("trixie") == [
        f"deb [signed-by={debian.KEYRING}] http://deb.debian.org/debian trixie main",
        f"deb [signed-by={debian.KEYRING}] http://deb.debian.org/debian trixie-backports main",
        f"deb [signed-by={debian.KEYRING}] http://deb.debian.org/debian-security trixie-security main",
    ]
    with pytest.raises(SandboxError, match="unknown Debian release"):
        debian.source_lines("hamm")


def test_compiler_warnings() -> None:
    out = (
        "  CC [M]  /b/basic_target.o\n"
        "/b/basic_target.c:12:5: warning: no previous prototype for 'f' [-Wmissing-prototypes]\n"
        "  LD [M]  /b/basic_target.ko\n"
    )
    assert build.compiler_warnings(out) == [
        "/b/basic_target.c:12:5: warning: no previous prototype for 'f' [-Wmissing-prototypes]"
    ]
    assert build.compiler_warnings("  CC [M]  x.o\n  LD [M]  x.ko\n  BTF [M] x.ko\n") == []
    said = [
        "/b/basic_target.o: warning: objtool: basic_map+0x1f: unreachable instruction",
        "WARNING: modpost: missing MODULE_DESCRIPTION() in /b/basic_target.o",
        "/b/compat.h:30:2: error: #error \"too old\"",
        "In file included from x.c:1:\n/u/include/linux/blkdev.h:7:1: warning: 'nocf_check' attribute ignored",
    ]
    assert len(build.compiler_warnings("\n".join(said))) == 4
    # make's and kbuild's notes about the set-up are not the module's warnings.
    notes = (
        "make[1]: warning: jobserver unavailable: using -j1.  Add '+' to parent make rule.\n"
        "  warning: the compiler differs from the one used to build the kernel\n"
        "make: warning:  Clock skew detected.  Your build may be incomplete.\n"
        "gcc -Werror=implicit-function-declaration -c errors.c\n"
    )
    assert build.compiler_warnings(notes) == []


def _fake_csrc(tmp_path: Path, say: str) -> Path:
    """A csrc/ whose Makefile 'builds' the module and prints *say*."""
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    for name in build.MODULE_SOURCES:
        (csrc / name).write_text("")
    (csrc / "Makefile").write_text(
        f"modules:\n\t@echo '{say}'\n\t@mkdir -p $(BUILD_DIR)\n\t@touch $(BUILD_DIR)/basic_target.ko\n"
    )
    return csrc


def test_a_module_build_that_warns_fails_and_leaves_no_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYDM_CACHE", str(tmp_path / "cache"))
    csrc = _fake_csrc(tmp_path, "basic_target.c:1:1: warning: unused variable x")
    with pytest.raises(SandboxError, match="warned") as err:
        with build.built_module(tmp_path, "9.9.9-test", csrc=csrc, log=lambda m: None):
            pytest.fail("a build that warned was used")
    assert "unused variable x" in str(err.value)
    assert list((tmp_path / "cache" / "build").iterdir()) == []


def test_a_clean_module_build_is_used_and_built_with_w1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYDM_CACHE", str(tmp_path / "cache"))
    csrc = _fake_csrc(tmp_path, "W=$(W)")
    seen: list[list[str]] = []
    real_run = build.subprocess.run

    def run(argv: list[str], **kw: object):  # type: ignore[no-untyped-def]
        seen.append(argv)
        return real_run(argv, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(build.subprocess, "run", run)
    with build.built_module(tmp_path, "9.9.9-test", csrc=csrc, log=lambda m: None) as ko:
        assert ko is not None and ko.is_file() and ko.name == "basic_target.ko"
        assert ko.parent.parent == tmp_path / "cache" / "build" and ko.parent.name.startswith("9.9.9-test-")
    assert "W=1" in seen[0]
    assert list((tmp_path / "cache" / "build").iterdir()) == []


def test_runs_side_by_side_for_one_kernel_each_keep_their_own_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Two sandbox runs for one kernel at once: the second's build must not
    # remove the module the first one's guest is loading, nor the other way.
    monkeypatch.setenv("PYDM_CACHE", str(tmp_path / "cache"))
    csrc = _fake_csrc(tmp_path, "built")
    quiet = lambda m: None  # noqa: E731
    with build.built_module(tmp_path, "9.9.9-test", csrc=csrc, log=quiet) as first:
        with build.built_module(tmp_path, "9.9.9-test", csrc=csrc, log=quiet) as second:
            assert first is not None and second is not None and first != second
            assert first.is_file() and second.is_file()
        assert first.is_file() and not second.exists()
    assert not first.exists()


def _fake_build_root(monkeypatch: pytest.MonkeyPatch, root: Path, returncode: int) -> list[list[str]]:
    """A build root whose 'make' (run through unshare) leaves a module in
    its BUILD_DIR, as seen from inside the root, and exits *returncode*."""
    seen: list[list[str]] = []

    def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        inside = next(a for a in argv if a.startswith("BUILD_DIR=")).split("=", 1)[1]
        (root / inside.lstrip("/")).mkdir(parents=True)
        (root / inside.lstrip("/") / "basic_target.ko").write_text("ko")
        return subprocess.CompletedProcess(argv, returncode, "", "make: *** error\n" if returncode else "")

    monkeypatch.setattr(build.os, "geteuid", lambda: 0)
    monkeypatch.setattr(build, "require_tool", lambda name: name)
    monkeypatch.setattr(build.subprocess, "run", run)
    return seen


def test_a_build_in_a_build_root_uses_its_own_directory_there_and_leaves_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYDM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "buildroot"
    root.mkdir()
    seen = _fake_build_root(monkeypatch, root, 0)
    csrc = _fake_csrc(tmp_path, "unused")
    quiet = lambda m: None  # noqa: E731
    with build.built_module(tmp_path, "9.9.9-test", buildroot=root, csrc=csrc, log=quiet) as first:
        with build.built_module(tmp_path, "9.9.9-test", buildroot=root, csrc=csrc, log=quiet) as second:
            assert first is not None and second is not None and first != second
            assert first.read_text() == "ko" and second.read_text() == "ko"
            # The module is copied out of the build root, which keeps nothing.
            assert list(root.iterdir()) == []
    dirs = [next(a for a in argv if a.startswith("BUILD_DIR=")) for argv in seen]
    assert len(set(dirs)) == 2 and all(d.startswith("BUILD_DIR=/build-") for d in dirs)
    assert all("--kill-child" in argv and f"--root={root}" in argv for argv in seen)
    assert list((tmp_path / "cache" / "build").iterdir()) == []


def test_a_failed_build_in_a_build_root_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYDM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "buildroot"
    root.mkdir()
    _fake_build_root(monkeypatch, root, 2)
    csrc = _fake_csrc(tmp_path, "unused")
    with pytest.raises(SandboxError, match="failed"):
        with build.built_module(tmp_path, "9.9.9-test", buildroot=root, csrc=csrc, log=lambda m: None):
            pytest.fail("a build that failed was used")
    assert list(root.iterdir()) == []
    assert list((tmp_path / "cache" / "build").iterdir()) == []
