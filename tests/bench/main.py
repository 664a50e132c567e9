# SPDX-License-Identifier: LGPL-2.1-or-later
"""python -m tests.bench [--json FILE] [--kernel 5.10|6.1|6.12|latest] [--quick]

Runs every operation for every contender (api, c, libdm, dmsetup,
pydmsetup) in one kernel and prints the ratio table; ``--json`` also writes
the results.  Needs root and device-mapper: without them on this host, it
builds the C floor (``make -C csrc floor``), byte-compiles the package and
the benchmark (the guest sees the repository read-only) and runs itself in a QEMU guest with
udevd through ``pydevmapper.sandbox``; the guest sends the JSON back on its
output between two marker lines.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import subprocess
import sys
from typing import Any, Dict, List, Optional

from tests.bench import report

BEGIN = "=== pydevmapper.bench json begin ==="
END = "=== pydevmapper.bench json end ==="
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--kernel", default="6.1", help="guest kernel series when a guest is needed (default 6.1)")
    p.add_argument("--quick", action="store_true", help="smoke run: small budgets, N = 10 and 100")
    p.add_argument("--list-sizes", default=None, help="comma-separated N for listing (default 10,100,1000,5000)")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the cProfile runs")
    p.add_argument("--only", choices=("devices", "thin_status", "stats_print"),
                   help="one part: the per-device operations and listing, thin_status_1000 "
                        "or stats_print_100")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--guest", action="store_true", help="always run in a guest")
    where.add_argument("--here", action="store_true", help=argparse.SUPPRESS)  # in the guest
    return p


def _host_can_run() -> bool:
    from pydevmapper.sandbox.guest import host_has_device_mapper

    return os.geteuid() == 0 and host_has_device_mapper()


def run_here(a: argparse.Namespace) -> Dict[str, Any]:
    from tests.bench import operations

    sizes = (10, 100) if a.quick else operations.LIST_SIZES
    if a.list_sizes:
        sizes = tuple(int(n) for n in a.list_sizes.split(","))
    def partial(r: operations.Run) -> None:
        # In the guest, send results after each operation: a run cut short
        # by the guest's time limit still reports what it measured.
        if a.here:
            doc = report.document(platform.release(), "partial run", r.raw,
                                  list_retries=r.list_retries, notes=r.notes, cpu=r.cpu)
            print(BEGIN, json.dumps(doc), END, sep="\n", flush=True)

    run = operations.Run(scale=0.2 if a.quick else 1.0, list_sizes=sizes, profile=a.profile,
                         progress=partial, only=a.only)
    meta = run.run()
    startup = operations.startup(run.raw, n=2) if a.only in (None, "devices") else None
    return report.document(platform.release(), meta["mode"], run.raw, list_retries=run.list_retries,
                           startup=startup, notes=run.notes, profiles=run.profiles, cpu=run.cpu)


def run_in_guest(a: argparse.Namespace) -> Dict[str, Any]:
    make = subprocess.run(["make", "-C", os.path.join(REPO, "csrc"), "floor"],
                          stdout=sys.stderr, stderr=sys.stderr)
    if make.returncode != 0:
        print("bench: building the C floor failed; it will be reported unavailable", file=sys.stderr)
    # The guest cannot write __pycache__ into the read-only repository;
    # without this, every pydmsetup start would compile the package again.
    for tree in ("pydevmapper", os.path.join("tests", "bench")):
        compileall.compile_dir(os.path.join(REPO, tree), quiet=1)
    inner: List[str] = [sys.executable, "-m", "tests.bench", "--here"]
    if a.quick:
        inner.append("--quick")
    if a.list_sizes:
        inner += ["--list-sizes", a.list_sizes]
    if not a.profile:
        inner.append("--no-profile")
    if a.only:
        inner += ["--only", a.only]
    argv = [sys.executable, "-m", "pydevmapper.sandbox", "run", "--kernel", a.kernel,
            "--timeout", "1500", "--", *inner]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True, errors="replace")
    assert proc.stdout is not None
    captured: Optional[List[str]] = None
    doc_text: Optional[str] = None
    for line in proc.stdout:
        stripped = line.rstrip("\n")
        if stripped == BEGIN:
            captured = []
        elif stripped == END and captured is not None:
            doc_text = "\n".join(captured)
            captured = None
        elif captured is not None:
            captured.append(stripped)
        else:
            sys.stderr.write(line)
            sys.stderr.flush()
    rc = proc.wait()
    if doc_text is None:
        raise SystemExit(f"bench: the guest run sent no results (exit {rc})")
    doc = json.loads(doc_text)
    if rc != 0:
        doc.setdefault("notes", []).append(f"the guest run ended early (exit {rc}): partial results")
    return doc


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    if a.here:
        doc = run_here(a)
        print(BEGIN, json.dumps(doc, indent=1), END, sep="\n", flush=True)
        return 0
    doc = run_here(a) if not a.guest and _host_can_run() else run_in_guest(a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    sys.stdout.write(report.format_table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
