"""Label efficiency of the active-learning strategies: labels needed to reach 99 % of full-data accuracy.

Two datasets from ../shared/datasets: sms_spam (binary, imbalanced: the issue's target is at most
0.25x random's labels for the best of entropy, margin and hybrid) and a harder, balanced one built
from WNUT-17 sentences ("does the sentence mention a named entity?", 55/45); and a balanced
three-class sentiment set from the demo corpus generator at a larger size (``balanced_reviews``). Each strategy runs over
5 seeds (TF-IDF + logistic regression, initial 100, batch 100); the ratio is against random in the
same run.

    .venv/bin/python -m bench.bench_al_efficiency [--seeds 5] [--rounds 40] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench import SHARED_DATASETS as SHARED
from ls_companion.demo import corpus
from ls_companion.selection.simulate import Dataset, SimulationConfig, load_dataset, simulate
from ls_companion.selection.strategies import STRATEGY_NAMES


def wnut_entity_dataset() -> Dataset:
    """WNUT-17 sentences (train + dev + test) labelled by whether they contain an entity."""
    texts, labels = [], []
    for part in ("train", "dev", "test"):
        tokens: list[str] = []
        tags: list[str] = []
        for line in [*(SHARED / "wnut17" / f"{part}.conll").read_text(encoding="utf-8").splitlines(), ""]:
            if line.strip():
                token, tag = line.split(" ")
                tokens.append(token)
                tags.append(tag)
            elif tokens:
                texts.append(" ".join(tokens))
                labels.append("entity" if any(t != "O" for t in tags) else "none")
                tokens, tags = [], []
    return Dataset(texts, labels)


def balanced_reviews(per_class: int = 1000) -> Dataset:
    """Sentiment: the demo's review generator at a larger size, at most ``per_class`` reviews a label
    (its phrase lists give about 640 distinct neutral ones)."""
    reviews = corpus.generate(size=5000, seed=11)
    kept = [r for label in corpus.LABELS for r in [r for r in reviews if r.label == label][:per_class]]
    return Dataset([r.text for r in kept], [r.label for r in kept])


def _fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:,.0f}"


def report(title: str, result: dict[str, Any], seconds: float) -> None:
    strategies = result["strategies"]
    baseline = strategies["random"]["labels_to_99pct"]["median"] if "random" in strategies else None
    last = max(p["labels"] for s in strategies.values() for p in s["curve"])
    print(f"\n## {title}: pool {result['pool_size']}, test {result['test_size']}, {seconds:.0f} s")
    print(
        f"full-data accuracy {result['full_data_accuracy']:.4f}, target (99 %) {result['target_accuracy']:.4f}"
    )
    print(f"{'strategy':<18}{'labels (median)':>16}{'vs random':>11}   per seed{'':<28}final acc")
    for name, data in strategies.items():
        median = data["labels_to_99pct"]["median"]
        if median is not None and baseline:
            ratio = f"{median / baseline:.2f}x"
        elif median is not None:
            ratio = f"<{median / last:.2f}x"  # random never got there within the labels tried
        else:
            ratio = "-"
        seeds = ", ".join(_fmt(v) for v in data["labels_to_99pct"]["per_seed"])
        print(f"{name:<18}{_fmt(median):>16}{ratio:>11}   {seeds:<36}{data['final_accuracy']:.4f}")
    best = [
        strategies[s]["labels_to_99pct"]["median"] for s in ("entropy", "margin", "hybrid") if s in strategies
    ]
    found = [b for b in best if b is not None]
    if baseline and found:
        print(
            f"best of entropy/margin/hybrid: {min(found) / baseline:.2f}x random's labels (target <= 0.25x)"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--initial", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    config = SimulationConfig(
        strategies=STRATEGY_NAMES,
        initial=args.initial,
        batch=args.batch,
        rounds=args.rounds,
        seeds=args.seeds,
        jobs=args.jobs,
    )
    datasets = [
        ("sms_spam (binary, 13 % spam)", load_dataset(SHARED / "sms_spam" / "sms_spam.csv")),
        ("wnut17 has-entity (binary, balanced, hard)", wnut_entity_dataset()),
        ("demo reviews (3 classes, sentiment)", balanced_reviews()),
    ]
    for title, dataset in datasets:
        started = time.perf_counter()
        result = simulate(dataset, config)
        report(title, result, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
