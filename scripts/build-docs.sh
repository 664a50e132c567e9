#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the documentation: the html site and the pydmsetup(8) man page,
# with warnings as errors (-W), every cross-reference checked (-n), and the
# public names checked for a docstring and a page (docs/_ext/apicheck.py).
# Installs nothing: it needs the project's `docs` extra
# (pip install -e '.[docs]'; scripts/setup-host.sh does).
#
#   scripts/build-docs.sh [OUTDIR]       # default build/docs; PYTHON=... to choose
#
# OUTDIR/html/index.html and OUTDIR/man/pydmsetup.8.  Exits non-zero on any
# warning (all of them are listed first: --keep-going).
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-build/docs}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
# autodoc documents the checkout's code, not some installed copy of it.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c 'import sphinx, myst_parser' 2>/dev/null; then
    echo "build-docs.sh: $PYTHON has no sphinx/myst-parser: pip install -e '$REPO[docs]'" >&2
    exit 1
fi

status=0
for builder in html man; do
    # -E: read every page again, so an unchanged page's warnings are not
    # lost to the saved environment of an earlier build.
    "$PYTHON" -m sphinx -b "$builder" -E -W --keep-going -n -q \
        -d "$OUT/doctrees/$builder" "$REPO/docs" "$OUT/$builder" || status=1
done
if [ $status = 0 ]; then
    echo "build-docs.sh: $OUT/html/index.html, $OUT/man/pydmsetup.8"
else
    echo "build-docs.sh: the docs build failed (warnings above)" >&2
fi
exit $status
