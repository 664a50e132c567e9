#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job: build and load basic_target, create a device over a loop file
# through the API, move data through it, show it with the CLI, remove it.
# On a host without device-mapper (or with --guest) it runs in a QEMU guest.
#
#   scripts/run-walkthrough.sh [--kernel 5.10|6.1|6.12|latest] [--guest]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$REPO/scripts/setup-host.sh" >&2
PY="$REPO/.venv/bin/python"
cd "$REPO"
exec "$PY" -m pydevmapper.sandbox run "$@" -- "$PY" -m pydevmapper.walkthrough
