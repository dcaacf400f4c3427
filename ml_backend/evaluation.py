"""Holdout metrics of the three model kinds (pure functions; the trainer and the benchmarks use them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score

SpanSet = Sequence[tuple[int, int, str]]


def single_metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def multi_metrics(
    truth: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], classes: Sequence[str]
) -> dict[str, float]:
    def matrix(rows: Sequence[Sequence[str]]) -> NDArray[np.int64]:
        return np.array([[name in row for name in classes] for row in rows], dtype=np.int64)

    y_true, y_pred = matrix(truth), matrix(predicted)
    return {
        "subset_accuracy": float((y_true == y_pred).all(axis=1).mean()),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def span_metrics(truth: Sequence[SpanSet], predicted: Sequence[SpanSet]) -> dict[str, float]:
    """Entity-level exact-match precision, recall and F1 (start, end and label must all agree)."""
    tp = fp = fn = 0
    for gold, found in zip(truth, predicted, strict=True):
        gold_set, found_set = set(gold), set(found)
        tp += len(gold_set & found_set)
        fp += len(found_set - gold_set)
        fn += len(gold_set - found_set)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
