"""Agreement statistics: hand-computed cases and the reference libraries on random data."""

from __future__ import annotations

import math
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from ls_companion.quality import agreement
from ls_companion.quality.records import CHOICES, LABELS, NUMBER, RATING, ScoredControl, Span

SINGLE = ScoredControl("label", CHOICES)


def rows(answers: dict[Any, dict[str, Any]]) -> pd.DataFrame:
    """A crowd table from {task: {annotator: value}}."""
    records = [
        {"task_id": t, "annotator": a, "value": v, "annotation_id": i}
        for i, (t, a, v) in enumerate((t, a, v) for t, by in answers.items() for a, v in by.items())
    ]
    frame = pd.DataFrame(records)
    frame["value"] = frame["value"].astype(object)
    return frame


def random_rows(
    rng: np.random.Generator, n_tasks: int, n_raters: int, n_labels: int, missing: float = 0.0
) -> pd.DataFrame:
    answers = {
        t: {f"r{r}": str(rng.integers(0, n_labels)) for r in range(n_raters) if rng.random() >= missing}
        for t in range(n_tasks)
    }
    return rows(answers)


def test_pairs_and_task_agreement_by_hand() -> None:
    table = rows({1: {"a": "x", "b": "x", "c": "y"}, 2: {"a": "x", "b": "x"}, 3: {"a": "y"}})
    pairs = agreement.annotation_pairs(table, SINGLE)
    assert len(pairs) == 3 + 1
    tasks = agreement.task_agreement(table, pairs).set_index("task_id")
    assert tasks.loc[1, "agreement"] == pytest.approx(1 / 3)
    assert tasks.loc[2, "agreement"] == 1.0
    assert tasks.loc[3, "n_annotators"] == 1 and math.isnan(tasks.loc[3, "agreement"])
    per = agreement.annotator_agreement(pairs).set_index("annotator")
    assert per.loc["a", "vs_others"] == pytest.approx(2 / 3)  # with b twice, with c once (disagree)
    assert per.loc["c", "vs_others"] == 0.0 and per.loc["c", "n_pairs"] == 2


def test_fleiss_kappa_wikipedia_example() -> None:
    # The worked example of Fleiss (1971) as on Wikipedia: 10 subjects, 14 raters, 5 categories → 0.210.
    counts = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    answers: dict[Any, dict[str, Any]] = {s: {} for s in range(10)}
    for s, row in enumerate(counts):
        raters = iter(range(14))
        for category, n in enumerate(row):
            for _ in range(n):
                answers[s][f"r{next(raters)}"] = f"c{category}"
    kappa, used = agreement.fleiss_kappa(rows(answers))
    assert (round(kappa, 3), used) == (0.210, 10)


def test_fleiss_uses_tasks_with_the_modal_count() -> None:
    rng = np.random.default_rng(1)
    table = random_rows(rng, 200, 3, 3)
    extra = rows({1000: {"a": "0", "b": "1"}})  # two answers only: left out
    kappa, used = agreement.fleiss_kappa(pd.concat([table, extra], ignore_index=True))
    assert used == 200
    assert kappa == pytest.approx(sm_fleiss(agreement.value_counts(table)))


def test_cohen_kappa_matches_sklearn_on_random_pairs() -> None:
    rng = np.random.default_rng(2)
    table = random_rows(rng, 150, 4, 3, missing=0.2)
    # Make r0 and r1 agree more than chance.
    table.loc[table["annotator"] == "r1", "value"] = [
        v if rng.random() < 0.5 else "0" for v in table.loc[table["annotator"] == "r1", "value"]
    ]
    pairs = agreement.annotation_pairs(table, SINGLE)
    kappas = agreement.cohen_kappa_pairs(pairs, min_shared=10)
    assert len(kappas) == 6
    wide = table.pivot(index="task_id", columns="annotator", values="value")
    for row in kappas.itertuples():
        both = wide[[row.annotator_a, row.annotator_b]].dropna()
        assert row.n == len(both)
        expected = cohen_kappa_score(both[row.annotator_a].astype(str), both[row.annotator_b].astype(str))
        assert row.kappa == pytest.approx(expected)
    assert agreement.cohen_kappa_pairs(pairs, min_shared=10_000).empty


def _reliability(table: pd.DataFrame) -> NDArray[np.float64]:
    wide = table.pivot(index="annotator", columns="task_id", values="value")
    matrix: NDArray[np.float64] = wide.astype(float).to_numpy()
    return matrix


def test_alpha_nominal_and_interval_match_krippendorff() -> None:
    rng = np.random.default_rng(3)
    table = random_rows(rng, 120, 5, 4, missing=0.3)
    expected = krippendorff.alpha(reliability_data=_reliability(table), level_of_measurement="nominal")
    assert agreement.alpha_nominal(table) == pytest.approx(expected)
    numbers = table.assign(value=table["value"].astype(float).astype(object))
    expected = krippendorff.alpha(reliability_data=_reliability(numbers), level_of_measurement="interval")
    assert agreement.alpha_interval(numbers) == pytest.approx(expected)


def test_alpha_from_distance_matches_krippendorff_with_a_custom_metric() -> None:
    rng = np.random.default_rng(4)
    table = random_rows(rng, 60, 4, 5, missing=0.25)
    numbers = table.assign(value=table["value"].astype(float).astype(object))
    spec = ScoredControl("n", NUMBER, scale=(0.0, 4.0))
    pairs = agreement.annotation_pairs(numbers, spec)
    domain = np.sort(numbers["value"].astype(float).unique())

    def one_minus_similarity(
        v1: NDArray[Any],
        v2: NDArray[Any],
        i1: NDArray[np.int_],
        i2: NDArray[np.int_],
        n_v: NDArray[Any],
        dtype: Any = np.float64,
    ) -> NDArray[Any]:
        distance: NDArray[Any] = np.abs(v1.astype(float) - v2.astype(float)) / 4.0
        return distance

    expected = krippendorff.alpha(
        reliability_data=_reliability(numbers), value_domain=domain, level_of_measurement=one_minus_similarity
    )
    exact = agreement.alpha_from_distance(numbers, pairs, agreement.similarity_distance(spec))
    assert exact == pytest.approx(expected)
    sampled = agreement.alpha_from_distance(
        numbers, pairs, agreement.similarity_distance(spec), exact_pairs=10, sample_pairs=200_000
    )
    assert sampled == pytest.approx(expected, abs=0.01)


def test_span_project_agreement_uses_distance_alpha() -> None:
    spec = ScoredControl("labels", LABELS)
    a, b = Span(0, 5, "P", "Maria"), Span(10, 16, "L", "Lisbon")
    table = rows({1: {"x": (a,), "y": (a,)}, 2: {"x": (b,), "y": (b,)}, 3: {"x": (a, b), "y": (a,)}})
    pairs = agreement.annotation_pairs(table, spec)
    tasks = agreement.task_agreement(table, pairs)
    summary = agreement.project_agreement(table, pairs, tasks, spec, agreement.pair_table(pairs, spec))
    assert summary["mean_agreement"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert summary["alpha_level"] == "1 - similarity" and 0 < summary["krippendorff_alpha"] < 1
    assert "fleiss_kappa" not in summary


def test_rating_summary_has_interval_alpha_and_kappas() -> None:
    spec = ScoredControl("r", RATING, scale=(1.0, 5.0))
    table = rows(
        {t: {"x": float(t % 5 + 1), "y": float(t % 5 + 1), "z": float((t + 1) % 5 + 1)} for t in range(30)}
    )
    pairs = agreement.annotation_pairs(table, spec)
    tasks = agreement.task_agreement(table, pairs)
    summary = agreement.project_agreement(table, pairs, tasks, spec, agreement.pair_table(pairs, spec))
    assert summary["alpha_level"] == "interval" and summary["fleiss_kappa"] is not None


def test_interpretation_thresholds() -> None:
    readings = [agreement.interpret(v) for v in (-0.1, 0.19, 0.2, 0.39, 0.4, 0.59, 0.6, 0.79, 0.8, 1.0)]
    assert readings == [
        "Poor",
        "Poor",
        "Fair",
        "Fair",
        "Moderate",
        "Moderate",
        "Good",
        "Good",
        "Excellent",
        "Excellent",
    ]
    assert agreement.interpret(None) is None and agreement.interpret(math.nan) is None
