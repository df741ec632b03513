"""Run every side-by-side benchmark: `make bench` (or `python benchmarks/run.py [NAME ...]`).

Each `benchmarks/bench_*.py` is a standalone script that runs Cellar and its peer in the same
run and prints their ratio (docs/benchmarks.md). This runner starts each one in a subprocess with
the current interpreter and exits non-zero if any fails.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(names: list[str]) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if names:
        found = [p for p in found if p.stem in names or p.stem.removeprefix("bench_") in names]
    return found


def main(argv: list[str]) -> int:
    benchmarks = discover(argv)
    if not benchmarks:
        print("no benchmarks yet" if not argv else f"no benchmark matches {' '.join(argv)}")
        return 0 if not argv else 1
    failed = []
    for path in benchmarks:
        print(f"=== {path.stem}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        print(f"=== {path.stem}: exit {code} in {time.perf_counter() - started:.1f}s", flush=True)
        if code != 0:
            failed.append(path.stem)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
