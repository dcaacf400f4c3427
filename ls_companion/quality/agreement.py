"""Inter-annotator agreement of one control: per task, per annotator, per project.

Everything starts from the table of annotation pairs (every two annotators of a task, with the
similarity of their answers): a task's agreement is its mean pairwise similarity (as Label Studio
Enterprise defines it); an annotator's is the mean over the pairs they are in. Chance-corrected
statistics: Cohen's kappa per annotator pair, Fleiss' kappa (statsmodels) and Krippendorff's alpha
(the ``krippendorff`` package; nominal for single choices, interval for ratings and numbers, and
1 − similarity as the distance for spans, boxes, polygons, texts, multiple choices and taxonomies).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from ls_companion.quality.records import NUMBER, POLYGONS, RATING, RECTANGLES, ScoredControl, jsonable
from ls_companion.quality.similarity import similarities

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
PAIR_COLUMNS = ["task_id", "annotator_a", "annotator_b", "value_a", "value_b", "similarity"]
#: Upper bounds of the conventional reading of kappa/alpha values (below 0.2 is "Poor"...).
INTERPRETATION = ((0.2, "Poor"), (0.4, "Fair"), (0.6, "Moderate"), (0.8, "Good"), (math.inf, "Excellent"))
#: Krippendorff's expected disagreement is exact up to this many value pairs, else estimated on a sample
#: (standard error of alpha about 0.002).
EXACT_PAIRS = 200_000
SAMPLE_PAIRS = 20_000
SLOW_PAIRS = 2_000
#: Cohen's kappa of an annotator pair needs this many shared tasks.
MIN_SHARED_FOR_KAPPA = 10
PAIR_TABLE_COLUMNS = ["annotator_a", "annotator_b", "n_tasks", "agreement", "cohen_kappa"]


def interpret(value: float | None) -> str | None:
    """Poor < 0.2 ≤ Fair < 0.4 ≤ Moderate < 0.6 ≤ Good < 0.8 ≤ Excellent."""
    if value is None or not math.isfinite(value):
        return None
    return next(name for bound, name in INTERPRETATION if value < bound)


def with_observed_scale(spec: ScoredControl, values: pd.Series) -> ScoredControl:
    """A numeric control without a declared range gets the observed one."""
    if spec.kind not in (RATING, NUMBER) or spec.scale is not None or values.empty:
        return spec
    numbers = values.astype(float)
    return replace(spec, scale=(float(numbers.min()), float(numbers.max())))


def _pair_positions(task_codes: IntArray) -> tuple[IntArray, IntArray]:
    """Row positions (i < j) of every two rows sharing a task; rows must be sorted by task."""
    starts = np.flatnonzero(np.r_[True, task_codes[1:] != task_codes[:-1]])
    sizes = np.diff(np.r_[starts, len(task_codes)])
    left: list[IntArray] = []
    right: list[IntArray] = []
    for size in np.unique(sizes[sizes >= 2]):
        first = starts[sizes == size]
        i, j = np.triu_indices(int(size), k=1)
        left.append((first[:, None] + i[None, :]).ravel())
        right.append((first[:, None] + j[None, :]).ravel())
    if not left:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(left), np.concatenate(right)


def annotation_pairs(rows: pd.DataFrame, spec: ScoredControl) -> pd.DataFrame:
    """Every two answers to one task (``rows``: crowd rows of one control), with their similarity."""
    ordered = rows.sort_values(["task_id", "annotator"], kind="stable")
    codes = pd.factorize(ordered["task_id"])[0].astype(np.int64)
    i, j = _pair_positions(codes)
    values = ordered["value"].to_numpy(dtype=object)
    annotators = ordered["annotator"].to_numpy(dtype=object)
    pairs = pd.DataFrame(
        {
            "task_id": ordered["task_id"].to_numpy()[i],
            "annotator_a": annotators[i],
            "annotator_b": annotators[j],
            "value_a": values[i],
            "value_b": values[j],
        }
    )
    pairs["similarity"] = similarities(spec, values[i], values[j]) if len(i) else np.zeros(0)
    return pairs


def task_agreement(rows: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per task: ``n_annotators`` and ``agreement`` (mean pairwise similarity; NaN with one annotator)."""
    counts = rows.groupby("task_id", sort=True).size().rename("n_annotators")
    means = pairs.groupby("task_id", sort=True)["similarity"].mean().rename("agreement")
    return pd.concat([counts, means], axis=1).rename_axis("task_id").reset_index()


def annotator_agreement(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: mean similarity with the others who answered the same tasks (``vs_others``)."""
    stacked = pd.DataFrame(
        {
            "annotator": np.concatenate(
                [pairs["annotator_a"].to_numpy(object), pairs["annotator_b"].to_numpy(object)]
            ),
            "similarity": np.concatenate([pairs["similarity"].to_numpy(float)] * 2),
        }
    )
    grouped = stacked.groupby("annotator")["similarity"]
    return pd.DataFrame({"vs_others": grouped.mean(), "n_pairs": grouped.size()}).reset_index()


def _codes(rows: pd.DataFrame) -> tuple[IntArray, IntArray, int]:
    task_codes = pd.factorize(rows["task_id"])[0].astype(np.int64)
    value_codes, uniques = pd.factorize(rows["value"].astype(object), sort=False)
    return task_codes, value_codes.astype(np.int64), len(uniques)


def value_counts(rows: pd.DataFrame) -> IntArray:
    """Units × categories count matrix (the input of Fleiss' kappa and Krippendorff's alpha)."""
    task_codes, value_codes, n_values = _codes(rows)
    n_tasks = int(task_codes.max()) + 1 if len(task_codes) else 0
    flat = np.bincount(task_codes * n_values + value_codes, minlength=n_tasks * n_values)
    counts: IntArray = flat.reshape(n_tasks, n_values).astype(np.int64)
    return counts


def fleiss_kappa(rows: pd.DataFrame) -> tuple[float, int]:
    """Fleiss' kappa (statsmodels) over the tasks having the most common number of answers.

    Fleiss' kappa needs the same number of raters per unit, so tasks with another count are left out;
    the second value is the number of tasks used.
    """
    counts = value_counts(rows)
    per_task = counts.sum(axis=1)
    multi = per_task[per_task >= 2]
    if multi.size == 0:
        return math.nan, 0
    modal = int(np.bincount(multi).argmax())
    used = counts[per_task == modal]
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = float(sm_fleiss_kappa(used, method="fleiss"))
    return kappa, int(used.shape[0])


def _oriented(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with every pair's annotators in one order (a before b as text), values swapped along."""
    swap = pairs["annotator_a"].astype(str).to_numpy() > pairs["annotator_b"].astype(str).to_numpy()
    out = pairs.copy()
    for left, right in (("annotator_a", "annotator_b"), ("value_a", "value_b")):
        a, b = pairs[left].to_numpy(object), pairs[right].to_numpy(object)
        out[left], out[right] = np.where(swap, b, a), np.where(swap, a, b)
    return out


def cohen_kappa_pairs(pairs: pd.DataFrame, min_shared: int = MIN_SHARED_FOR_KAPPA) -> pd.DataFrame:
    """Cohen's kappa of every annotator pair sharing at least ``min_shared`` tasks (single choices)."""
    if pairs.empty:
        return pd.DataFrame(columns=["annotator_a", "annotator_b", "n", "observed", "kappa"])
    oriented = _oriented(pairs)
    a, b = oriented["annotator_a"].to_numpy(object), oriented["annotator_b"].to_numpy(object)
    va, vb = oriented["value_a"].to_numpy(object), oriented["value_b"].to_numpy(object)
    codes, _ = pd.factorize(pd.Series(np.concatenate([va, vb]), dtype=object))
    frame = pd.DataFrame({"annotator_a": a, "annotator_b": b, "ca": codes[: len(va)], "cb": codes[len(va) :]})
    frame["pair"] = pd.factorize(pd.Series(list(zip(a, b, strict=True)), dtype=object))[0]
    sizes = frame.groupby("pair").size()
    keep = sizes[sizes >= min_shared].index
    frame = frame[frame["pair"].isin(keep)]
    if frame.empty:
        return pd.DataFrame(columns=["annotator_a", "annotator_b", "n", "observed", "kappa"])
    frame = frame.assign(same=(frame["ca"] == frame["cb"]).astype(float))
    grouped = frame.groupby("pair")
    n = grouped.size()
    observed = grouped["same"].mean()
    margin_a = frame.groupby(["pair", "ca"]).size().rename_axis(["pair", "code"])
    margin_b = frame.groupby(["pair", "cb"]).size().rename_axis(["pair", "code"])
    joint = (margin_a * margin_b).dropna().groupby(level="pair").sum()
    expected = joint.reindex(n.index, fill_value=0) / (n.astype(float) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1.0 - expected)
    names = grouped[["annotator_a", "annotator_b"]].first()
    return pd.DataFrame(
        {
            "annotator_a": names["annotator_a"],
            "annotator_b": names["annotator_b"],
            "n": n,
            "observed": observed,
            "kappa": kappa.where(expected < 1.0),
        }
    ).reset_index(drop=True)


def pair_table(pairs: pd.DataFrame, spec: ScoredControl) -> pd.DataFrame:
    """Per annotator pair (in one order): shared tasks, mean similarity and, for categorical controls,
    Cohen's kappa (NaN under ``MIN_SHARED_FOR_KAPPA`` shared tasks). Computed once per control; the
    project's mean kappa and the report's pair plot both read it."""
    if pairs.empty:
        return pd.DataFrame(columns=PAIR_TABLE_COLUMNS)
    oriented = _oriented(pairs)
    grouped = oriented.groupby(["annotator_a", "annotator_b"], sort=True)["similarity"]
    stats = grouped.agg(n_tasks="size", agreement="mean").reset_index()
    if not spec.categorical:
        return stats.assign(cohen_kappa=math.nan)
    kappas = cohen_kappa_pairs(oriented)[["annotator_a", "annotator_b", "kappa"]]
    return stats.merge(
        kappas.rename(columns={"kappa": "cohen_kappa"}), on=["annotator_a", "annotator_b"], how="left"
    )


def alpha_nominal(rows: pd.DataFrame) -> float:
    """Krippendorff's alpha, nominal (the ``krippendorff`` package on the units × categories counts)."""
    counts = value_counts(rows)
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0 or counts.shape[1] < 2:
        return math.nan
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def alpha_interval(rows: pd.DataFrame) -> float:
    """Krippendorff's alpha, interval (squared difference), for ratings and numbers."""
    numbers = rows["value"].astype(float)
    domain = np.sort(numbers.unique())
    if domain.size < 2:
        return math.nan
    task_codes = pd.factorize(rows["task_id"])[0]
    value_codes = np.searchsorted(domain, numbers.to_numpy())
    counts = np.zeros((int(task_codes.max()) + 1, domain.size), dtype=np.int64)
    np.add.at(counts, (task_codes, value_codes), 1)
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0:
        return math.nan
    return float(
        krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement="interval")
    )


def alpha_from_distance(
    rows: pd.DataFrame,
    pairs: pd.DataFrame,
    distance: Callable[[NDArray[Any], NDArray[Any]], FloatArray],
    *,
    rng: np.random.Generator | None = None,
    exact_pairs: int = EXACT_PAIRS,
    sample_pairs: int = SAMPLE_PAIRS,
) -> float:
    """Krippendorff's alpha = 1 − D_o / D_e for any distance between two answers.

    D_o averages the distance within tasks (each task weighted as in Krippendorff: pairs / (m − 1)),
    D_e over all pairs of pairable answers. The package's coincidence matrix is values × values, and
    spans or boxes are nearly all distinct, so D_e is computed from the answers themselves: exactly up
    to ``exact_pairs`` pairs, else as the mean over ``sample_pairs`` random pairs (seeded).
    """
    m = rows.groupby("task_id").size()
    m = m[m >= 2]
    n = int(m.sum())
    if n < 2 or pairs.empty:
        return math.nan
    within = distance(pairs["value_a"].to_numpy(object), pairs["value_b"].to_numpy(object))
    weights = 1.0 / (pairs["task_id"].map(m).to_numpy(float) - 1.0)
    observed = 2.0 * float(np.sum(within * weights)) / n
    values = rows[rows["task_id"].isin(m.index)]["value"].to_numpy(object)
    total = n * (n - 1) // 2
    if total <= exact_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        generator = rng if rng is not None else np.random.default_rng(0)
        i = generator.integers(0, n, sample_pairs)
        j = (i + generator.integers(1, n, sample_pairs)) % n  # uniform over j != i
    expected = float(np.mean(distance(values[i], values[j])))
    if expected <= 0:
        return math.nan
    return 1.0 - observed / expected


def similarity_distance(spec: ScoredControl) -> Callable[[NDArray[Any], NDArray[Any]], FloatArray]:
    """1 − similarity, the distance used for Krippendorff's alpha on structured answers."""

    def distance(a: NDArray[Any], b: NDArray[Any]) -> FloatArray:
        return 1.0 - similarities(spec, a, b)

    return distance


def _pair_budget(spec: ScoredControl, rows: pd.DataFrame) -> int:
    """Pairs for Krippendorff's D_e: fewer where one IoU costs a clipping or a raster (~1 ms)."""
    if spec.kind == POLYGONS:
        return SLOW_PAIRS
    if spec.kind == RECTANGLES and any(box.rotation for value in rows["value"] for box in value):
        return SLOW_PAIRS
    return SAMPLE_PAIRS


def project_agreement(
    rows: pd.DataFrame, pairs: pd.DataFrame, tasks: pd.DataFrame, spec: ScoredControl, by_pair: pd.DataFrame
) -> dict[str, Any]:
    """The project-level agreement statistics of one control, JSON-able (NaN → None); ``by_pair`` is
    its ``pair_table``."""
    multi = tasks[tasks["n_annotators"] >= 2]
    mean_agreement = float(multi["agreement"].mean()) if not multi.empty else math.nan
    summary: dict[str, Any] = {
        "control": spec.name,
        "kind": spec.kind,
        "n_tasks": len(tasks),
        "n_tasks_overlapping": len(multi),
        "n_annotations": len(rows),
        "n_annotators": int(rows["annotator"].nunique()),
        "mean_agreement": jsonable(mean_agreement),
        "unanimous_share": jsonable(
            float((multi["agreement"] >= 1.0 - 1e-12).mean()) if not multi.empty else math.nan
        ),
    }
    if spec.categorical:
        kappa, used = fleiss_kappa(rows)
        cohen = by_pair[by_pair["n_tasks"] >= MIN_SHARED_FOR_KAPPA]
        summary.update(
            {
                "percent_agreement": summary["mean_agreement"],
                "fleiss_kappa": jsonable(kappa),
                "fleiss_interpretation": interpret(jsonable(kappa)),
                "fleiss_tasks": used,
                "cohen_kappa_mean": jsonable(float(cohen["cohen_kappa"].mean())) if not cohen.empty else None,
                "cohen_kappa_pairs": len(cohen),
            }
        )
    if spec.kind in (RATING, NUMBER):
        alpha, level = alpha_interval(rows), "interval"
    elif spec.categorical:
        alpha, level = alpha_nominal(rows), "nominal"
    else:
        budget = _pair_budget(spec, rows)
        distance = similarity_distance(spec)
        alpha = alpha_from_distance(rows, pairs, distance, exact_pairs=budget, sample_pairs=budget)
        level = "1 - similarity"
    summary.update(
        {
            "krippendorff_alpha": jsonable(alpha),
            "alpha_level": level,
            "alpha_interpretation": interpret(jsonable(alpha)),
        }
    )
    return summary
