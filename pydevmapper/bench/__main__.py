"""Run the benchmark in ``tests/bench`` of the checkout this package sits in."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    if not os.path.isfile(os.path.join(REPO, "tests", "bench", "main.py")):
        raise SystemExit("python -m pydevmapper.bench runs from a source checkout: "
                         f"{REPO}/tests/bench is not there")
    sys.path.insert(0, REPO)
    from tests.bench.main import main as bench_main

    return bench_main()


if __name__ == "__main__":
    sys.exit(main())
