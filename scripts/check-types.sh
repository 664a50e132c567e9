#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The static checks: ruff on the package and the tests, then mypy --strict
# and pyright (strict, see [tool.pyright]) on the package and
# tests/typing/downstream_example.py.  Runs all three, prints a summary and
# exits non-zero if any of them reports anything.  Installs nothing: the
# tools come from the venv (pip install -e '.[test,dev]' puts them there).
#
#   scripts/check-types.sh              # PYTHON=/path/to/venv/bin/python to choose
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="${PYTHON:-$REPO/.venv/bin/python}"
cd "$REPO"

for tool in ruff mypy pyright; do
    "$PY" -c "import $tool" 2>/dev/null || { echo "$tool is not installed for $PY (pip install -e '.[test,dev]')" >&2; exit 2; }
done

declare -a results
failed=0
record() {  # name, exit status
    if [ "$2" = 0 ]; then results+=("PASS  $1"); else results+=("FAIL  $1 (exit $2)"); failed=1; fi
}

echo "== ruff"
"$PY" -m ruff check pydevmapper tests
record "ruff" $?

echo "== mypy --strict"
"$PY" -m mypy --strict pydevmapper tests/typing/downstream_example.py
record "mypy" $?

echo "== pyright"
# The venv's interpreter, so pyright finds the same pytest and cffi.
"$PY" -m pyright --pythonpath "$PY" pydevmapper tests/typing/downstream_example.py
record "pyright" $?

echo
echo "== summary"
printf '%s\n' "${results[@]}"
exit "$failed"
