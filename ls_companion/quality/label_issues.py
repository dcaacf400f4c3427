"""Likely label errors from a model's out-of-fold probabilities: confident learning and beyond.

Confident learning (Northcutt et al., 2021) estimates the joint distribution of given and true labels
from out-of-fold probabilities: an item counts as "confidently of class j" when its probability of j
reaches class j's threshold (the mean probability of j over the items labelled j). That calibrated
*confident joint* gives each class's noise rate and the number of label errors the data implies.

Where confident learning prunes per cell of the joint by margin, we rank all items by one score, the
probability that the label is wrong, and flag the top ones, as many as the joint implies are wrong (on
the same probabilities as good as prune-by-noise-rate, F1 ratios 0.97-1.03 in bench/bench_label_issues.py,
with one score that can take more evidence). The score
starts from the model's self-confidence and, where the quality engine knows more, moves with the
label's reliability: an annotator's estimated accuracy, the agreement of several annotators.

Pure functions over numpy arrays: labels are class codes ``0..k-1``, ``proba`` is ``n × k``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import softmax

from ls_companion.errors import InputError
from ls_companion.quality.records import jsonable

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: A label is never trusted more than this, so strong model evidence can always overturn it.
MAX_LABEL_RELIABILITY = 0.999


def _check(labels: IntArray, proba: FloatArray) -> None:
    if proba.ndim != 2 or len(proba) != len(labels):
        raise InputError(f"probabilities of shape {proba.shape} do not match {len(labels)} labels")
    k = proba.shape[1]
    if k < 2:
        raise InputError("label issues need at least two classes")
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise InputError(f"labels must be class codes 0..{k - 1}")


def class_thresholds(labels: IntArray, proba: FloatArray) -> FloatArray:
    """Per class j, the mean probability of j over the items labelled j (1.0 for classes without items)."""
    _check(labels, proba)
    k = proba.shape[1]
    counts = np.bincount(labels, minlength=k).astype(float)
    sums = np.bincount(labels, weights=proba[np.arange(len(labels)), labels], minlength=k)
    return np.where(counts > 0, sums / np.maximum(counts, 1.0), 1.0)


def confident_joint(labels: IntArray, proba: FloatArray) -> FloatArray:
    """Counts ``C[i, j]`` of items labelled i that are confidently of class j, calibrated.

    An item is confidently of the classes whose probability reaches their threshold; of several, the
    most probable. Calibration rescales each row to the number of items labelled i (items confident of
    no class are spread like the confident ones), so ``C`` sums to n.
    """
    thresholds = class_thresholds(labels, proba)
    k = proba.shape[1]
    above = np.where(proba >= thresholds - 1e-12, proba, -np.inf)
    confident = np.isfinite(above).any(axis=1)
    guess = above.argmax(axis=1)
    raw = np.zeros((k, k))
    np.add.at(raw, (labels[confident], guess[confident]), 1.0)
    label_counts = np.bincount(labels, minlength=k).astype(float)
    row_sums = raw.sum(axis=1, keepdims=True)
    # A class with items but no confident item keeps its items on the diagonal: no evidence of noise.
    calibrated: FloatArray = (
        np.where(row_sums > 0, raw / np.maximum(row_sums, 1.0), np.eye(k)) * label_counts[:, None]
    )
    return calibrated


@dataclass(frozen=True, slots=True)
class NoiseEstimate:
    """The calibrated confident joint: rows the given label, columns the (estimated) true one."""

    joint: FloatArray

    @property
    def n_issues(self) -> int:
        """How many labels the data implies are wrong (the joint's off-diagonal mass)."""
        return round(float(self.joint.sum() - np.trace(self.joint)))

    @property
    def noise_rates(self) -> FloatArray:
        """Per given class, the share of its labels estimated wrong (0 for classes without items)."""
        rows = self.joint.sum(axis=1)
        return np.where(rows > 0, 1.0 - np.diag(self.joint) / np.maximum(rows, 1e-12), 0.0)


def estimate_noise(labels: IntArray, proba: FloatArray) -> NoiseEstimate:
    return NoiseEstimate(confident_joint(labels, proba))


@dataclass(frozen=True, slots=True)
class LabelIssues:
    """Per item: ``score`` (probability the label is wrong), ``suggested`` class code, ``flagged``."""

    score: FloatArray
    suggested: IntArray
    flagged: BoolArray
    noise: NoiseEstimate

    def ranked(self) -> IntArray:
        """Indices of the flagged items, highest score first (ties: lower index first)."""
        flagged = np.flatnonzero(self.flagged)
        return flagged[np.argsort(-self.score[flagged], kind="stable")].astype(np.int64)


def label_odds(proba_given: FloatArray, reliability: FloatArray | None) -> FloatArray:
    """Odds that each given label is right: the model's, times how much more reliable this label is.

    The out-of-fold probabilities come from a model trained on labels as reliable as the average one,
    so they already price in the average noise: only an item's reliability *relative* to the mean
    (a better annotator, several annotators who agree) should move its odds.
    """
    p = np.clip(proba_given, 1e-9, 1.0 - 1e-9)
    odds: FloatArray = p / (1.0 - p)
    if reliability is None:
        return odds
    rel = np.clip(reliability, 1.0 - MAX_LABEL_RELIABILITY, MAX_LABEL_RELIABILITY)
    mean = float(np.clip(rel.mean(), 1.0 - MAX_LABEL_RELIABILITY, MAX_LABEL_RELIABILITY))
    ratio: FloatArray = odds * (rel / (1.0 - rel)) / (mean / (1.0 - mean))
    return ratio


def find_label_issues(
    labels: IntArray,
    proba: FloatArray,
    *,
    reliability: FloatArray | None = None,
    n_flag: int | None = None,
) -> LabelIssues:
    """Score every item's label, suggest a label and flag the likely errors.

    ``score`` is the probability that the label is wrong: one minus the model's out-of-fold
    probability of it (self-confidence ranks label errors best on our benchmarks, better than the
    normalised margin), moved by ``reliability`` (optional, per item: the probability the label is
    right as the annotators tell it, e.g. their estimated accuracy or agreement on the item). The
    suggestion is the most probable other class. The flagged items are the highest scores among those
    whose score says "more likely wrong than right", as many as the confident joint implies are wrong
    (``n_flag`` overrides that number).
    """
    labels = np.asarray(labels, dtype=np.int64)
    proba = np.asarray(proba, dtype=float)
    noise = estimate_noise(labels, proba)
    if reliability is not None:
        reliability = np.asarray(reliability, dtype=float)
        if reliability.shape != labels.shape:
            raise InputError(f"reliability has {reliability.size} values for {labels.size} labels")
    rows = np.arange(len(labels))
    odds = label_odds(proba[rows, labels], reliability)
    score = 1.0 / (1.0 + odds)
    others = proba.copy()
    others[rows, labels] = -np.inf
    suggested = others.argmax(axis=1).astype(np.int64)
    budget = noise.n_issues if n_flag is None else n_flag
    candidates = np.flatnonzero(score > 0.5)
    order = candidates[np.argsort(-score[candidates], kind="stable")][: max(budget, 0)]
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[order] = True
    return LabelIssues(score, suggested, flagged, noise)


def issues_payload(
    found: LabelIssues, classes: Sequence[Any], keys: Sequence[Any], key: str
) -> dict[str, Any]:
    """JSON-able: the flagged items by descending score (``key``: ``keys[i]`` names item i), the noise estimate."""
    rates = found.noise.noise_rates
    return {
        "issues": [
            {
                key: jsonable(keys[i]),
                "score": round(float(found.score[i]), 4),
                "suggested": jsonable(classes[found.suggested[i]]),
            }
            for i in found.ranked()
        ],
        "n_items": len(found.score),
        "estimated_issues": found.noise.n_issues,
        "noise_rate": {str(c): round(float(r), 4) for c, r in zip(classes, rates, strict=True)},
    }


def answer_reliability(
    answers: Iterable[tuple[Any, Any, Any]],
    labels: Mapping[Any, Any],
    accuracy: Mapping[Any, float],
    classes: Sequence[Any],
) -> dict[Any, float]:
    """Per task, the probability that its label is right as its annotators tell it (flat prior).

    ``answers``: ``(task, annotator, answer)``; ``labels``: each task's label judged; ``accuracy``: each
    annotator's estimated accuracy (the quality engine's ``quality_score``). An answer counts ``a`` for
    the class it names and ``(1 - a) / (k - 1)`` for each other one (errors spread evenly): one
    annotator gives their accuracy, two who agree more, a dissent less. Annotators without an estimate
    count with the mean one; with no estimate at all, nothing is returned.
    """
    known = [float(a) for a in accuracy.values() if np.isfinite(a)]
    if not known:
        return {}
    mean = float(np.mean(known))
    column = {label: i for i, label in enumerate(classes)}
    k = max(len(classes), 2)
    log_like: dict[Any, FloatArray] = {}
    for task, annotator, answer in answers:
        if labels.get(task) not in column or answer not in column:
            continue
        a = float(accuracy.get(annotator, mean))
        a = float(np.clip(a if np.isfinite(a) else mean, 1.0 - MAX_LABEL_RELIABILITY, MAX_LABEL_RELIABILITY))
        row = np.full(k, np.log((1.0 - a) / (k - 1)))
        row[column[answer]] = np.log(a)
        log_like[task] = log_like.get(task, np.zeros(k)) + row
    return {task: float(softmax(ll)[column[labels[task]]]) for task, ll in log_like.items()}


def task_label_issues(
    oof: Mapping[str, Any],
    labels: Mapping[Any, Any],
    model_version: str | None,
    reliability: Mapping[Any, float] | None = None,
) -> dict[Any, dict[str, Any]]:
    """Per task, what the sync writes as ``quality.label_issue``: the label judged, score, suggested
    label, flagged, version, and ``noise_rate``, the confident joint's estimated share of wrong labels
    of the task's class (stored per task so the report reads the per-class noise from task meta alone).

    ``oof``: one control's stored out-of-fold probabilities (``task_ids``, ``classes``, ``proba``, as the
    ML backend's training job keeps them with ``model_version``); ``labels``: each task's current
    (consensus) label; ``reliability``: per task, the probability its label is right as the annotators
    tell it (``answer_reliability``; a task without one counts as average). Tasks without both, or whose
    label the model does not know, get nothing.
    """
    classes = list(oof["classes"])
    column = {label: i for i, label in enumerate(classes)}
    kept = [
        (task, column[labels[task]], row)
        for row, task in enumerate(oof["task_ids"])
        if task in labels and labels[task] in column
    ]
    if len(kept) < 2:
        return {}
    proba = np.asarray(oof["proba"], dtype=float)[[row for _, _, row in kept]]
    rel = None
    if reliability:
        given = np.array([reliability.get(task, np.nan) for task, _, _ in kept], dtype=float)
        rel = np.where(np.isnan(given), np.nanmean(given), given) if not np.isnan(given).all() else None
    found = find_label_issues(np.array([code for _, code, _ in kept], dtype=np.int64), proba, reliability=rel)
    rates = found.noise.noise_rates
    return {
        task: {
            "label": classes[code],
            "noise_rate": round(float(rates[code]), 4),
            "score": round(float(found.score[i]), 4),
            "suggested": classes[found.suggested[i]],
            "flagged": bool(found.flagged[i]),
            "model_version": model_version,
        }
        for i, (task, code, _) in enumerate(kept)
    }
