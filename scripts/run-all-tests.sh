#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every test tier: the unit tier on this host, the documentation build,
# then the root tier (real kernel) once per guest kernel and udev mode, each
# in one pytest session.
# Exits non-zero if any tier fails; a root tier that cannot run fails
# (PYDM_REQUIRE_KERNEL=1 turns its skips into failures).
#
#   scripts/run-all-tests.sh
#
# Kernels: PYDM_UDEV_KERNELS (default "6.1 6.12") run with and without udev,
# PYDM_NOUDEV_KERNELS (default "5.10 latest") only without.
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

# The guest tiers, each one pytest session in its own guest, output to
# build/logs/ and printed whole when the tier ends: two at a time with half
# the host's cores each, the udev boots first (the longest).  Not one guest
# with every core beside others: under TCG a guest's vCPUs wait for each
# other, and a guest with more vCPUs than its share of the cores stalls.
# Every no-udev boot runs the whole root tier.  A udev boot runs the tests
# marked udev and one share of the others (PYDM_UDEV_SHARE, see
# tests/root/conftest.py): udevd makes each test that creates devices
# several times slower, and each of those tests runs under udev on one of
# the udev kernels.
logs="$REPO/build/logs"
mkdir -p "$logs"
cores=$(nproc)
cpus=$(( cores > 2 ? cores / 2 : 1 ))
udev_kernels=(${PYDM_UDEV_KERNELS-6.1 6.12})
noudev_kernels=$(printf '%s\n' "${udev_kernels[@]}" ${PYDM_NOUDEV_KERNELS-5.10 latest} | awk '!seen[$0]++')
declare -a queue=()
for i in "${!udev_kernels[@]}"; do queue+=("${udev_kernels[i]} udev $((i + 1))/${#udev_kernels[@]}"); done
for kernel in $noudev_kernels; do queue+=("$kernel no-udev"); done
declare -A tier_of=() log_of=() started=() share_of=()
declare -a failures=()
# Interrupted: stop the guests still running (each sandbox kills its qemu).
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
start_tier() {  # kernel, udev|no-udev[, udev share k/n]: boot a guest in the background
    local kernel=$1 udev=$2 tier="$1 $2" flag=(--no-udev)
    if [ "$udev" = udev ]; then
        flag=(--env "PYDM_UDEV_SHARE=$3")
        share_of[$tier]=" (udev tests and share ${3/\// of } of the others)"
    fi
    log_of[$tier]="$logs/root-$kernel-$udev.log"
    started[$tier]=$SECONDS
    echo "-- started: root tier, kernel $kernel, $udev ($cpus vCPU)"
    "$PY" -m pydevmapper.sandbox run --kernel "$kernel" "${flag[@]}" --cpus "$cpus" --timeout 2400 \
        --env PYDM_REQUIRE_KERNEL=1 --env PYTHONDONTWRITEBYTECODE=1 -- \
        "$PY" -m pytest tests/root -q -p no:cacheprovider --durations=10 > "${log_of[$tier]}" 2>&1 &
    tier_of[$!]=$tier
}
finish_tier() {  # wait for one guest tier, print its log, record it
    local pid rc tier what
    wait -n -p pid "${!tier_of[@]}"
    rc=$?
    tier=${tier_of[$pid]}
    unset "tier_of[$pid]"
    echo "== root tier: kernel ${tier% *}, ${tier#* } (guest, $(( SECONDS - started[$tier] )) s)"
    cat "${log_of[$tier]}"
    # "<release>, DM interface <version>", from the session's last lines.
    what=$(sed -n 's/^pydevmapper-guest-kernel: //p' "${log_of[$tier]}" | tail -n 1)
    record "root tier, kernel ${tier% *} (${what:-kernel not reached}), ${tier#* }${share_of[$tier]-}" "$rc"
    # What a failed tier said last, for where only the end of the output is read.
    local said
    said=$(grep -E '^(FAILED|ERROR) |watchdog|^sandbox:|timed out' "${log_of[$tier]}" | tail -n 8)
    [ -n "$said" ] || said=$(tail -n 3 "${log_of[$tier]}")
    [ "$rc" = 0 ] || failures+=("$tier: $(printf '%s' "$said" | cut -c1-300 | tr '\n' '|')")
}
for entry in "${queue[@]}"; do
    [ "${#tier_of[@]}" -ge 2 ] && finish_tier
    start_tier $entry
done
while [ "${#tier_of[@]}" -gt 0 ]; do finish_tier; done

echo
echo "== summary"
printf '%s\n' "${results[@]}"
for f in "${failures[@]}"; do echo "failed tier $f"; done
passed=$(printf '%s\n' "${results[@]}" | grep -c '^PASS')
echo "tiers: $passed passed, $((${#results[@]} - passed)) failed"
exit $failed
