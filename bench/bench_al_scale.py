"""Active learning at scale: score a 1,000,000-row pool and select 1,000 items, within time and memory.

The pool is generated from sms_spam texts with perturbations (dropped, swapped and inserted words)
into a temporary Parquet file. Each phase runs in its own process so that its peak RSS is its own:

* baseline: a plain chunked read of the same file (rows as dicts, nothing else);
* entropy: read + content-hash ids + TF-IDF/logistic-regression scoring (2 worker processes) +
  select 1,000 (target < 60 s, < 2 GB peak RSS, workers included);
* hybrid: the same with the top 20,000 most uncertain kept with their text, then LSA features and
  uncertainty-weighted k-means down to 1,000 (target: the k-means step over the top 20,000 < 30 s).

    .venv/bin/python -m bench.bench_al_scale [--rows 1000000] [--format parquet|csv]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import SHARED_DATASETS as SHARED

SMS = SHARED / "sms_spam" / "sms_spam.csv"
BATCH = 1000
TOP_M = 20_000
WORKERS = 2  # scoring processes (the machine has 2 cores)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` perturbed sms texts written in batches (Parquet or CSV from the suffix)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ls_companion.sources import read_rows

    texts = [r["text"].split() or ["empty"] for r in read_rows(SMS)]
    vocabulary = sorted({w for words in texts for w in words})
    rng = np.random.default_rng(seed)
    schema = pa.schema([("text", pa.string())])
    writer: Any = (
        pq.ParquetWriter(path, schema) if path.suffix == ".parquet" else pacsv.CSVWriter(path, schema)
    )
    with writer:
        for start in range(0, rows, 100_000):
            size = min(100_000, rows - start)
            base = rng.integers(len(texts), size=size)
            ops = rng.integers(4, size=(size, 2))
            picks = rng.integers(1 << 30, size=(size, 3))
            out = []
            for b, (op1, op2), (p1, p2, p3) in zip(base, ops, picks, strict=True):
                words = list(texts[b])
                for op, p in ((op1, p1), (op2, p2)):
                    at = p % len(words)
                    if op == 0 and len(words) > 1:
                        del words[at]
                    elif op == 1 and len(words) > 1:
                        words[at - 1], words[at] = words[at], words[at - 1]
                    else:
                        words.insert(at, vocabulary[(p + p3) % len(vocabulary)])
                out.append(" ".join(words))
            writer.write_table(pa.table({"text": out}, schema=schema))


def _trained_scorer() -> Any:
    from ls_companion.selection.scoring import SklearnScorer
    from ls_companion.sources import read_rows

    rows = list(read_rows(SMS))
    return SklearnScorer(control="label").fit([r["text"] for r in rows], [r["label"] for r in rows])


def phase_baseline(path: Path) -> dict[str, Any]:
    from ls_companion.sources import read_chunks

    started = time.perf_counter()
    rows = sum(len(chunk) for chunk in read_chunks(path))
    return {"rows": rows, "seconds": time.perf_counter() - started}


def phase_select(path: Path, strategy: str) -> dict[str, Any]:
    from ls_companion.selection.plan import plan_batch
    from ls_companion.selection.scan import ScanOptions, scan_pool
    from ls_companion.selection.strategies import make_strategy

    scorer = _trained_scorer()  # training is not part of the figure
    started = time.perf_counter()
    chosen = make_strategy(strategy, top_m=TOP_M)
    options = ScanOptions(
        text_column="text",
        keep_candidates=chosen.needs_features,
        candidates=TOP_M,
        candidate_measure="entropy" if chosen.needs_features else None,
        workers=WORKERS,
    )
    scan = scan_pool(path, scorer, options=options)
    scanned = time.perf_counter()
    plan = plan_batch(scan.pool, chosen, BATCH, np.random.default_rng(0), candidates=scan.candidates)
    finished = time.perf_counter()
    return {
        "rows": scan.rows_read,
        "eligible": len(scan.pool),
        "duplicates": scan.duplicates,
        "selected": len(plan),
        "scan_seconds": scanned - started,
        "select_seconds": finished - scanned,
        "seconds": finished - started,
    }


@dataclass
class _TreeSampler:
    """Peak resident memory and CPU seconds of a process and its descendants, sampled from /proc."""

    root: int
    peak_rss_mb: float = 0.0
    cpu_ticks: dict[int, int] = field(default_factory=dict)

    def sample(self) -> None:
        stats: dict[int, list[str]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
        tree, frontier = {self.root}, [self.root]
        while frontier:  # the second field after the name is the parent pid
            frontier = [pid for pid, f in stats.items() if int(f[1]) in frontier and pid not in tree]
            tree.update(frontier)
        rss_kb = 0
        for pid in tree & stats.keys():
            fields = stats[pid]
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            self.cpu_ticks[pid] = max(self.cpu_ticks.get(pid, 0), ticks)
            rss_kb += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024  # rss is in pages
        self.peak_rss_mb = max(self.peak_rss_mb, rss_kb / 1024)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")


def run_phase(name: str, path: Path) -> dict[str, Any]:
    """One phase in a fresh interpreter: its figures, and the peak RSS and CPU of its process tree."""
    command = [sys.executable, "-m", "bench.bench_al_scale", "--phase", name, "--file", str(path)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    )
    sampler = _TreeSampler(process.pid)
    while process.poll() is None:
        sampler.sample()
        time.sleep(0.2)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["tree_peak_rss_mb"] = max(sampler.peak_rss_mb, result["peak_rss_mb"])
    result["cpu_seconds"] = max(sampler.cpu_seconds, result["cpu_self"])
    return result


def _row(label: str, r: dict[str, Any], base: dict[str, Any]) -> str:
    return (
        f"{label:<32}{r['seconds']:>8.1f}{r['seconds'] / base['seconds']:>8.1f}{r['cpu_seconds']:>8.1f}"
        f"{r['peak_rss_mb']:>8.0f}{r['peak_rss_mb'] / base['peak_rss_mb']:>8.2f}{r['tree_peak_rss_mb']:>14.0f}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--phase", choices=("baseline", "entropy", "hybrid"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:  # inside a phase's own process
        result = (
            phase_baseline(args.file) if args.phase == "baseline" else phase_select(args.file, args.phase)
        )
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(
            json.dumps({**result, "peak_rss_mb": _peak_rss_mb(), "cpu_self": usage.ru_utime + usage.ru_stime})
        )
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-al-scale-") as tmp:
        path = Path(tmp) / f"pool.{args.format}"
        started = time.perf_counter()
        generate(path, args.rows)
        took = time.perf_counter() - started
        print(
            f"pool: {args.rows:,} rows, {args.format}, {path.stat().st_size / 1e6:.0f} MB, generated in {took:.0f} s"
        )
        # The machine may be shared: the load tells how far wall times are from an idle machine's.
        print(f"load average (1 min) before the phases: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        base = run_phase("baseline", path)
        print(
            f"{'phase':<32}{'wall s':>8}{'x read':>8}{'CPU s':>8}{'RSS MB':>8}{'x read':>8}{'all procs MB':>14}"
        )
        print(_row("baseline: plain chunked read", base, base))
        for name, label, target in (
            ("entropy", "entropy: score + select 1,000", "target < 60 s, < 2,048 MB"),
            ("hybrid", "hybrid: top 20,000 + k-means", "target: the k-means step < 30 s"),
        ):
            r = run_phase(name, path)
            print(_row(label, r, base), end="")
            print(f"   (scan {r['scan_seconds']:.1f} s, select {r['select_seconds']:.1f} s; {target})")
        print("RSS: the phase's main process (getrusage); all procs: it and its scoring workers (sampled).")
        print("CPU s: user + system seconds of all its processes; on an idle machine, wall >= CPU s / cores.")
        print(f"load average (1 min) after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
