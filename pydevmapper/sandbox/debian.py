# SPDX-License-Identifier: LGPL-2.1-or-later
"""Debian's package registry, read with apt against a state of our own.

Every Debian release the sandbox takes packages from gets its own source
list, lists and archive cache under ``${PYDM_CACHE}/apt/<release>/``, with an
empty dpkg status, so the host's apt sources, lists and package database are
never read or changed, and a bookworm host can download bullseye's and
trixie's kernels.  The archive's signatures are checked against the host's
``debian-archive-keyring``.

A kernel from another release than the host's is built for in that release's
own userland (its compiler, and kbuild tools linked against its C library):
:func:`bootstrap` makes one with ``mmdebstrap``.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import Log, SandboxError, require_tool

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

#: Release -> its suites, each (archive, suite): "main" is the archive's
#: mirror, "security" the security mirror.  Point releases and security
#: updates of the kernel land in -security first.
RELEASES: dict[str, tuple[tuple[str, str], ...]] = {
    "bullseye": (("main", "bullseye"), ("security", "bullseye-security")),
    "bookworm": (("main", "bookworm"), ("main", "bookworm-updates"), ("security", "bookworm-security")),
    "trixie": (("main", "trixie"), ("main", "trixie-backports"), ("security", "trixie-security")),
}

# Lists older than this are fetched again before a lookup.
LISTS_MAX_AGE = 6 * 3600


def _mirror(archive: str) -> str:
    if archive == "security":
        return os.environ.get("PYDM_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    return os.environ.get("PYDM_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def source_lines(release: str, kind: str = "deb") -> list[str]:
    """The one-line apt sources of *release* (main component only);
    ``kind`` "deb-src" for its source packages."""
    if release not in RELEASES:
        raise SandboxError(f"unknown Debian release {release!r}; known: {', '.join(RELEASES)}")
    return [f"{kind} [signed-by={KEYRING}] {_mirror(archive)} {suite} main" for archive, suite in RELEASES[release]]


def host_release() -> str | None:
    """The host's Debian codename (``VERSION_CODENAME``), None if it has none."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip("\"'") or None
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("PYDM_CACHE") or Path.home() / ".cache" / "pydevmapper")


@dataclass(frozen=True)
class Apt:
    """apt-get and apt-cache for one release, on a state private to the cache."""

    release: str
    kind: str = "deb"  # "deb-src": the release's source packages

    @property
    def root(self) -> Path:
        return cache_dir() / "apt" / (self.release if self.kind == "deb" else f"{self.release}-{self.kind}")

    def options(self) -> list[str]:
        r = self.root
        return [
            "-o", f"Dir::Etc::SourceList={r / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={r / 'sources.list.d'}",
            "-o", f"Dir::Etc::Preferences={r / 'preferences'}",
            "-o", f"Dir::Etc::PreferencesParts={r / 'preferences.d'}",
            "-o", f"Dir::State={r / 'state'}",
            "-o", f"Dir::State::status={r / 'status'}",
            "-o", f"Dir::Cache={r / 'cache'}",
            "-o", "APT::Get::List-Cleanup=0",
        ]  # fmt: skip

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        exe = require_tool(tool, "this needs a Debian host with apt")
        return subprocess.run([exe, *self.options(), *args], cwd=cwd, capture_output=True, text=True, check=False)

    def refresh(self, *, log: Log = print, max_age: float = LISTS_MAX_AGE) -> None:
        """Write the private sources and fetch the lists if they are missing or old."""
        r = self.root
        for d in (
            r / "sources.list.d",
            r / "preferences.d",
            r / "state" / "lists" / "partial",
            r / "cache" / "archives" / "partial",
        ):
            d.mkdir(parents=True, exist_ok=True)
        (r / "status").touch()
        sources = "\n".join(source_lines(self.release, self.kind)) + "\n"
        src = r / "sources.list"
        stamp = r / "updated"
        if not src.is_file() or src.read_text() != sources:
            src.write_text(sources)
            stamp.unlink(missing_ok=True)
        if stamp.is_file() and time.time() - stamp.stat().st_mtime < max_age:
            return
        log(f"apt ({self.release}): fetching the package lists into {r}")
        res = self.run("apt-get", "update")
        if res.returncode != 0:
            raise SandboxError(f"apt-get update for {self.release} failed:\n{res.stderr.strip()}")
        stamp.touch()

    def search(self, regex: str) -> list[str]:
        """Package names matching the POSIX ERE *regex*."""
        res = self.run("apt-cache", "search", "--names-only", regex)
        if res.returncode != 0:
            raise SandboxError(f"apt-cache search failed: {res.stderr.strip()}")
        return [line.split(" - ")[0].strip() for line in res.stdout.splitlines() if line.strip()]

    def show(self, pkg: str) -> dict[str, str]:
        """The candidate's stanza of ``apt-cache show`` (empty if unknown)."""
        res = self.run("apt-cache", "show", "--no-all-versions", pkg)
        fields: dict[str, str] = {}
        for line in res.stdout.splitlines():
            if not line.strip():
                break
            if ":" in line and not line.startswith(" "):
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        return fields

    def downloadable(self, specs: list[str]) -> bool:
        # --print-uris resolves every spec without downloading ~100 MB.
        res = self.run("apt-get", "download", "--print-uris", *specs)
        return res.returncode == 0 and res.stdout.count("'") >= 2 * len(specs)

    def download_source(self, spec: str, dest: Path) -> None:
        """The source package ``name=version``'s files (.dsc, tarballs) into *dest*."""
        res = self.run("apt-get", "source", "--download-only", spec, cwd=dest)
        if res.returncode != 0:
            raise SandboxError(f"apt-get source {spec} failed:\n{res.stderr.strip()}")

    def download(self, specs: list[str], dest: Path) -> None:
        res = self.run("apt-get", "download", *specs, cwd=dest)
        if res.returncode != 0:
            raise SandboxError(f"apt-get download failed:\n{res.stderr.strip()}")


def bootstrap(release: str, target: Path, include: list[str], *, log: Log = print) -> None:
    """A minimal *release* userland with *include* installed, made at *target*
    (which must not exist: the caller stages it and renames it into place)."""
    if os.geteuid() != 0:
        # Unprivileged, mmdebstrap makes a tree owned by subordinate uids
        # and without device nodes, which a build cannot enter.
        raise SandboxError(f"making a {release} build root needs root (mmdebstrap in root mode)")
    mmdebstrap = require_tool("mmdebstrap", "apt-get install mmdebstrap")
    argv = [mmdebstrap, "--variant=minbase", f"--include={','.join(include)}", release, str(target),
            *source_lines(release)]  # fmt: skip
    log(f"build root ({release}): mmdebstrap with {', '.join(include)} into {target}")
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-20:])
        raise SandboxError(f"mmdebstrap of {release} failed (exit {res.returncode}):\n{tail}")
