"""Uncertainty of class-probability rows: the one definition the ML backend and active learning share.

The measures take an ``(n_items, n_classes)`` array of probabilities (rows summing to 1) and return
one value per item, higher meaning *more* uncertain, so that every measure sorts the same way.
``per_label`` and ``per_sequence`` apply a measure to multi-label and sequence (NER) items;
``class_measures``, ``multilabel_measures`` and ``sequence_measures`` give an item's three measures,
the one aggregation both ``select`` and the backend's ``/score`` use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Measure = Callable[[FloatArray], FloatArray]
Reduce = Literal["mean", "max", "sum"]
_EPS = 1e-12


def _as_matrix(proba: NDArray[np.floating] | list[list[float]]) -> FloatArray:
    matrix = np.asarray(proba, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise ValueError(f"expected an (items, classes) probability matrix, got shape {matrix.shape}")
    return matrix


def least_confidence(proba: NDArray[np.floating] | list[list[float]]) -> FloatArray:
    """1 − the top class probability."""
    matrix = _as_matrix(proba)
    result: FloatArray = 1.0 - matrix.max(axis=1)
    return result


def margin(proba: NDArray[np.floating] | list[list[float]]) -> FloatArray:
    """1 − (top − second probability): 1 when the two best classes tie, 0 when one class is certain."""
    matrix = _as_matrix(proba)
    if matrix.shape[1] == 1:
        return np.zeros(matrix.shape[0])
    top2 = np.partition(matrix, -2, axis=1)[:, -2:]
    result: FloatArray = 1.0 - (top2[:, 1] - top2[:, 0])
    return result


def entropy(proba: NDArray[np.floating] | list[list[float]], *, normalized: bool = True) -> FloatArray:
    """Shannon entropy of each row; divided by log(n_classes) when ``normalized`` (range 0..1)."""
    matrix = _as_matrix(proba)
    values: FloatArray = -(matrix * np.log(np.clip(matrix, _EPS, 1.0))).sum(axis=1)
    if normalized and matrix.shape[1] > 1:
        values = values / np.log(matrix.shape[1])
    result: FloatArray = np.clip(values, 0.0, None)
    return result


def per_label(measure: Measure, proba: NDArray[np.floating] | list[list[float]]) -> FloatArray:
    """``measure`` of every label's yes/no pair ``[p, 1 - p]`` of an ``(items, labels)`` matrix, same shape."""
    p = _as_matrix(proba)
    flat = p.reshape(-1)
    return measure(np.column_stack([flat, 1.0 - flat])).reshape(p.shape)


def per_sequence(
    measures: Sequence[Measure], matrices: Sequence[NDArray[np.floating]], how: Reduce = "max"
) -> list[FloatArray]:
    """Each of ``measures`` of every row of each ``(tokens, classes)`` matrix, reduced over an item's tokens.

    One pass over all tokens at once; an item with no tokens is certain (0).
    """
    if how not in ("mean", "max", "sum"):
        raise ValueError(f"unknown reduction {how!r} (use mean, max or sum)")
    lengths = np.array([np.shape(m)[0] if np.size(m) else 0 for m in matrices], dtype=np.int64)
    has_tokens = lengths > 0
    outs: list[FloatArray] = [np.zeros(len(matrices)) for _ in measures]
    if not has_tokens.any():
        return outs
    kept = [np.asarray(m, dtype=np.float64) for m, keep in zip(matrices, has_tokens, strict=True) if keep]
    rows = np.concatenate(kept)
    starts = np.concatenate([[0], np.cumsum(lengths[has_tokens])[:-1]])
    for out, measure in zip(outs, measures, strict=True):
        values = measure(rows)
        if how == "max":
            out[has_tokens] = np.maximum.reduceat(values, starts)
        else:
            sums = np.add.reduceat(values, starts)
            out[has_tokens] = sums if how == "sum" else sums / lengths[has_tokens]
    return outs


#: The three classic measures by name (0 = certain .. 1 = most uncertain), in this order everywhere.
MEASURES: dict[str, Measure] = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}


def class_measures(proba: NDArray[np.floating] | list[list[float]]) -> dict[str, FloatArray]:
    """The three measures of each row of a class-probability matrix (single choice)."""
    matrix = _as_matrix(proba)
    return {name: fn(matrix) for name, fn in MEASURES.items()}


def multilabel_measures(
    proba: NDArray[np.floating] | list[list[float]], how: Reduce = "mean"
) -> dict[str, FloatArray]:
    """Measures of ``(items, labels)`` independent probabilities: each label is a yes/no question.

    Every label's ``[p, 1 - p]`` pair is scored with the measures, then reduced over labels
    (``mean``: overall doubt; ``max``: the single most doubtful label decides).
    """
    if how not in ("mean", "max", "sum"):
        raise ValueError(f"unknown reduction {how!r} (use mean, max or sum)")
    # ``how`` names the numpy reduction itself (mean, max, sum), over the labels axis
    return {name: np.asarray(getattr(per_label(fn, proba), how)(axis=1)) for name, fn in MEASURES.items()}


def sequence_measures(
    token_proba: Sequence[NDArray[np.floating]], how: Reduce = "max"
) -> dict[str, FloatArray]:
    """Measures of sequences, one ``(tokens, classes)`` matrix per item, reduced over tokens.

    ``max`` (default) ranks a sentence by its most doubtful token, the usual choice for NER because one
    unsure entity is enough to need a human; ``sum`` favours long sentences; ``mean`` is length-neutral.
    An item with no tokens is certain (0).
    """
    return dict(zip(MEASURES, per_sequence(list(MEASURES.values()), token_proba, how), strict=True))
