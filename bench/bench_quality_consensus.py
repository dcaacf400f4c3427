"""Consensus accuracy on the shared crowd datasets, every method, against the published numbers.

Acceptance (issue 5): on d_product the four methods reproduce the Crowd-Kit paper's table (MV 0.897,
DS 0.940, GLAD 0.928, MACE 0.929) within ±0.005; on snow2008_rte and snow2008_temp the method chosen by
gold accuracy is at least the best single method − 0.005. Takes about two minutes (GLAD is slow).

Run: ``.venv/bin/python -m bench.bench_quality_consensus``.
"""

from __future__ import annotations

import time

from bench import SHARED_DATASETS as DATASETS
from ls_companion.quality.engine import QualityOptions, compute_project_quality
from ls_companion.quality.gold import read_gold_file, resolve_gold
from ls_companion.quality.records import CHOICES, ScoredControl, read_crowd_csv

PUBLISHED = {"d_product": {"majority_vote": 0.897, "dawid_skene": 0.940, "glad": 0.928, "mace": 0.929}}
TOLERANCE = 0.005


def run(name: str) -> None:
    controls = {"label": ScoredControl("label", CHOICES)}
    table = read_crowd_csv(DATASETS / name / "labels.csv")
    gold = resolve_gold(read_gold_file(DATASETS / name / "gold.csv"), controls, integer_ids=False)
    started = time.perf_counter()
    options = QualityOptions(
        methods=("majority_vote", "dawid_skene", "glad", "mace"), slow_methods_max_labels=10**9
    )
    report = compute_project_quality(table, controls, gold, options=options)
    seconds = time.perf_counter() - started
    block = report.to_dict()["consensus"]
    accuracy = {m: row["gold_accuracy"] for m, row in block["methods"].items()}
    print(f"{name}: {len(table):,} labels, {table['task_id'].nunique():,} items ({seconds:.1f} s)")
    for method, value in accuracy.items():
        published = PUBLISHED.get(name, {}).get(method)
        check = ""
        if published is not None:
            ok = abs(value - published) <= TOLERANCE
            check = f"  published {published:.3f}: {'PASS' if ok else 'FAIL'}"
        print(f"  {method:14s} {value:.4f}  ({block['methods'][method]['seconds']:.2f} s){check}")
    best = max(accuracy.values())
    chosen = block["chosen"]
    verdict = "PASS" if accuracy[chosen] >= best - TOLERANCE else "FAIL"
    print(f"  chosen: {chosen} {accuracy[chosen]:.4f}; best single {best:.4f}: {verdict}")
    alpha = report.to_dict()["agreement"]["krippendorff_alpha"]
    print(f"  Krippendorff alpha {alpha}, Fleiss kappa {report.to_dict()['agreement']['fleiss_kappa']}")


def main() -> None:
    for name in ("d_product", "snow2008_rte", "snow2008_temp"):
        run(name)


if __name__ == "__main__":
    main()
