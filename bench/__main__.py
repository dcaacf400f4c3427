"""Run every benchmark module (``bench/bench_*.py``) in turn, or those named on the command line."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    here = Path(__file__).resolve().parent
    modules = sorted(p.stem for p in here.glob("bench_*.py"))
    chosen = [m for m in modules if not names or m in names or m.removeprefix("bench_") in names]
    for module in chosen:
        print(f"\n=== {module} ===", flush=True)
        runpy.run_module(f"bench.{module}", run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
