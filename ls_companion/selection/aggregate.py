"""Item-level uncertainty for multi-label and sequence (NER) outputs, built on ``ls_companion.uncertainty``.

A multi-label item has one independent yes/no probability per class; a sequence item has one class
distribution per token. Both reduce to the three classic measures per item, so every strategy can
rank them the same way as single-label items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ls_companion.selection.pool import FloatArray
from ls_companion.uncertainty import Reduce, entropy, least_confidence, margin, per_label, per_sequence

_FUNCTIONS = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}


def _reduce(values: FloatArray, how: Reduce) -> FloatArray:
    if how == "mean":
        return np.asarray(values.mean(axis=1), dtype=np.float64)
    if how == "max":
        return np.asarray(values.max(axis=1), dtype=np.float64)
    if how == "sum":
        return np.asarray(values.sum(axis=1), dtype=np.float64)
    raise ValueError(f"unknown reduction {how!r} (use mean, max or sum)")


def single_label_measures(proba: ArrayLike) -> dict[str, FloatArray]:
    """The three measures of each row of a class-probability matrix."""
    matrix = np.asarray(proba, dtype=np.float64)
    return {name: fn(matrix) for name, fn in _FUNCTIONS.items()}


def multilabel_measures(proba: ArrayLike, how: Reduce = "mean") -> dict[str, FloatArray]:
    """Measures of ``(items, labels)`` independent probabilities: each label is a yes/no question.

    Every label's ``[p, 1 - p]`` pair is scored with the shared measures, then reduced over labels
    (``mean``: overall doubt; ``max``: the single most doubtful label decides).
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"expected an (items, labels) matrix, got shape {p.shape}")
    return {name: _reduce(per_label(fn, p), how) for name, fn in _FUNCTIONS.items()}


def sequence_measures(token_proba: Sequence[ArrayLike], how: Reduce = "max") -> dict[str, FloatArray]:
    """Measures of sequences, one ``(tokens, classes)`` matrix per item, reduced over tokens.

    ``max`` (default) ranks a sentence by its most doubtful token, the usual choice for NER because one
    unsure entity is enough to need a human; ``sum`` favours long sentences; ``mean`` is length-neutral.
    An item with no tokens is certain (0).
    """
    matrices = [np.asarray(item, dtype=np.float64) for item in token_proba]
    return dict(zip(_FUNCTIONS, per_sequence(list(_FUNCTIONS.values()), matrices, how), strict=True))
