#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every test tier: the unit tier on this host, the documentation build,
# then the root tier (real kernel) once per guest kernel and udev mode, each
# in one pytest session.
# Exits non-zero if any tier fails; a root tier that cannot run fails
# (PYDM_REQUIRE_KERNEL=1 turns its skips into failures).
#
#   scripts/run-all-tests.sh            # PYDM_KERNELS="6.1 6.12" to choose
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$REPO/scripts/setup-host.sh" >&2 || { echo "setup-host.sh failed" >&2; exit 1; }
PY="$REPO/.venv/bin/python"
cd "$REPO"

declare -a results
failed=0
record() {  # name, exit status
    if [ "$2" = 0 ]; then results+=("PASS  $1"); else results+=("FAIL  $1 (exit $2)"); failed=1; fi
}

# The benchmark's C floor: the root tier checks every contender works.
make -s -C "$REPO/csrc" floor >&2 || { echo "building csrc/dm_ioctl_floor failed" >&2; exit 1; }

echo "== unit tier (host)"
"$PY" -m pytest tests/unit -q -p no:cacheprovider
record "unit" $?

echo "== package: sdist, the wheel built from it, its unit tier on the oldest and newest CPython"
"$REPO/scripts/check-package.sh" "$REPO/build/package"
record "package (sdist, abi3 wheel, installed unit tier)" $?

echo "== types and lint: ruff, mypy --strict, pyright (strict)"
PYTHON="$PY" "$REPO/scripts/check-types.sh"
record "types (ruff, mypy, pyright)" $?

echo "== docs (html and man page; warnings are errors)"
PYTHON="$PY" "$REPO/scripts/build-docs.sh" "$REPO/build/docs"
record "docs" $?

for kernel in ${PYDM_KERNELS:-6.1 6.12}; do
    for udev in udev no-udev; do
        flag=()
        [ "$udev" = no-udev ] && flag=(--no-udev)
        echo "== root tier: kernel $kernel, $udev (guest)"
        "$PY" -m pydevmapper.sandbox run --kernel "$kernel" "${flag[@]}" \
            --env PYDM_REQUIRE_KERNEL=1 --env PYTHONDONTWRITEBYTECODE=1 -- \
            "$PY" -m pytest tests/root -q -p no:cacheprovider
        record "root tier, kernel $kernel, $udev" $?
    done
done

echo
echo "== summary"
printf '%s\n' "${results[@]}"
passed=$(printf '%s\n' "${results[@]}" | grep -c '^PASS')
echo "tiers: $passed passed, $((${#results[@]} - passed)) failed"
exit $failed
