"""The contract every strategy keeps, and known answers on hand-built probability matrices."""

from __future__ import annotations

import numpy as np
import pytest

from ls_companion.errors import InputError
from ls_companion.selection.pool import FloatArray, ScoredPool
from ls_companion.selection.strategies import STRATEGY_NAMES, Strategy, make_strategy
from ls_companion.uncertainty import class_measures, multilabel_measures, sequence_measures


def _pool(n: int = 60, seed: int = 0) -> ScoredPool:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([0.7, 0.7, 0.7], size=n)
    centers = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0]])
    features = centers[np.arange(n) % 3] + rng.normal(scale=0.3, size=(n, 4))
    return ScoredPool(
        ids=np.array([f"item-{i:03d}" for i in range(n)]),
        measures=class_measures(proba),
        proba=proba,
        classes=("a", "b", "c"),
        features=features,
    )


def _hand_pool(rows: list[list[float]], features: FloatArray | None = None) -> ScoredPool:
    proba = np.array(rows)
    return ScoredPool(
        ids=np.array([chr(ord("A") + i) for i in range(len(rows))]),
        measures=class_measures(proba),
        proba=proba,
        features=features,
    )


# -- the shared contract ------------------------------------------------------------------------------

ALL = pytest.mark.parametrize("name", STRATEGY_NAMES)


@ALL
def test_returns_n_distinct_ids_of_the_pool(name: str) -> None:
    pool = _pool()
    chosen = make_strategy(name).select(pool, 12, np.random.default_rng(1))
    assert len(chosen.ids) == 12
    assert len(set(chosen.ids)) == 12
    assert set(chosen.ids) <= set(pool.ids.tolist())


@ALL
def test_never_returns_an_excluded_id(name: str) -> None:
    pool = _pool()
    excluded = {f"item-{i:03d}" for i in range(0, 60, 2)}  # half the pool: already labeled / imported
    chosen = make_strategy(name).select(pool, 20, np.random.default_rng(1), exclude=excluded)
    assert len(chosen.ids) == 20
    assert not set(chosen.ids) & excluded


@ALL
def test_is_deterministic_under_a_seed(name: str) -> None:
    pool = _pool()
    first = make_strategy(name).select(pool, 10, np.random.default_rng(7), exclude={"item-001"})
    again = make_strategy(name).select(pool, 10, np.random.default_rng(7), exclude={"item-001"})
    assert first.ids == again.ids
    assert dict(first.clusters) == dict(again.clusters)


@ALL
def test_n_larger_than_the_eligible_pool_returns_all_of_it(name: str) -> None:
    pool = _pool(n=15)
    excluded = {"item-000", "item-005"}
    chosen = make_strategy(name).select(pool, 100, np.random.default_rng(1), exclude=excluded)
    assert sorted(chosen.ids) == sorted(set(pool.ids.tolist()) - excluded)


@ALL
def test_zero_and_empty(name: str) -> None:
    pool = _pool(n=6)
    strategy: Strategy = make_strategy(name)
    assert strategy.select(pool, 0, np.random.default_rng(1)).ids == ()
    everything = set(pool.ids.tolist())
    assert strategy.select(pool, 3, np.random.default_rng(1), exclude=everything).ids == ()


def test_unknown_strategy_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown strategy 'smart'"):
        make_strategy("smart")


# -- known answers ------------------------------------------------------------------------------------


def test_the_three_measures_rank_differently() -> None:
    # A: lc .50 margin .75 entropy 1.040 | B: lc .55 margin 1.0 entropy .949 | C: lc .60 margin .90 entropy 1.089
    pool = _hand_pool([[0.5, 0.25, 0.25], [0.45, 0.45, 0.10], [0.4, 0.3, 0.3], [0.98, 0.01, 0.01]])
    rng = np.random.default_rng(0)
    assert make_strategy("least-confidence").select(pool, 4, rng).ids == ("C", "B", "A", "D")
    assert make_strategy("margin").select(pool, 4, rng).ids == ("B", "C", "A", "D")
    assert make_strategy("entropy").select(pool, 4, rng).ids == ("C", "A", "B", "D")
    assert make_strategy("entropy").select(pool, 2, rng).ids == ("C", "A")


def test_margin_ties_are_broken_by_least_confidence() -> None:
    # Both have margin 1 (two top classes tie); B is less confident overall, so it comes first.
    pool = _hand_pool([[0.5, 0.5, 0.0], [0.4, 0.4, 0.2], [0.9, 0.05, 0.05]])
    for seed in range(5):
        assert make_strategy("margin").select(pool, 2, np.random.default_rng(seed)).ids == ("B", "A")


def test_exact_ties_are_broken_at_random_but_reproducibly() -> None:
    pool = _hand_pool([[0.5, 0.5]] * 6)
    picks = {make_strategy("entropy").select(pool, 1, np.random.default_rng(s)).ids for s in range(20)}
    assert len(picks) > 1
    assert make_strategy("entropy").select(pool, 3, np.random.default_rng(3)).ids == (
        make_strategy("entropy").select(pool, 3, np.random.default_rng(3)).ids
    )


def test_balanced_takes_turns_between_predicted_classes() -> None:
    # Six items predicted "a" are all more uncertain than the two predicted "b".
    rows = [[0.55, 0.45], [0.56, 0.44], [0.57, 0.43], [0.58, 0.42], [0.59, 0.41], [0.6, 0.4]]
    rows += [[0.2, 0.8], [0.1, 0.9]]
    pool = _hand_pool(rows)
    rng = np.random.default_rng(0)
    assert make_strategy("entropy").select(pool, 4, rng).ids == ("A", "B", "C", "D")
    assert make_strategy("balanced").select(pool, 4, rng).ids == ("A", "G", "B", "H")
    # One class runs out: the others fill the batch.
    assert make_strategy("balanced").select(pool, 5, rng).ids == ("A", "G", "B", "H", "C")


def _blobs(sizes: list[int], seed: int = 0) -> FloatArray:
    rng = np.random.default_rng(seed)
    centers = np.eye(len(sizes)) * 10
    return np.vstack([centers[i] + rng.normal(scale=0.1, size=(s, len(sizes))) for i, s in enumerate(sizes)])


def test_diversity_takes_one_item_per_cluster_and_labels_clusters() -> None:
    features = _blobs([10, 10, 10])
    pool = ScoredPool(
        ids=np.array([f"x{i:02d}" for i in range(30)]), features=features
    )  # no model: cold start works
    chosen = make_strategy("diversity").select(pool, 3, np.random.default_rng(0))
    blobs = sorted(int(i[1:]) // 10 for i in chosen.ids)
    assert blobs == [0, 1, 2]
    assert sorted(chosen.clusters.values()) == [0, 1, 2]
    # Uncertainty alone would take three items of the first blob.
    entropy_pool = ScoredPool(
        ids=pool.ids, measures={"entropy": np.r_[np.full(10, 0.9), np.full(20, 0.1)]}, features=features
    )
    assert {
        int(i[1:]) // 10
        for i in make_strategy("entropy").select(entropy_pool, 3, np.random.default_rng(0)).ids
    } == {0}


def test_hybrid_spreads_over_the_uncertain_clusters_only() -> None:
    # Blob 0 very uncertain, blob 1 fairly, blob 2 certain; top_m = 20 keeps blobs 0 and 1.
    features = _blobs([10, 10, 10])
    values = np.r_[np.linspace(0.95, 0.9, 10), np.linspace(0.8, 0.7, 10), np.linspace(0.1, 0.0, 10)]
    pool = ScoredPool(
        ids=np.array([f"x{i:02d}" for i in range(30)]), measures={"entropy": values}, features=features
    )
    strategy = make_strategy("hybrid", top_m=20)
    chosen = strategy.select(pool, 2, np.random.default_rng(0))
    assert sorted(int(i[1:]) // 10 for i in chosen.ids) == [0, 1]
    assert int(chosen.ids[0][1:]) // 10 == 0  # most uncertain first
    assert len(set(chosen.clusters.values())) == 2


# -- multi-label and sequence aggregates ---------------------------------------------------------------


def test_multilabel_measures_score_each_label_as_yes_no() -> None:
    proba = np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 1.0]])
    mean = multilabel_measures(proba)
    assert mean["entropy"] == pytest.approx([1.0, 0.0, 0.5], abs=1e-6)
    assert mean["least_confidence"] == pytest.approx([0.5, 0.0, 0.25])
    assert mean["margin"] == pytest.approx([1.0, 0.0, 0.5])
    assert multilabel_measures(proba, how="max")["entropy"] == pytest.approx([1.0, 0.0, 1.0], abs=1e-6)


def test_sequence_measures_reduce_over_tokens() -> None:
    sure, unsure = [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]
    sentences = [np.array([sure, sure]), np.array([sure, unsure, sure, sure]), np.zeros((0, 3))]
    assert sequence_measures(sentences)["least_confidence"] == pytest.approx([0.0, 0.5, 0.0])
    assert sequence_measures(sentences, how="mean")["least_confidence"] == pytest.approx([0.0, 0.125, 0.0])
    assert sequence_measures(sentences, how="sum")["margin"] == pytest.approx([0.0, 1.0, 0.0])


def test_pool_rejects_duplicates_and_misaligned_scores() -> None:
    with pytest.raises(ValueError, match="unique"):
        ScoredPool(ids=np.array(["a", "a"]))
    with pytest.raises(ValueError, match="shape"):
        ScoredPool(ids=np.array(["a", "b"]), measures={"entropy": np.zeros(3)})
