"""Label confusion between annotators: which labels do two annotators of the same task mix up?

Input: the annotation pairs of one single-choice control (``agreement.annotation_pairs``: every two
annotators of a task and their answers). Every pair adds one to the symmetric cell of its two labels;
the diagonal counts agreements. A pair of labels ``{a, b}`` is then compared with chance: if
annotators chose labels independently with the shares they actually use (``p``), ``n · 2 p_a p_b`` of
the ``n`` pairs would hold ``a`` and ``b`` (Cohen's expected agreement, off the diagonal). ``ratio`` is
observed / expected: above 1 the two labels are mixed up more often than random labelling would.

Each confused pair comes with its most instructive tasks: those where it happened, lowest task
agreement first, tasks the model flags as label issues first among equals, with the annotators'
answers and their notes (text areas of the same annotations: Label Studio Community 1.23 has no
comments API, comments are an Enterprise feature).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ls_companion.quality.records import DECIMALS, jsonable

FloatArray = NDArray[np.float64]

#: Confused pairs listed per control, and example tasks per pair.
TOP_PAIRS = 10
EXAMPLES = 5


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


def _labels(values: pd.Series) -> pd.Series:
    codes, uniques = pd.factorize(values.astype(object))
    names = np.array([_label(u) for u in uniques] + [""], dtype=object)  # code -1 (missing): ""
    return pd.Series(names[codes], index=values.index, dtype=object)


def labeled_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """The annotation pairs with their answers as label strings (``label_a``, ``label_b``)."""
    a, b = _labels(pairs["value_a"]), _labels(pairs["value_b"])
    # One categorical dtype for both: comparing codes instead of strings is what keeps this fast.
    kind = pd.CategoricalDtype(sorted(set(a.unique()) | set(b.unique())))
    return pairs.assign(label_a=a.astype(kind), label_b=b.astype(kind))


def confusion_counts(pairs: pd.DataFrame, labels: Sequence[str] = ()) -> pd.DataFrame:
    """Labels × labels symmetric counts of annotator pairs (``labeled_pairs``; diagonal: both chose it).

    Labels in config order (``labels``) first, then the others by frequency.
    """
    a, b = pairs["label_a"], pairs["label_b"]
    seen = pd.concat([a.astype(object), b.astype(object)]).value_counts()
    order = [lbl for lbl in labels if lbl in seen.index] + [lbl for lbl in seen.index if lbl not in labels]
    where = {label: i for i, label in enumerate(order)}
    position = np.array([where.get(c, 0) for c in a.cat.categories], dtype=np.int64)
    counts = np.zeros((len(order), len(order)), dtype=np.int64)
    np.add.at(counts, (position[a.cat.codes.to_numpy()], position[b.cat.codes.to_numpy()]), 1)
    symmetric = counts + counts.T - np.diag(np.diag(counts))
    return pd.DataFrame(symmetric, index=order, columns=order)


def expected_counts(matrix: pd.DataFrame) -> FloatArray:
    """The counts of ``confusion_counts`` that labels chosen at random, with the observed shares, give."""
    values = matrix.to_numpy(dtype=float)
    n = float(np.triu(values).sum())
    if n == 0:
        return np.zeros_like(values)
    # Each pair holds two answers: a label's share counts its diagonal cell twice, the others once.
    shares = (values.sum(axis=1) + np.diag(values)) / (2.0 * n)
    expected: FloatArray = n * np.outer(shares, shares) * np.where(np.eye(len(values), dtype=bool), 1.0, 2.0)
    return expected


def chance_ratio(matrix: pd.DataFrame) -> FloatArray:
    """Observed / expected by chance, per cell (NaN where chance expects nothing)."""
    values, expected = matrix.to_numpy(dtype=float), expected_counts(matrix)
    ratio: FloatArray = np.divide(values, expected, out=np.full_like(values, np.nan), where=expected > 0)
    return ratio


def confused_pairs(matrix: pd.DataFrame) -> pd.DataFrame:
    """Every two different labels that a pair of annotators chose: count, expected by chance, ratio.

    Sorted by count, then by ratio: the most frequent confusions are the ones guidelines must address.
    """
    values = matrix.to_numpy(dtype=float)
    n = float(np.triu(values).sum())
    labels = list(matrix.index)
    i, j = np.triu_indices(len(labels), k=1)
    frame = pd.DataFrame(
        {
            "label_a": [labels[k] for k in i],
            "label_b": [labels[k] for k in j],
            "count": values[i, j].astype(np.int64),
            "share": values[i, j] / n if n else 0.0,
            "expected": expected_counts(matrix)[i, j],
            "ratio": chance_ratio(matrix)[i, j],
        }
    )
    frame = frame[frame["count"] > 0]
    return frame.sort_values(["count", "ratio"], ascending=False, kind="stable").reset_index(drop=True)


def examples(
    pairs: pd.DataFrame,
    task_agreement: Mapping[Any, float],
    label_a: str,
    label_b: str,
    *,
    issues: Mapping[Any, Any] | None = None,
    notes: Mapping[Any, Sequence[Mapping[str, str]]] | None = None,
    limit: int = EXAMPLES,
) -> list[dict[str, Any]]:
    """The tasks where two annotators (``labeled_pairs``) chose ``label_a`` and ``label_b``: lowest
    agreement first."""
    a, b = pairs["label_a"], pairs["label_b"]
    hit = ((a == label_a) & (b == label_b)) | ((a == label_b) & (b == label_a))
    counts = pairs.loc[hit, "task_id"].value_counts()
    issues, notes = issues or {}, notes or {}
    order = pd.DataFrame(
        {
            "agreement": [task_agreement.get(t, 1.0) for t in counts.index],
            "no_issue": [t not in issues for t in counts.index],
            "count": -counts.to_numpy(),
            "key": counts.index.astype(str),
        },
        index=counts.index,
    )
    ranked = list(order.sort_values(["agreement", "no_issue", "count", "key"], kind="stable").index)
    out = []
    chosen = pairs[pairs["task_id"].isin(ranked[:limit])]
    for task_id in ranked[:limit]:
        mine = chosen[chosen["task_id"] == task_id]
        answers = dict(zip(mine["annotator_a"].astype(str), mine["label_a"], strict=True))
        answers.update(zip(mine["annotator_b"].astype(str), mine["label_b"], strict=True))
        out.append(
            {
                "task_id": task_id,
                "agreement": jsonable(task_agreement.get(task_id), DECIMALS),
                "answers": dict(sorted(answers.items())),
                "label_issue": issues.get(task_id),
                "notes": list(notes.get(task_id, ())),
            }
        )
    return out


def control_confusion(
    pairs: pd.DataFrame,
    tasks: pd.DataFrame,
    labels: Sequence[str] = (),
    *,
    issues: Mapping[Any, Any] | None = None,
    notes: Mapping[Any, Sequence[Mapping[str, str]]] | None = None,
    top: int = TOP_PAIRS,
) -> dict[str, Any]:
    """The ``confusion`` entry of one control: the matrix, and the top confused pairs with examples.

    ``tasks``: the control's task table (``task_id``, ``agreement``); ``issues``: task id → the
    model's label-issue finding, where there is one; ``notes``: task id → annotators' notes
    (``annotator``, ``text``).
    """
    pairs = labeled_pairs(pairs)
    matrix = confusion_counts(pairs, labels)
    found = confused_pairs(matrix)
    agreement = dict(zip(tasks["task_id"], tasks["agreement"].astype(float), strict=True))
    return {
        "labels": list(matrix.index),
        "matrix": matrix.to_numpy().tolist(),
        "ratio": jsonable(chance_ratio(matrix).tolist(), DECIMALS),
        "n_pairs": int(np.triu(matrix.to_numpy()).sum()),
        "pairs": [
            {
                "labels": [row.label_a, row.label_b],
                "count": int(row.count),
                **jsonable({"share": row.share, "expected": row.expected, "ratio": row.ratio}, DECIMALS),
                "examples": examples(
                    pairs, agreement, str(row.label_a), str(row.label_b), issues=issues, notes=notes
                ),
            }
            for row in found.head(top).itertuples(index=False)
        ],
    }
