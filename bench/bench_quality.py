"""Speed of the quality engine on synthetic projects (targets: < 5 s each, 2-core machine).

1. 100,000 tasks × 3 annotators, single choice: pairs, task/annotator agreement, Fleiss, Cohen per pair,
   Krippendorff (nominal) and Dawid-Skene. Baselines in the same run: a plain pandas groupby over the
   same table (modal label and its share per task) and crowd-kit's own DawidSkene. Then the label
   confusion and the quality by guideline version of the same report.
2. 10,000 tasks × 3 annotators, NER spans (~3 per answer) and boxes (~4 per answer): pairs with optimal
   matching, task/annotator agreement and Krippendorff's alpha (1 − similarity).

Run: ``.venv/bin/python -m bench.bench_quality``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ls_companion.quality import agreement, consensus
from ls_companion.quality.engine import compute_project_quality, label_confusion
from ls_companion.quality.records import CHOICES, COLUMNS, LABELS, RECTANGLES, Box, ScoredControl, Span
from ls_companion.quality.versions import by_version

TARGET_SECONDS = 5.0


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _table(
    task: NDArray[np.int64], worker: NDArray[np.int64], values: list[Any], control: str, kind: str
) -> pd.DataFrame:
    n = len(task)
    return pd.DataFrame(
        {
            "task_id": task,
            "annotation_id": np.arange(n),
            "annotator": np.char.add("w", worker.astype(str)).astype(object),
            "control": control,
            "kind": kind,
            "value": pd.Series(values, dtype=object),
            "lead_time": 10.0,
            "created_at": pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
            "was_cancelled": False,
            "ground_truth": False,
        },
        columns=COLUMNS,
    )


def _assignments(
    rng: np.random.Generator, n_tasks: int, n_workers: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Three distinct workers per task, drawn from a pool of fixed worker triples (like real batches)."""
    triples = np.array([rng.choice(n_workers, 3, replace=False) for _ in range(500)])
    workers = triples[rng.integers(0, len(triples), n_tasks)].ravel()
    return np.repeat(np.arange(n_tasks), 3), workers


def choices_table(n_tasks: int, rng: np.random.Generator) -> tuple[pd.DataFrame, NDArray[Any]]:
    labels = np.array(["pos", "neg", "neu"], dtype=object)
    truth = rng.integers(0, 3, n_tasks)
    task, worker = _assignments(rng, n_tasks, 60)
    skill = rng.uniform(0.55, 0.95, 60)
    right = rng.random(task.size) < skill[worker]
    answer = np.where(right, truth[task], (truth[task] + rng.integers(1, 3, task.size)) % 3)
    return _table(task, worker, list(labels[answer]), "sentiment", CHOICES), labels[truth]


def _jitter(rng: np.random.Generator, value: float, scale: float) -> float:
    return float(value + rng.normal(0, scale))


def spans_table(n_tasks: int, rng: np.random.Generator) -> pd.DataFrame:
    task, worker = _assignments(rng, n_tasks, 30)
    names = ["Person", "Location", "Product"]
    truth = [
        [
            (int(s), int(s) + int(rng.integers(3, 15)), names[int(rng.integers(0, 3))])
            for s in rng.integers(0, 400, 3)
        ]
        for _ in range(n_tasks)
    ]
    values = []
    for t in task:
        spans = []
        for start, end, label in truth[t]:
            if rng.random() < 0.9:
                shift = int(rng.integers(-2, 3))
                spans.append(Span(max(0, start + shift), end, label if rng.random() < 0.9 else "Product"))
        values.append(tuple(sorted(spans)))
    return _table(task, worker, values, "labels", LABELS)


def boxes_table(n_tasks: int, rng: np.random.Generator) -> pd.DataFrame:
    task, worker = _assignments(rng, n_tasks, 30)
    names = ["Person", "Car", "Bicycle"]
    truth = [
        [(*rng.uniform(0, 80, 2), *rng.uniform(5, 20, 2), names[int(rng.integers(0, 3))]) for _ in range(4)]
        for _ in range(n_tasks)
    ]
    values = []
    for t in task:
        boxes = [
            Box(
                _jitter(rng, x, 1.0),
                _jitter(rng, y, 1.0),
                _jitter(rng, w, 1.0),
                _jitter(rng, h, 1.0),
                0.0,
                label,
            )
            for x, y, w, h, label in truth[t]
            if rng.random() < 0.92
        ]
        values.append(tuple(sorted(boxes)))
    return _table(task, worker, values, "bbox", RECTANGLES)


def agreement_stats(rows: pd.DataFrame, spec: ScoredControl) -> dict[str, Any]:
    pairs = agreement.annotation_pairs(rows, spec)
    tasks = agreement.task_agreement(rows, pairs)
    agreement.annotator_agreement(pairs)
    return agreement.project_agreement(rows, pairs, tasks, spec, agreement.pair_table(pairs, spec))


def bench_choices(n_tasks: int = 100_000) -> None:
    rng = np.random.default_rng(0)
    table, truth = choices_table(n_tasks, rng)
    spec = ScoredControl("sentiment", CHOICES)
    print(f"choices: {n_tasks:,} tasks × 3 annotators = {len(table):,} answers, 60 annotators, 3 labels")

    def baseline() -> pd.DataFrame:
        counts = table.groupby(["task_id", "value"]).size()
        return counts.groupby(level=0).agg(["max", "sum"])

    _, base = timed(baseline)
    stats, t_agree = timed(lambda: agreement_stats(table, spec))
    labels, t_ds = timed(lambda: consensus.aggregate(table, consensus.DAWID_SKENE))
    accuracy = float(np.mean(labels.sort_values("task_id")["consensus"].to_numpy(object) == truth))
    total = t_agree + t_ds
    print(f"  baseline pandas groupby (modal share per task): {base:6.2f} s")
    print(
        f"  all agreement statistics:                       {t_agree:6.2f} s  ({t_agree / base:4.1f}× baseline)"
    )
    print(
        f"  Dawid-Skene (ours, vectorized):                 {t_ds:6.2f} s  (accuracy vs truth {accuracy:.4f})"
    )
    print(
        f"  total agreement + DS:                           {total:6.2f} s  target < {TARGET_SECONDS:.0f} s: "
        f"{'PASS' if total < TARGET_SECONDS else 'FAIL'}"
    )
    print(
        f"  Fleiss {stats['fleiss_kappa']:.4f}, Krippendorff {stats['krippendorff_alpha']:.4f}, "
        f"mean Cohen {stats['cohen_kappa_mean']:.4f} over {stats['cohen_kappa_pairs']} pairs"
    )
    report, t_all = timed(lambda: compute_project_quality(table, {"sentiment": spec}))
    _, t_meta = timed(report.task_meta)
    _, t_confusion = timed(lambda: label_confusion(report))
    print(
        f"  compute_project_quality end to end (MV + DS, drift): {t_all:6.2f} s; task_meta for all tasks {t_meta:.2f} s"
    )
    print(
        f"  label confusion (matrix, top pairs, examples):  {t_confusion:6.2f} s  ({t_confusion / base:4.1f}× baseline)"
    )
    times = table["created_at"]
    history = [("v1", times.min()), ("v2", times.iloc[len(times) // 2])]  # a guideline change half-way
    _, t_versions = timed(lambda: by_version(report, history))
    print(
        f"  quality by guideline version (2 versions):      {t_versions:6.2f} s  ({t_versions / base:4.1f}× baseline)"
    )
    from crowdkit.aggregation import DawidSkene

    data = table.rename(columns={"task_id": "task", "annotator": "worker", "value": "label"})[
        ["task", "worker", "label"]
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, t_ck = timed(lambda: DawidSkene(n_iter=100).fit(data))
    print(
        f"  crowd-kit DawidSkene, same data:                {t_ck:6.2f} s  ({len(model.loss_history_)} iterations; "
        f"ours {t_ck / t_ds:4.1f}× faster)"
    )


def bench_regions(kind: str, n_tasks: int = 10_000) -> None:
    rng = np.random.default_rng(1)
    table = spans_table(n_tasks, rng) if kind == LABELS else boxes_table(n_tasks, rng)
    spec = ScoredControl(str(table["control"].iloc[0]), kind)
    regions = int(table["value"].map(len).sum())
    print(f"{kind}: {n_tasks:,} tasks × 3 annotators, {regions:,} regions")
    _, base = timed(lambda: table.groupby("task_id")["value"].agg(lambda v: len(set(v))))
    stats, seconds = timed(lambda: agreement_stats(table, spec))
    medoid, t_medoid = timed(lambda: consensus.medoid(table, agreement.annotation_pairs(table, spec)))
    print(f"  baseline pandas groupby (distinct answers per task): {base:6.2f} s")
    print(
        f"  pairs + matching + agreement + alpha:                {seconds:6.2f} s  ({seconds / base:4.1f}× baseline) "
        f"target < {TARGET_SECONDS:.0f} s: {'PASS' if seconds < TARGET_SECONDS else 'FAIL'}"
    )
    print(
        f"  medoid consensus (pairs recomputed):                 {t_medoid:6.2f} s  ({len(medoid):,} tasks)"
    )
    print(
        f"  mean agreement {stats['mean_agreement']:.4f}, Krippendorff (1 − similarity) {stats['krippendorff_alpha']:.4f}"
    )


def main() -> None:
    bench_choices()
    bench_regions(LABELS)
    bench_regions(RECTANGLES)


if __name__ == "__main__":
    main()
