# SPDX-License-Identifier: LGPL-2.1-or-later
"""Find, fetch, unpack and patch the Debian kernels the guest boots.

Cache layout::

    ${PYDM_CACHE:-~/.cache/pydevmapper}/kernels/<kver>/debs/       the .deb files
    ${PYDM_CACHE:-~/.cache/pydevmapper}/kernels/<kver>/root/       dpkg -x of them
    ${PYDM_CACHE:-~/.cache/pydevmapper}/kernels/<kver>/buildroot/  the kernel's own
        Debian userland with its headers installed, for a kernel of another
        release than the host's (see build.py)

The packages are only ever *downloaded* (``apt-get download``, on the private
apt state of :mod:`.debian`) and unpacked with ``dpkg -x``; nothing is
installed, so the host's /boot and /lib/modules are never touched.
Everything here is stdlib + subprocess with argv lists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .debian import RELEASES, Apt, bootstrap, cache_dir, host_release
from .errors import Log, SandboxError, require_tool


@dataclass(frozen=True)
class Series:
    """A kernel series the sandbox offers, and where Debian carries it."""

    name: str
    release: str  # the Debian release whose archive carries it
    #: POSIX ERE over package names (apt-cache search uses regcomp, so no \d);
    #: group 1 is the kernel release.  Only the generic signed "-amd64"
    #: flavour: -cloud lacks loop/dm bits we want and -rt changes scheduling
    #: the tests don't care about.
    pattern: str


SERIES: dict[str, Series] = {
    s.name: s
    for s in (
        Series("5.10", "bullseye", r"^linux-image-(5\.10\.0-[0-9]+-amd64)$"),
        Series("6.1", "bookworm", r"^linux-image-(6\.1\.0-[0-9]+-amd64)$"),
        Series("6.12", "bookworm", r"^linux-image-(6\.12\.[0-9]+\+deb12-amd64)$"),
        # The newest series trixie and its backports carry, whatever it is.
        Series("latest", "trixie", r"^linux-image-([0-9]+\.[0-9]+\.[0-9]+\+deb13-amd64)$"),
    )
}
DEFAULT_SERIES = "6.1"
DEFAULT_RELEASE = SERIES[DEFAULT_SERIES].release

# The -amd64 headers' Makefile is a one-line include of the -common tree by
# absolute path; we rewrite it to point into the cache (and re-rewrite it if
# the cache has moved since).
_INCLUDE_RE = re.compile(r"^include[ \t]+(\S*/)?(linux-headers-[^/\s]+-common)/Makefile[ \t]*$", re.M)


@dataclass(frozen=True)
class Kernel:
    """One unpacked kernel in the cache."""

    series: str  # as asked for: "5.10", "6.1", "6.12" or "latest"
    version: str  # kernel release, i.e. `uname -r` in the guest
    release: str  # the Debian release that carries it
    root: Path  # the dpkg -x tree
    vmlinuz: Path
    modules_dir: Path  # root/lib/modules/<version>
    kdir: Path  # root/usr/src/linux-headers-<version>, for `make -C KDIR M=...`

    @property
    def line(self) -> str:
        """The kernel's major.minor, e.g. "7.3" for series "latest"."""
        return ".".join(re.findall(r"\d+", self.version)[:2])

    @property
    def buildroot(self) -> Path | None:
        """Where modules for it are built: its own release's userland, or None for the host.

        A Debian kernel's headers name the compiler it was built with
        (5.10's gcc-10, trixie's gcc-14) and its kbuild tools are linked
        against its release's C library (trixie's need glibc 2.38), so
        only the host of the same release can build for it directly.
        """
        return None if self.release == host_release() else self.root.parent / "buildroot"


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


def _version_key(kver: str) -> tuple[int, ...]:
    # "6.12.117+deb12-amd64" -> (6, 12, 117, 12, 64); the trailing constants
    # are the same for every candidate of a series, so they don't disturb order.
    return tuple(int(n) for n in re.findall(r"\d+", kver))


def _check_series(series: str) -> Series:
    if series not in SERIES:
        raise SandboxError(f"unknown kernel series {series!r}; choose one of: {', '.join(SERIES)}")
    return SERIES[series]


def kernel_at(series: str, kver: str, root: Path) -> Kernel:
    # Debian's kernel packages up to bookworm's put the image in /boot and
    # the modules in /lib/modules; trixie-backports' (seen with 7.3) are
    # merged-/usr, the image /usr/lib/modules/<kver>/vmlinuz.
    modules_dir = root / "lib" / "modules" / kver
    if not modules_dir.is_dir():
        modules_dir = root / "usr" / "lib" / "modules" / kver
    vmlinuz = root / "boot" / f"vmlinuz-{kver}"
    if not vmlinuz.is_file():
        vmlinuz = modules_dir / "vmlinuz"
    return Kernel(
        series=series,
        version=kver,
        release=_check_series(series).release,
        root=root,
        vmlinuz=vmlinuz,
        modules_dir=modules_dir,
        kdir=root / "usr" / "src" / f"linux-headers-{kver}",
    )


def _is_complete(k: Kernel) -> bool:
    unpacked = k.vmlinuz.is_file() and k.modules_dir.is_dir() and (k.kdir / "Makefile").is_file()
    br = k.buildroot
    return unpacked and (br is None or (br / "usr" / "src" / f"linux-headers-{k.version}" / "Makefile").is_file())


def find_cached(series: str = DEFAULT_SERIES) -> Kernel | None:
    """Newest complete cached kernel of *series*, prepared; None if none."""
    pattern = re.compile(_check_series(series).pattern.replace("^linux-image-", "^"))
    base = kernels_dir()
    if not base.is_dir():
        return None
    found = sorted(
        (d.name for d in base.iterdir() if d.is_dir() and pattern.match(d.name)),
        key=_version_key,
        reverse=True,
    )
    for kver in found:
        k = kernel_at(series, kver, base / kver / "root")
        if _is_complete(k):
            return prepare(k)
    return None


def ensure_kernel(series: str = DEFAULT_SERIES) -> Kernel:
    """The cached kernel of *series*, fetching it first if the cache has none."""
    return find_cached(series) or fetch(series)


# --------------------------------------------------------------------------
# apt side


def _candidates(apt: Apt, series: Series) -> list[str]:
    """Kernel versions of *series* that the registry has, newest first."""
    rx = re.compile(series.pattern)
    kvers = {m.group(1) for name in apt.search(series.pattern) if (m := rx.match(name))}
    return sorted(kvers, key=_version_key, reverse=True)


def _depends(stanza: dict[str, str]) -> list[tuple[str, str]]:
    """(name, apt spec) of each dependency's first alternative; "=" deps pinned."""
    out: list[tuple[str, str]] = []
    for dep in stanza.get("Depends", "").split(","):
        alt = dep.split("|")[0].strip()
        m = re.match(r"^(\S+)(?:\s*\((\S+)\s+(\S+)\))?$", alt)
        if m:
            name, op, ver = m.groups()
            # For ">=" deps take the candidate, which apt guarantees is at least as new.
            out.append((name, f"{name}={ver}" if op == "=" else name))
    return out


def _package_specs(apt: Apt, kver: str) -> list[str]:
    """apt-get download specs for the image, headers (-amd64, -common) and kbuild.

    Names differ between series (``linux-kbuild-6.1`` vs
    ``linux-kbuild-6.12.117+deb12``; from 7.x the image is a metapackage
    over ``linux-binary-*`` and ``linux-modules-*``), so they are taken from
    the image's and the headers' Depends rather than guessed.
    """
    image, headers = f"linux-image-{kver}", f"linux-headers-{kver}"
    img, hdr = apt.show(image), apt.show(headers)
    if not img.get("Version") or not hdr.get("Version"):
        return []
    specs = [f"{image}={img['Version']}", f"{headers}={hdr['Version']}"]
    common = kbuild = None
    for name, spec in _depends(img):
        if re.fullmatch(rf"linux-(binary|modules|base)-{re.escape(kver)}", name):
            specs.append(spec)
    for name, spec in _depends(hdr):
        if name.startswith("linux-headers-") and name.endswith("-common"):
            common = spec
        elif name.startswith("linux-kbuild-"):
            kbuild = spec
    if common is None or kbuild is None:
        return []
    return specs + [common, kbuild]


def fetch(series: str = DEFAULT_SERIES, *, log: Log = print) -> Kernel:
    """Reuse the cached kernel of *series* or download + unpack the newest one.

    Picks the newest kver for which image, headers, -common headers and
    kbuild are all downloadable.  Downloads into a staging dir that is renamed
    into place only when complete, so an interrupted fetch never leaves a
    half-unpacked kernel that find_cached() would trust.  A kernel of
    another release than the host's also gets its build root.  When the
    registry cannot be read or the download fails, a cached kernel is used.
    """
    ser = _check_series(series)
    cached = find_cached(series)
    try:
        return _fetch_newest(ser, cached, log=log)
    except SandboxError as e:
        if cached is None:
            raise
        log(f"kernel {series}: {e}\nkernel {series}: using cached {cached.version}")
        return cached


def _fetch_newest(ser: Series, cached: Kernel | None, *, log: Log) -> Kernel:
    apt = Apt(ser.release)
    apt.refresh(log=log)
    candidates = _candidates(apt, ser)
    if not candidates:
        raise SandboxError(f"Debian {ser.release} has no linux-image matching {ser.pattern}")
    for kver in candidates:
        if cached and _version_key(kver) <= _version_key(cached.version):
            log(f"kernel {ser.name}: using cached {cached.version} ({cached.root.parent})")
            return cached
        specs = _package_specs(apt, kver)
        if specs and apt.downloadable(specs):
            return _download_and_unpack(apt, ser.name, kver, specs, log=log)
        log(f"kernel {kver}: not all of image/headers/common/kbuild downloadable, trying older")
    raise SandboxError(f"no {ser.name} kernel has image, headers and kbuild all downloadable")


def _remove_dead_staging() -> None:
    # A fetch killed outright leaves its staging directory (up to ~1 GB with
    # a build root); the pid in its name says whether it is still running.
    for d in kernels_dir().glob(".staging-*-*"):
        pid = d.name.rsplit("-", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


def _download_and_unpack(apt: Apt, series: str, kver: str, specs: list[str], *, log: Log) -> Kernel:
    require_tool("dpkg", "apt-get install dpkg")
    _remove_dead_staging()
    final = kernels_dir() / kver
    staging = kernels_dir() / f".staging-{kver}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "debs").mkdir(parents=True)
    try:
        log(f"kernel {kver}: downloading {' '.join(specs)}")
        apt.download(specs, staging / "debs")
        for deb in sorted((staging / "debs").glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(staging / "root")], check=True)
        k = prepare(kernel_at(series, kver, staging / "root"))
        if k.buildroot is not None:
            # The headers package pulls in the compiler and kbuild it names.
            bootstrap(k.release, staging / "buildroot", [f"linux-headers-{kver}", "make", "binutils"], log=log)
        if final.exists():  # e.g. incomplete leftover from an older tool version
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Re-prepare at the final path: the Makefile patch holds an absolute path.
    return prepare(kernel_at(series, kver, final / "root"))


# --------------------------------------------------------------------------
# making the unpacked tree usable


def prepare(k: Kernel) -> Kernel:
    """Idempotently fix up an unpacked kernel tree; returns *k*.

    * KDIR/Makefile includes the -common tree by absolute /usr/src path ->
      point it into the cache so ``make -C KDIR M=...`` works on the host.
    * lib/modules/<kver>/{build,source} are absolute /usr/src symlinks ->
      make them relative, so they resolve on the host and in the guest.
    * merged-/usr packages (trixie-backports') -> link lib to usr/lib.
    * .debs ship no modules.dep -> run depmod, so modprobe works in the guest
      (virtme-ng would do it too, but silently and only when booting).
    """
    _patch_makefile(k)
    _relink_build(k)
    _link_merged_usr(k)
    if not (k.modules_dir / "modules.dep").is_file():
        depmod = require_tool("depmod", "apt-get install kmod")
        subprocess.run([depmod, "-a", "-b", str(k.root), k.version], check=True)
    _verify(k)
    return k


def _patch_makefile(k: Kernel) -> None:
    mk = k.kdir / "Makefile"
    text = mk.read_text()
    m = _INCLUDE_RE.search(text)
    if not m:
        return  # not a Debian split-headers tree; leave it alone
    want = f"include {k.root.resolve() / 'usr' / 'src' / m.group(2)}/Makefile"
    if m.group(0).strip() != want:
        mk.write_text(text[: m.start()] + want + text[m.end() :])


def _link_merged_usr(k: Kernel) -> None:
    # A merged-/usr kernel package has only usr/lib/modules; give the tree
    # the /lib -> usr/lib link such a system has, so depmod -b and
    # virtme-ng find the modules where they look.
    if (k.root / "usr" / "lib" / "modules").is_dir() and not os.path.lexists(k.root / "lib"):
        (k.root / "lib").symlink_to("usr/lib")


def _relink_build(k: Kernel) -> None:
    for name in ("build", "source"):
        link = k.modules_dir / name
        if link.is_symlink():
            target = os.readlink(link)
            if target.startswith("/usr/src/"):
                link.unlink()
                link.symlink_to(os.path.relpath(k.root / target.lstrip("/"), k.modules_dir))


def _verify(k: Kernel) -> None:
    problems: list[str] = []
    if not k.vmlinuz.is_file():
        problems.append(f"missing {k.vmlinuz}")
    root = str(k.root.resolve())
    for d in (k.kdir, *k.kdir.parent.glob("linux-headers-*-common")):
        scripts = d / "scripts"
        real = os.path.realpath(scripts)
        if not (real.startswith(root + os.sep) and os.path.isdir(real)):
            problems.append(f"{scripts} -> {real} does not resolve inside the cache (kbuild missing?)")
    m = _INCLUDE_RE.search((k.kdir / "Makefile").read_text())
    if m and not Path(m.group(0).split(None, 1)[1].strip()).is_file():
        problems.append(f"{k.kdir}/Makefile includes a missing file: {m.group(0)}")
    if problems:
        raise SandboxError(f"kernel {k.version} in {k.root} is unusable:\n  " + "\n  ".join(problems))


def module_state(k: Kernel, name: str) -> str:
    """'builtin', 'module' or 'missing' for kernel module *name* (dm-mod, loop...)."""
    norm = name.replace("-", "_")

    def stem(path: str) -> str:
        base = path.rsplit("/", 1)[-1]
        return base.split(".ko", 1)[0].replace("-", "_")

    for fname, state in (("modules.builtin", "builtin"), ("modules.dep", "module")):
        f = k.modules_dir / fname
        if f.is_file():
            for line in f.read_text().splitlines():
                if line and stem(line.split(":", 1)[0]) == norm:
                    return state
    return "missing"


# --------------------------------------------------------------------------
# static busybox for virtme-ng's initramfs


def static_busybox(*, log: Log = print) -> Path:
    """A statically linked busybox for virtme-ng's initramfs.

    Debian kernels have 9p/overlay as modules, so virtme-ng needs an
    initramfs, and for that a *static* busybox.  Debian 12's ``busybox`` is
    dynamic and ``busybox-static`` Conflicts with it, so rather than swap
    packages on the host we unpack busybox-static into the cache.
    """
    for cand in (os.environ.get("PYDM_BUSYBOX"), shutil.which("busybox"), "/bin/busybox"):
        if cand and os.path.isfile(cand) and _is_static(Path(cand)):
            return Path(cand)
    tools = cache_dir() / "tools"
    bb = tools / "busybox-static" / "bin" / "busybox"
    if bb.is_file():
        return bb
    debs = tools / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log("fetching busybox-static into the cache (virtme-ng needs a static busybox)")
    host = host_release()
    apt = Apt(host if host in RELEASES else DEFAULT_RELEASE)
    apt.refresh(log=log)
    apt.download(["busybox-static"], debs)
    staging = tools / f".busybox-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for deb in debs.glob("busybox-static_*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True)
    shutil.rmtree(tools / "busybox-static", ignore_errors=True)
    staging.rename(tools / "busybox-static")
    if not bb.is_file():
        raise SandboxError(f"busybox-static deb did not contain bin/busybox ({bb})")
    return bb


def _is_static(path: Path) -> bool:
    # A static ELF has no PT_INTERP program header; check without `file`.
    try:
        data = path.read_bytes()[:65536]
    except OSError:
        return False
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only; that's all we boot
        return False
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off : off + 4], "little") == 3:  # PT_INTERP
            return False
    return True


if __name__ == "__main__":  # pragma: no cover - debugging aid
    print(ensure_kernel(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SERIES))
