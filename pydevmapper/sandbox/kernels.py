# SPDX-License-Identifier: LGPL-2.1-or-later
"""Find, fetch, unpack and patch the Debian kernels the guest boots.

Cache layout::

    ${PYDM_CACHE:-~/.cache/pydevmapper}/kernels/<kver>/debs/   the .deb files
    ${PYDM_CACHE:-~/.cache/pydevmapper}/kernels/<kver>/root/   dpkg -x of them

The packages are only ever *downloaded* (``apt-get download``) and unpacked
with ``dpkg -x``; nothing is installed, so the host's /boot and /lib/modules
are never touched.  Everything here is stdlib + subprocess with argv lists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import Log, SandboxError, require_tool

#: Series name -> regex over ``apt-cache`` package names; group 1 is the kver.
#: POSIX ERE (apt-cache search uses regcomp, so no \d).
#: Only the generic signed "-amd64" flavour: -cloud lacks loop/dm bits we want
#: and -rt changes scheduling behaviour the tests don't care about.
SERIES: dict[str, str] = {
    "6.1": r"^linux-image-(6\.1\.0-[0-9]+-amd64)$",
    "6.12": r"^linux-image-(6\.12\.[0-9]+\+deb12-amd64)$",
}
DEFAULT_SERIES = "6.1"

# The -amd64 headers' Makefile is a one-line include of the -common tree by
# absolute path; we rewrite it to point into the cache (and re-rewrite it if
# the cache has moved since).
_INCLUDE_RE = re.compile(r"^include[ \t]+(\S*/)?(linux-headers-[^/\s]+-common)/Makefile[ \t]*$", re.M)


@dataclass(frozen=True)
class Kernel:
    """One unpacked kernel in the cache."""

    series: str
    version: str  # kernel release, i.e. `uname -r` in the guest
    root: Path  # the dpkg -x tree
    vmlinuz: Path
    modules_dir: Path  # root/lib/modules/<version>
    kdir: Path  # root/usr/src/linux-headers-<version>, for `make -C KDIR M=...`


def cache_dir() -> Path:
    return Path(os.environ.get("PYDM_CACHE") or Path.home() / ".cache" / "pydevmapper")


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


def _version_key(kver: str) -> tuple[int, ...]:
    # "6.12.117+deb12-amd64" -> (6, 12, 117, 12, 64); the trailing constants
    # are the same for every candidate of a series, so they don't disturb order.
    return tuple(int(n) for n in re.findall(r"\d+", kver))


def _check_series(series: str) -> str:
    if series not in SERIES:
        raise SandboxError(f"unknown kernel series {series!r}; choose one of: {', '.join(SERIES)}")
    return series


def kernel_at(series: str, kver: str, root: Path) -> Kernel:
    return Kernel(
        series=series,
        version=kver,
        root=root,
        vmlinuz=root / "boot" / f"vmlinuz-{kver}",
        modules_dir=root / "lib" / "modules" / kver,
        kdir=root / "usr" / "src" / f"linux-headers-{kver}",
    )


def _is_complete(k: Kernel) -> bool:
    return k.vmlinuz.is_file() and k.modules_dir.is_dir() and (k.kdir / "Makefile").is_file()


def find_cached(series: str = DEFAULT_SERIES) -> Kernel | None:
    """Newest complete cached kernel of *series*, prepared; None if none."""
    pattern = re.compile(SERIES[_check_series(series)].replace("^linux-image-", "^"))
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


def _apt(args: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


def _candidates(series: str) -> list[str]:
    """Kernel versions of *series* that apt knows, newest first."""
    require_tool("apt-cache", "this needs a Debian/Ubuntu host with apt")
    pattern = SERIES[series]
    res = _apt(["apt-cache", "search", "--names-only", pattern])
    if res.returncode != 0:
        raise SandboxError(f"apt-cache search failed: {res.stderr.strip()}")
    rx = re.compile(pattern)
    kvers = {m.group(1) for line in res.stdout.splitlines() if (m := rx.match(line.split(" - ")[0].strip()))}
    return sorted(kvers, key=_version_key, reverse=True)


def _show(pkg: str) -> dict[str, str]:
    """Candidate stanza of ``apt-cache show`` as a dict (first stanza only)."""
    res = _apt(["apt-cache", "show", "--no-all-versions", pkg])
    fields: dict[str, str] = {}
    for line in res.stdout.splitlines():
        if not line.strip():
            break
        if ":" in line and not line.startswith(" "):
            key, _, val = line.partition(":")
            fields[key] = val.strip()
    return fields


def _package_specs(kver: str) -> list[str]:
    """apt-get download specs for image, headers (-amd64, -common) and kbuild.

    The -common and kbuild package names differ between series (e.g.
    ``linux-kbuild-6.1`` vs ``linux-kbuild-6.12.117+deb12``), so they are taken
    from the headers package's Depends rather than guessed.
    """
    image, headers = f"linux-image-{kver}", f"linux-headers-{kver}"
    img, hdr = _show(image), _show(headers)
    if not img.get("Version") or not hdr.get("Version"):
        return []
    specs = [f"{image}={img['Version']}", f"{headers}={hdr['Version']}"]
    common = kbuild = None
    for dep in hdr.get("Depends", "").split(","):
        alt = dep.split("|")[0].strip()
        m = re.match(r"^(\S+)(?:\s*\((\S+)\s+(\S+)\))?$", alt)
        if not m:
            continue
        name, op, ver = m.groups()
        # Pin exact-equal deps; for ">=" deps take the candidate, which apt
        # guarantees is at least as new.
        spec = f"{name}={ver}" if op == "=" else name
        if name.startswith("linux-headers-") and name.endswith("-common"):
            common = spec
        elif name.startswith("linux-kbuild-"):
            kbuild = spec
    if common is None or kbuild is None:
        return []
    return specs + [common, kbuild]


def _downloadable(specs: list[str]) -> bool:
    # --print-uris resolves every spec without downloading ~100 MB.
    res = _apt(["apt-get", "download", "--print-uris", *specs])
    return res.returncode == 0 and res.stdout.count("'") >= 2 * len(specs)


def fetch(series: str = DEFAULT_SERIES, *, log: Log = print) -> Kernel:
    """Reuse the cached kernel of *series* or download + unpack the newest one.

    Picks the newest kver for which image, headers, -common headers and
    kbuild are all downloadable.  Downloads into a staging dir that is renamed
    into place only when complete, so an interrupted fetch never leaves a
    half-unpacked kernel that find_cached() would trust.
    """
    _check_series(series)
    cached = find_cached(series)
    candidates = _candidates(series)
    if not candidates:
        if cached:
            log(f"apt knows no {series} kernels; using cached {cached.version}")
            return cached
        raise SandboxError(
            f"apt knows no linux-image for series {series}; run `apt-get update`"
            + (" and enable bookworm-backports for 6.12" if series == "6.12" else "")
        )
    for kver in candidates:
        if cached and _version_key(kver) <= _version_key(cached.version):
            log(f"kernel {series}: using cached {cached.version} ({cached.root.parent})")
            return cached
        specs = _package_specs(kver)
        if specs and _downloadable(specs):
            return _download_and_unpack(series, kver, specs, log=log)
        log(f"kernel {kver}: not all of image/headers/common/kbuild downloadable, trying older")
    if cached:
        return cached
    raise SandboxError(f"no {series} kernel has image, headers and kbuild all downloadable")


def _download_and_unpack(series: str, kver: str, specs: list[str], *, log: Log) -> Kernel:
    require_tool("dpkg", "apt-get install dpkg")
    final = kernels_dir() / kver
    staging = kernels_dir() / f".staging-{kver}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "debs").mkdir(parents=True)
    try:
        log(f"kernel {kver}: downloading {' '.join(specs)}")
        res = _apt(["apt-get", "download", *specs], cwd=staging / "debs")
        if res.returncode != 0:
            raise SandboxError(f"apt-get download failed:\n{res.stderr.strip()}")
        for deb in sorted((staging / "debs").glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(staging / "root")], check=True)
        prepare(kernel_at(series, kver, staging / "root"))
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
    * .debs ship no modules.dep -> run depmod, so modprobe works in the guest
      (virtme-ng would do it too, but silently and only when booting).
    """
    _patch_makefile(k)
    _relink_build(k)
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
    require_tool("apt-get", "this needs a Debian/Ubuntu host with apt")
    debs = tools / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log("fetching busybox-static into the cache (virtme-ng needs a static busybox)")
    res = _apt(["apt-get", "download", "busybox-static"], cwd=debs)
    if res.returncode != 0:
        raise SandboxError(f"apt-get download busybox-static failed:\n{res.stderr.strip()}")
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
