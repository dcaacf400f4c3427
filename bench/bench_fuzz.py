"""The fuzz suites of tests/unit/test_fuzz_inputs.py with many more examples (hypothesis "long" profile).

``make test`` runs them with a few derandomized examples each; this runs ``--examples`` (default 1,000)
random ones per property and prints the outcome and the time. Run: ``.venv/bin/python -m bench.bench_fuzz``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

SUITE = "tests/unit/test_fuzz_inputs.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="Examples per property.")
    args = parser.parse_known_args()[0]  # `python -m bench soak` leaves the module name in argv
    root = Path(__file__).resolve().parent.parent
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider", "--hypothesis-profile=long"],
        cwd=root,
        env={**os.environ, "LSC_FUZZ_EXAMPLES": str(args.examples)},
        capture_output=True,
        text=True,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]
    print(f"fuzz, {args.examples:,} examples per property: {summary} ({time.monotonic() - started:.0f} s)")
    if result.returncode != 0:
        print(result.stdout[-6000:])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
